"""Jobs, offers and request files as a person reads them: a job's summary (`hvr submit`, `hvr status`), a listing
(`hvr jobs list`), the catalog with its health (`hvr providers`), and a request file's mistakes named where they
are: a syntax error at its line and column, an unknown field beside the one it likely meant."""

from __future__ import annotations

import difflib
import json
from collections.abc import Sequence
from datetime import UTC

from hvr.campaign_text import dollars
from hvr.client import ApiError
from router.models.api import OfferView
from router.models.job import JobView
from router.models.request import VideoRequest


def table(header: tuple[str, ...], rows: Sequence[tuple[str, ...]], numeric_from: int = 1) -> list[str]:
    """Aligned columns; from `numeric_from` on they hold figures, right-aligned so the decimal points line up."""
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    return ["  ".join(cell.rjust(w) if i >= numeric_from else cell.ljust(w)
                      for i, (cell, w) in enumerate(zip(row, widths, strict=True))).rstrip()
            for row in [header, *rows]]


def where(job: JobView) -> str:
    """The offer and target of the latest attempt, or of the routing decision before any attempt."""
    if job.attempts:
        return f"{job.attempts[-1].offer} on {job.attempts[-1].target}"
    chosen = job.routing.chosen if job.routing else None
    return f"{chosen.offer} on {chosen.target}" if chosen else "-"


def cost_text(job: JobView) -> str:
    """What was paid once the job ended; until then the estimate, marked as one."""
    if job.status.terminal:
        return dollars(job.cost.actual_usd)
    return f"~{dollars(job.cost.estimated_usd)}" if job.cost.estimated_usd is not None else "-"


def took(job: JobView) -> str:
    if not job.status.terminal:
        return "-"
    seconds = max(0, round((job.updated_at - job.created_at).total_seconds()))
    minutes, secs = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


def format_job(job: JobView) -> str:
    """A few lines: status and where, why there, what it cost, the output or the error. `--json` has the rest."""
    lines = [f"{job.id} {job.status.value}: {where(job)}"]
    chosen = job.routing.chosen if job.routing else None
    if chosen and chosen.reason:
        lines.append(f"  why: {chosen.reason}")
    if job.routing and not chosen and job.routing.reasons:
        lines += [f"  - {reason}" for reason in job.routing.reasons]
    earlier = [a for a in job.attempts[:-1] if a.status.ended]
    if earlier:
        lines.append("  tried first: " + "; ".join(
            f"{a.offer} {a.status.value}" + (f" ({a.reason})" if a.reason else "") for a in earlier))
    estimate = f" (estimated {dollars(job.cost.estimated_usd)})" if job.cost.estimated_usd is not None else ""
    lines.append(f"  cost: {cost_text(job)}{estimate}" if job.status.terminal else f"  cost: {cost_text(job)}")
    if job.output:
        out = job.output
        lines.append(f"  output: {out.s3_uri}, {out.width}x{out.height}, {out.frames} frames, {out.duration_s:g} s, "
                     f"{out.bytes} bytes (hvr jobs download {job.id})")
    if job.error:
        lines.append(f"  error: {job.error.code}: {job.error.message}")
        lines += [f"    {detail}" for detail in job.error.details]
    if job.cancel:
        lines.append("  cancel requested" + (", billed for what ran" if job.cancel.billed else ""))
    return "\n".join(lines)


def format_jobs(jobs: Sequence[JobView]) -> str:
    if not jobs:
        return "no jobs match"
    rows = [(job.id, f"{job.created_at.astimezone(UTC):%Y-%m-%d %H:%M}", job.status.value, where(job),
             cost_text(job), took(job)) for job in jobs]
    return "\n".join(table(("id", "created (UTC)", "status", "where", "cost", "took"), rows, numeric_from=4))


def format_providers(offers: Sequence[OfferView]) -> str:
    """One row per offer: up and configured, the circuit routing sees, the queue wait, and the learned figures."""
    rows = [(o.id, o.provider, "up" if o.health.up else "down", o.health.circuit.replace("_", "-"),
             "yes" if o.configured else "no", f"{o.health.queue_depth:.0f}s",
             o.learned.summary if o.learned else "-") for o in offers]
    header = ("offer", "provider", "health", "circuit", "configured", "queue", "render time")
    return "\n".join(table(header, rows, numeric_from=5))


def request_syntax(text: bytes, name: str) -> None:
    """A request file that isn't JSON, named at its place (`file:line:column`), before anything is uploaded or
    sent; the API judges the rest."""
    try:
        json.loads(text)
    except UnicodeDecodeError as exc:
        raise ApiError([f"{name}: not UTF-8 text ({exc.reason} at byte {exc.start})"], 400) from None
    except json.JSONDecodeError as exc:
        raise ApiError([f"{name}:{exc.lineno}:{exc.colno}: not JSON: {exc.msg}"], 400) from None


def field_suggestions(body: bytes) -> list[str]:
    """For each field of the request a VideoRequest doesn't have, the one it most likely meant: the API refuses
    an unknown field by its name alone."""
    try:
        request = json.loads(body)
    except ValueError:
        return []
    if not isinstance(request, dict):
        return []
    lines = []
    for field in request:
        if field in VideoRequest.model_fields:
            continue
        close = difflib.get_close_matches(field, VideoRequest.model_fields, n=1, cutoff=0.6)
        lines.append(f"  {field}: not a request field" + (f"; did you mean {close[0]!r}?" if close else ""))
    return lines
