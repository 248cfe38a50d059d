"""`hvr`: run the whole stack locally (`hvr dev`) and talk to an hvr API, local or deployed.

Client commands speak plain HTTP to the API (docs/architecture.md, "API contract") and read each answer into the
API's own model (router's response models) where it arrives, nothing else of the project, so the same commands work
against `hvr dev` and against a deployed stage of the same version. Exit codes: 0 done, 1 the job did not succeed
or the server/connection failed (an answer its model refuses included), 2 the request was refused (4xx) or the
command line was wrong.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import IO, Any
from urllib.parse import quote

from hvr.campaign_text import (
    CAMPAIGN_DONE,
    campaign_bar,
    campaign_body,
    dollars,
    format_campaign,
    when,
)
from hvr.client import DEFAULT_API_URL, Answer, ApiClient, ApiError, M, UnreadableAnswer
from hvr.jobs_text import field_suggestions, format_job, format_jobs, format_providers, request_syntax
from hvr.jobs_text import table as _table
from router.models.agent import AgentKey, AgentKeysRevoked, AgentList, AgentView
from router.models.api import BudgetList, JobList, KeyCreated, OfferList, Quote
from router.models.budget import AlertList, Budget, BudgetAlert
from router.models.campaign import CampaignStatus, CampaignView
from router.models.common import ProviderKind
from router.models.job import CLIENT_VIDEO, JobStatus, JobView
from router.models.reconciliation import FindingList, ReconciliationFinding, ReconciliationReport
from router.services.costs import CostReport, TcoReport

GROUP_BY = ("provider", "offer", "tenant", "campaign", "day")


class Progress:
    """A bar redrawn in place on a terminal; one line per change elsewhere, so logs stay readable."""

    WIDTH = 24

    def __init__(self, stream: IO[str]) -> None:
        self._stream = stream
        self._tty = stream.isatty()
        self._last: tuple[str, int] | None = None

    def update(self, job: JobView) -> None:
        status = job.status.value
        fraction = min(max(job.progress, 0.0), 1.0)
        state = (status, round(fraction * 100))
        if state == self._last and not self._tty:
            return
        self._last = state
        filled = round(fraction * self.WIDTH)
        line = f"{job.id} [{'#' * filled}{'.' * (self.WIDTH - filled)}] {state[1]:3d}% {status}{_segment(job)}"
        self._stream.write(f"\r{line}\x1b[K" if self._tty else f"{line}\n")
        self._stream.flush()

    def finish(self) -> None:
        if self._tty and self._last is not None:
            self._stream.write("\n")
            self._stream.flush()


def _segment(job: JobView) -> str:
    """", segment 3 of 6" while a long-form job renders (the rest counted in renders like the current one)."""
    plan = job.segments
    if plan is None or not job.attempts or job.status.terminal:
        return ""
    each = max(1, job.attempts[-1].delivered.frames)
    done = sum(1 for s in plan.done if s.attempt_id != CLIENT_VIDEO)
    rest = max(0, plan.frames - plan.done_frames)
    return f", segment {min(done + 1, done + math.ceil(rest / each))} of {done + math.ceil(rest / each)}"


def _print_json(value: Any) -> None:
    print(json.dumps(value, indent=2))


def _read_request(path: str) -> bytes:
    """The file is sent as it is once it parses: the API validates it and names the offending field."""
    if path == "-":
        text = sys.stdin.buffer.read()
    else:
        try:
            text = Path(path).read_bytes()
        except OSError as exc:
            raise ApiError([f"cannot read {path}: {exc.strerror}"], 400) from exc
    request_syntax(text, "<stdin>" if path == "-" else path)
    return text


def _post_request(client: ApiClient, model: type[M], route: str, path: str,
                  headers: dict[str, str] | None = None) -> Answer[M]:
    """POST a request file (its `@file` inputs uploaded first, relative to the file); a refusal gains, for each
    field a VideoRequest lacks, the one it most likely meant."""
    body = client.with_uploads(_read_request(path), Path.cwd() if path == "-" else Path(path).parent)
    try:
        return client.answer(model, "POST", route, body=body, headers=headers)
    except ApiError as exc:
        if exc.status not in (400, 422):
            raise
        raise ApiError(exc.lines + field_suggestions(body), exc.status) from None


def format_quote(quote: Quote, now: datetime | None = None) -> str:
    now = now or datetime.now(UTC)
    header = ("offer", "feasible", "score", "est. cost", "ready at", "reasons")
    rows = [(c.offer, "yes" if c.feasible else "no", f"{c.score:.3f}" if c.score is not None else "-",
             dollars(c.estimated_cost_usd), when(c.estimated_ready_at, now), "; ".join(str(r) for r in c.reasons))
            for c in quote.candidates]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(5)]
    lines = ["  ".join([*(cell.ljust(w) for cell, w in zip(row[:5], widths, strict=True)), row[5]]).rstrip()
             for row in [header, *rows]]
    # Feasible offers and any with evidence: the infeasible rest would only repeat the catalog.
    shown = [(c.offer, quote.learned[c.offer]) for c in quote.candidates
             if c.offer in quote.learned and (c.feasible or quote.learned[c.offer].runs)]
    if shown:
        width = max(len(offer) for offer, _ in shown)
        lines += ["", "render time, learned beside catalog:"]
        lines += [f"  {offer.ljust(width)}  {figures.summary} ({figures.reference})" for offer, figures in shown]
    chosen = quote.chosen
    lines.append("")
    if chosen:
        lines.append(f"chosen: {chosen.offer} on {chosen.target}, {dollars(chosen.estimated_cost_usd)}, "
                     f"ready {when(chosen.estimated_ready_at, now)}, score {chosen.score:.3f}")
        if chosen.reason:
            lines.append(f"  why: {chosen.reason}")
        spec = chosen.delivered
        if spec.segments > 1:
            lines.append(f"  long-form: {spec.segments} renders of {spec.segment_frames} frames, each continuing "
                         "from the last frame of the one before, joined into one video")
        if chosen.explored:
            lines.append(f"  exploring, abandoned at {when(chosen.explore_until, now)} if not done: {chosen.explored}")
        if quote.fallbacks:
            lines.append(f"  fallbacks: {', '.join(quote.fallbacks)}")
    else:
        lines.append("chosen: none, no offer can take this request")
        lines += [f"  - {reason}" for reason in quote.reasons]
    return "\n".join(lines)


def format_costs(report: CostReport) -> str:
    scope = f"tenant {report.tenant}" if report.tenant else "all tenants"
    rows = [(g.key, str(g.videos), dollars(g.actual_usd), dollars(g.estimated_usd)) for g in report.groups]
    lines = [f"costs {report.start} to {report.end}, {scope}, by {report.group_by}", ""]
    lines += _table((report.group_by.value, "videos", "actual", "estimated"), rows)
    lines += ["", f"total: {dollars(report.total_usd)}"]
    return "\n".join(lines)


def format_tco(report: TcoReport) -> str:
    """The studio's TCO table shape (cost per video per option, monthly and yearly at 1,000 videos/month)."""
    scope = f"tenant {report.tenant}" if report.tenant else "all tenants"
    lines = [f"TCO {report.start} to {report.end}, {scope}: {report.videos} videos delivered", ""]
    lines += _table(("offer", "videos", "paid for videos", "per video", "failed attempts"),
                    [(o.offer, str(o.videos), dollars(o.actual_usd), dollars(o.per_video_usd),
                      dollars(o.other_attempts_usd)) for o in report.offers])
    lines.append("")
    lines += _table(("month", "videos", "as routed", "all veo", "all local", "not local", "static rule"),
                    [(m.period, str(m.videos), dollars(m.as_routed_usd), dollars(m.all_veo_usd),
                      dollars(m.all_local_usd), str(m.not_possible_locally), dollars(m.static_rule_usd))
                     for m in report.months])
    lines.append("")
    lines += _table(("option", "videos", "not possible", "total", "per video", "monthly at 1,000", "yearly at 1,000"),
                    [(o.option, str(o.videos), str(o.not_possible), dollars(o.total_usd), dollars(o.per_video_usd),
                      dollars(o.monthly_usd_at_1000), dollars(o.yearly_usd_at_1000)) for o in report.options])
    if report.mode_unknown:
        lines.append(f"{report.mode_unknown} videos of unknown mode (job gone) are priced on Veo only")
    gpu = report.local_gpu
    if gpu:
        busy_h, period_h = float(gpu.busy_gpu_seconds) / 3600, gpu.period_seconds / 3600
        lines += ["", f"local GPU ({gpu.cost_basis} basis): fixed {dollars(gpu.fixed_monthly_usd)}/month "
                      f"(${gpu.depreciation_usd_per_hour}/h depreciation), {dollars(gpu.fixed_usd)} over this window",
                  f"  variable spend {dollars(gpu.variable_usd)} (local energy {dollars(gpu.local_energy_usd)})"
                  f" + fixed {dollars(gpu.fixed_usd)} = {dollars(gpu.total_usd)}"
                  + (f"; renders were charged {dollars(gpu.charged_to_renders_usd)} of the fixed cost"
                     if gpu.charged_to_renders_usd else ""),
                  f"  utilization {100 * gpu.utilization:.1f} % ({busy_h:.1f} GPU-busy hours of {period_h:.0f})"]
    lines += ["", "method:"] + [f"  - {line}" for line in report.method]
    return "\n".join(lines)


def format_reconciliation(report: ReconciliationReport) -> str:
    """A run's counts, then what it found (each finding's figures, then its detail)."""
    counts = {name: n for name, n in report.counts.model_dump().items() if n and name != "rows"}
    first, last = report.start.date(), (report.end - timedelta.resolution).date()
    lines = [f"reconciliation {first} to {last} (UTC): {report.counts.rows} ledger rows checked against the "
             f"providers' records, tolerance {report.tolerance.relative:.0%} or {report.tolerance.absolute_s:g} s",
             "  " + (", ".join(f"{name.replace('_', ' ')} {n}" for name, n in counts.items()) or "nothing to check")]
    if not report.complete:
        lines.append(f"  incomplete: time ran out with {report.counts.not_checked} left unchecked; "
                     "reconcile a shorter window")
    lines += ["", f"{len(report.findings)} findings, {report.new_findings} new (alerted)"]
    return "\n".join(lines + _findings(report.findings))


def format_findings(found: FindingList) -> str:
    return "\n".join([f"stored findings of attempts that ended {found.start} to {found.end} (UTC): "
                      f"{len(found.findings)}", *_findings(found.findings)])


def _findings(findings: list[ReconciliationFinding]) -> list[str]:
    if not findings:
        return []
    rows = [(f.kind.value, f.attempt_id, f.provider.value, f.unit, f"{f.ledger_units:.3f}",
             "-" if f.provider_units is None else f"{f.provider_units:.3f}", dollars(f.ledger_usd),
             dollars(f.provider_usd)) for f in findings]
    table = _table(("kind", "attempt", "provider", "unit", "ledger", "provider", "ledger $", "provider $"), rows,
                   numeric_from=4)
    return ["", *table, "", *(f"{f.attempt_id}: {f.detail}" for f in findings)]


def format_budgets(budgets: list[Budget]) -> str:
    if not budgets:
        return "no budgets this period"
    rows = [(b.scope, b.period, dollars(b.limit_usd), dollars(b.spent_usd), dollars(b.reserved_usd),
             dollars(b.remaining_usd), b.spend_mode.value, ",".join(f"{t:g}" for t in b.thresholds))
            for b in budgets]
    return "\n".join(_table(("scope", "period", "limit", "spent", "reserved", "remaining", "mode", "thresholds"),
                             rows, numeric_from=2))


def format_agents(agents: list[AgentView], now: datetime | None = None) -> str:
    if not agents:
        return "no GPU agents have registered"
    now = now or datetime.now(UTC)
    rows = [(a.name, a.state.value, a.registration.gpu, f"{a.registration.vram_mb / 1024:.0f} GB",
             f"{a.registration.ram_mb / 1024:.0f} GB", str(a.registration.slots), _utilization_text(a),
             ",".join(a.registration.models) or "-", _queue_text(a), _speed_text(a), f"{_ago(a.last_seen, now)} ago")
            for a in agents]
    header = ("name", "state", "gpu", "vram", "ram", "slots", "util", "models", "queue", "learned", "last seen")
    return "\n".join(_table(header, rows, numeric_from=3))


def _utilization_text(agent: AgentView) -> str:
    """`37% of 1h`: the agent chooses its window, so the cell says which."""
    measured = agent.registration.utilization
    if agent.utilization is None or measured is None:
        return "-"
    window = round(measured.window_s)
    span = f"{window // 3600}h" if window % 3600 == 0 else f"{window // 60}m" if window % 60 == 0 else f"{window}s"
    return f"{agent.utilization:.0%} of {span}"


def _speed_text(agent: AgentView) -> str:
    if not agent.learned:
        return "nothing yet"
    runs = sum(speed.runs for speed in agent.learned.values())
    against = f"{agent.time_vs_fleet:.2f}x the fleet's time, " if agent.time_vs_fleet is not None else ""
    return f"{against}{len(agent.learned)} offers, {runs} runs"


def _queue_text(agent: AgentView) -> str:
    queue = agent.registration.queue
    if not queue:
        return "empty"
    running = sum(1 for work in queue if work.status == "running")
    return f"{running} running, {len(queue) - running} queued, done in {max(w.eta_s for w in queue):.0f}s"


def _ago(at: datetime, now: datetime) -> str:
    seconds = max(0, round((now - at).total_seconds()))
    minutes, secs = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


def format_alerts(alerts: list[BudgetAlert]) -> str:
    if not alerts:
        return "no budget alerts"
    rows = [(a.at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ"), a.scope, a.kind,
             a.mode.value if a.mode is not None else f"{a.threshold:.0%}" if a.threshold is not None else "-",
             dollars(a.spent_usd), dollars(a.limit_usd)) for a in alerts]
    return "\n".join(_table(("at", "scope", "kind", "threshold/mode", "spent", "limit"), rows, numeric_from=4))


# ------------------------------------------------------------------------------------------------------------ charts

def daily_spend(client: ApiClient, params: dict[str, str]) -> tuple[list[date], dict[str, dict[date, Decimal]]]:
    """Every day of the window, and each provider's spend per day (one report per provider: the API groups by one
    dimension at a time)."""
    by_provider = client.call(CostReport, "GET", "/v1/costs", params={**params, "group_by": "provider"})
    first, last = by_provider.start, by_provider.end
    days = [first + timedelta(days=n) for n in range((last - first).days + 1)]
    series: dict[str, dict[date, Decimal]] = {}
    for group in sorted(by_provider.groups, key=lambda g: g.key):
        by_day = {**params, "group_by": "day", "provider": group.key}
        report = client.call(CostReport, "GET", "/v1/costs", params=by_day)
        series[group.key] = {date.fromisoformat(g.key): g.actual_usd for g in report.groups}
    return days, series


def budget_limit(client: ApiClient, scope: str) -> Decimal | None:
    """This period's limit of a scope; None without that budget, or when the key may not read it (a member key
    reads its own tenant's and its campaigns')."""
    try:
        budgets = client.call(BudgetList, "GET", "/v1/budgets").budgets
    except ApiError as exc:
        if exc.status == 403:
            return None
        raise
    return next((b.limit_usd for b in budgets if b.scope == scope), None)


def draw_chart(days: list[date], series: dict[str, dict[date, Decimal]], limit: Decimal | None, scope: str,
               path: Path) -> None:
    """Month-to-date spend per provider, stacked by day, against the monthly budget line (budgets are monthly, so
    the running sums start again on the 1st)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg  # heavy and only for charts
    from matplotlib.figure import Figure

    figure = Figure(figsize=(10, 5), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    positions = list(range(len(days)))
    bottom = [0.0] * len(days)
    for provider, spend in series.items():
        running, heights = Decimal(0), []
        for day in days:
            running = (Decimal(0) if day.day == 1 else running) + spend.get(day, Decimal(0))
            heights.append(float(running))
        axes.bar(positions, heights, bottom=bottom, label=provider, width=0.8)
        bottom = [b + h for b, h in zip(bottom, heights, strict=True)]
    if limit is not None:
        axes.axhline(float(limit), color="crimson", linestyle="--", label=f"{scope} budget ${limit}")
    axes.set_title(f"spend per provider, month to date ({days[0]} to {days[-1]})")
    axes.set_ylabel("USD")
    if series or limit is not None:
        axes.legend(loc="upper left")
    step = max(1, len(days) // 15)
    axes.set_xticks(positions[::step], [day.isoformat() for day in days[::step]], rotation=45, ha="right")
    figure.savefig(path, dpi=100)


# ---------------------------------------------------------------------------------------------------------- commands

def _wait(client: ApiClient, job: Answer[JobView], interval_s: float, progress: Progress) -> Answer[JobView]:
    # Nothing server-side pushes to the CLI; the job's progress field is refreshed by the worker's own polls.
    progress.update(job.model)
    try:
        try:
            while not job.model.status.terminal:
                time.sleep(interval_s)
                job = client.answer(JobView, "GET", f"/v1/jobs/{job.model.id}")
                progress.update(job.model)
        finally:
            progress.finish()
    except KeyboardInterrupt:
        # The job is the server's: leaving the bar stops nothing.
        print(f"detached: {job.model.id} goes on; re-attach with `hvr jobs watch {job.model.id}`", file=sys.stderr)
        raise
    return job


def _saved_to(client: ApiClient, job: JobView, path: Path) -> str:
    """Download a succeeded job's output from the presigned URL its fresh read carries (GET /v1/jobs/{id} signs
    one per call, so a URL that expired in an old answer is never used)."""
    url = job.output.url if job.output else None
    if job.status is not JobStatus.SUCCEEDED or not url:
        hint = "" if job.status.terminal else f" yet (`hvr jobs watch {job.id}`)"
        raise ApiError([f"{job.id} is {job.status.value}: it has no output to download{hint}"])
    size = client.download(url, path)
    return f"saved {path} ({size} bytes)"


def cmd_submit(client: ApiClient, args: argparse.Namespace) -> int:
    if args.download and not Path(args.download).parent.is_dir():  # found out before a render is paid for
        raise ApiError([f"cannot save to {args.download}: no folder {Path(args.download).parent}"], 400)
    headers = {"Idempotency-Key": args.idempotency_key} if args.idempotency_key else {}
    accepted = _post_request(client, JobView, "/v1/jobs", args.file, headers)
    if args.no_wait:
        _show(accepted, format_job, args.json)
        return 0
    ended = _wait(client, accepted, args.poll_interval, Progress(sys.stderr))
    job = ended.model
    succeeded = job.status is JobStatus.SUCCEEDED
    saved = _saved_to(client, job, Path(args.download)) if succeeded and args.download else None
    _show(ended, format_job, args.json)
    if args.json and not succeeded and job.error:
        print(f"{job.id} {job.status}: {job.error.code}: {job.error.message}", file=sys.stderr)
    if saved:
        print(saved, file=sys.stderr if args.json else sys.stdout)  # stdout stays one JSON document with --json
    return 0 if succeeded else 1


def cmd_status(client: ApiClient, args: argparse.Namespace) -> int:
    _show(client.answer(JobView, "GET", f"/v1/jobs/{quote(args.id, safe='')}"), format_job, args.json)
    return 0


def cmd_quote(client: ApiClient, args: argparse.Namespace) -> int:
    answer = _post_request(client, Quote, "/v1/quotes", args.file)
    _show(answer, format_quote, args.json)
    return 0 if answer.model.chosen else 1


def cmd_jobs_list(client: ApiClient, args: argparse.Namespace) -> int:
    """Newest first, page after page until --limit: the API's pages stop at 500."""
    params = {name: value for name, value in (
        ("status", args.status), ("campaign_id", args.campaign), ("provider", args.provider), ("offer", args.offer),
        ("from", args.start), ("to", args.end)) if value}
    jobs, sent, cursor = _pages(client, JobList, "/v1/jobs", params, "items", args.limit)
    if args.json:
        _print_json({"items": sent, "next_cursor": cursor})
    else:
        print(format_jobs(jobs))
        if cursor:
            print(f"(more: --limit {args.limit * 2})", file=sys.stderr)
    return 0


def _pages(client: ApiClient, model: type[Any], path: str, params: dict[str, str], field: str,
           limit: int | None = None) -> tuple[list[Any], list[Any], str | None]:
    """A listing read page after page (the API's pages stop at 500) until `limit` items or its last page: the
    items as models, as sent (for --json), and the cursor left, if `limit` stopped it."""
    found: list[Any] = []
    sent: list[Any] = []
    cursor: str | None = None
    while limit is None or len(found) < limit:
        size = 500 if limit is None else min(500, limit - len(found))
        page = client.answer(model, "GET", path,
                             params={**params, "limit": str(size), **({"cursor": cursor} if cursor else {})})
        found += getattr(page.model, field)
        sent += page.json[field]
        cursor = page.model.next_cursor
        if cursor is None:
            break
    return found, sent, cursor


def cmd_jobs_cancel(client: ApiClient, args: argparse.Namespace) -> int:
    _show(client.answer(JobView, "POST", f"/v1/jobs/{quote(args.id, safe='')}/cancel"), format_job, args.json)
    return 0


def cmd_jobs_watch(client: ApiClient, args: argparse.Namespace) -> int:
    ended = _wait(client, client.answer(JobView, "GET", f"/v1/jobs/{quote(args.id, safe='')}"), args.poll_interval,
                  Progress(sys.stderr))
    _show(ended, format_job, args.json)
    return 0 if ended.model.status is JobStatus.SUCCEEDED else 1


def cmd_jobs_download(client: ApiClient, args: argparse.Namespace) -> int:
    job = client.call(JobView, "GET", f"/v1/jobs/{quote(args.id, safe='')}")
    print(_saved_to(client, job, Path(args.output or f"{job.id}.mp4")))
    return 0


def cmd_providers(client: ApiClient, args: argparse.Namespace) -> int:
    _show(client.answer(OfferList, "GET", "/v1/providers"), lambda listed: format_providers(listed.offers), args.json)
    return 0


def cmd_upload(client: ApiClient, args: argparse.Namespace) -> int:
    print(client.upload(Path(args.file)))  # the ref alone, to paste into a request or `REF=$(hvr upload …)`
    return 0


def cmd_keys_create(client: ApiClient, args: argparse.Namespace) -> int:
    role = "admin" if args.admin else "member"
    created = client.call(KeyCreated, "POST", "/v1/keys", json_body={"tenant": args.tenant, "role": role})
    # The key alone on stdout, so `KEY=$(hvr keys create …)` works; it is stored hashed and never shown again.
    print(created.key)
    print(f"{created.role} key for tenant {created.tenant} created {created.created_at}; it is shown only once",
          file=sys.stderr)
    return 0


def cmd_costs(client: ApiClient, args: argparse.Namespace) -> int:
    params = {name: value for name, value in (("from", args.start), ("to", args.end), ("tenant", args.tenant))
              if value}
    sent: dict[str, Any] = {}
    if args.group_by or not args.tco:
        report = client.answer(CostReport, "GET", "/v1/costs",
                               params={**params, "group_by": args.group_by or "provider"})
        sent["costs"] = report.json
        if not args.json:
            print(format_costs(report.model))
    if args.tco:
        tco = client.answer(TcoReport, "GET", "/v1/costs/tco", params=params)
        sent["tco"] = tco.json
        if not args.json:
            print(format_tco(tco.model))
    if args.json:
        _print_json(next(iter(sent.values())) if len(sent) == 1 else sent)
    if args.chart:
        days, series = daily_spend(client, params)
        scope = f"tenant:{args.tenant}" if args.tenant else "global"
        draw_chart(days, series, budget_limit(client, scope), scope, Path(args.chart))
        print(f"saved {args.chart}", file=sys.stderr)
    return 0


def cmd_reconcile(client: ApiClient, args: argparse.Namespace) -> int:
    """Run a reconciliation through the API (admin keys), or with --stored list what runs have found."""
    if args.stored:
        params = {name: value for name, value in (("from", args.start), ("to", args.end)) if value}
        _show(client.answer(FindingList, "GET", "/v1/reconciliation", params=params), format_findings, args.json)
        return 0
    yesterday = (datetime.now(UTC).date() - timedelta(days=1)).isoformat()
    body = {"from": args.start or yesterday, "to": args.end or yesterday}
    _show(client.answer(ReconciliationReport, "POST", "/v1/reconciliation/runs", json_body=body),
          format_reconciliation, args.json)
    return 0


def _show(answer: Answer[M], formatted: Callable[[M], str], as_json: bool) -> None:
    """The server's JSON as it sent it, or the answer as text."""
    if as_json:
        _print_json(answer.json)
    else:
        print(formatted(answer.model))


def cmd_budgets(client: ApiClient, args: argparse.Namespace) -> int:
    _show(client.answer(BudgetList, "GET", "/v1/budgets"), lambda listed: format_budgets(listed.budgets), args.json)
    return 0


def cmd_alerts(client: ApiClient, args: argparse.Namespace) -> int:
    """Every page, newest first: a scope has a few alerts a month, so the whole history is a short read."""
    params = {name: value for name, value in (("scope", args.scope), ("period", args.period)) if value}
    alerts, sent, _ = _pages(client, AlertList, "/v1/alerts", params, "alerts")
    if args.json:
        _print_json({"alerts": sent, "next_cursor": None})
    else:
        print(format_alerts(alerts))
    return 0


def cmd_agents(client: ApiClient, args: argparse.Namespace) -> int:
    _show(client.answer(AgentList, "GET", "/v1/agents"), lambda listed: format_agents(listed.agents), args.json)
    return 0


def cmd_agents_key(client: ApiClient, args: argparse.Namespace) -> int:
    """create and rotate: one route. The key id and secret alone on stdout, as the agent's environment takes them
    (`hvr agents create gpu-1 > gpu-1.env`); the secret is kept only in Secrets Manager and never shown again."""
    key = client.call(AgentKey, "POST", f"/v1/agents/{quote(args.name, safe='')}/keys")
    print(f"HVR_AGENT_KEY_ID={key.key_id}")
    print(f"HVR_AGENT_KEY_SECRET={key.secret}")
    note = f"key {key.key_id} for agent {key.name} created {key.created_at:%Y-%m-%dT%H:%M:%SZ}; shown only once"
    if key.previous_key_id and key.previous_valid_until:
        note += (f"; the previous key {key.previous_key_id} still signs until "
                 f"{key.previous_valid_until:%Y-%m-%dT%H:%M:%SZ}: give the agent the new one before then")
    print(note, file=sys.stderr)
    return 0


def cmd_agents_revoke(client: ApiClient, args: argparse.Namespace) -> int:
    gone = client.call(AgentKeysRevoked, "DELETE", f"/v1/agents/{quote(args.name, safe='')}/keys")
    print(f"revoked {', '.join(gone.revoked_key_ids) or 'no live key'} of agent {gone.name}: "
          f"its next heartbeat is refused")
    return 0


def cmd_agents_drain(client: ApiClient, args: argparse.Namespace) -> int:
    method = "POST" if args.agents_command == "drain" else "DELETE"
    agent = client.call(AgentView, method, f"/v1/agents/{quote(args.name, safe='')}/drain")
    print(format_agents([agent]))
    return 0


def cmd_budgets_set(client: ApiClient, args: argparse.Namespace) -> int:
    body: dict[str, Any] = {"limit_usd": args.limit}
    if args.thresholds is not None:
        body["thresholds"] = args.thresholds
    if args.mode is not None:
        body["spend_mode"] = args.mode
    print(format_budgets([client.call(Budget, "PUT", f"/v1/budgets/{quote(args.scope, safe=':')}", json_body=body)]))
    return 0


def cmd_completion(args: argparse.Namespace) -> int:
    import shtab  # generated from the parser itself, so a new command or option completes with no script to edit

    print(shtab.complete(build_parser(), args.shell), end="")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from hvr.demo import main as demo_main

    return demo_main([])


def cmd_sandbox(args: argparse.Namespace) -> int:
    from hvr.sandbox.all import serve

    return serve(args.time_scale)


def cmd_dev(args: argparse.Namespace) -> int:
    from hvr.local.embedded import run_dev  # the whole embedded stack: imported only when asked for

    return int(run_dev(port=args.port, time_scale=args.time_scale, api_keys=os.environ.get("HVR_DEV_API_KEYS"),
                       agent_engine=args.agent_engine, comfyui_url=args.comfyui_url, agents=args.agents,
                       data_dir=args.data_dir, fresh=args.fresh, quiet=args.quiet))


# --------------------------------------------------------------------------------------------------------- calibrate

# A new GPU box's standard set: every local family the studio runs, small, with WAN 1.3B at two lengths so a
# learned model can tell the time per frame from the fixed overhead. Pinned (`model`), so they run on the local GPU
# whatever it would cost, and are learned through finalize like any job. No deadline: the catalog's figures for an
# unknown box may say hours.
CALIBRATION_PROMPT = "hvr calibration: a red fox trotting through fresh snow at dawn, slow tracking shot"
CALIBRATION_SET: tuple[dict[str, Any], ...] = (
    {"model": "local/animatediff-sd15", "resolution": "512x512", "aspect_ratio": "1:1", "duration_s": 2, "fps": 8},
    {"model": "local/wan21-1.3b", "resolution": "480p", "duration_s": 1, "fps": 16},
    {"model": "local/wan21-1.3b", "resolution": "480p", "duration_s": 3, "fps": 16},
    {"model": "local/wan21-14b", "resolution": "480p", "duration_s": 1, "fps": 16},
)


def calibration_requests(seed: int = 7) -> list[dict[str, Any]]:
    return [{"mode": "t2v", "prompt": CALIBRATION_PROMPT, "quality": "draft", "priority": "batch", "seed": seed,
             "metadata": {"purpose": "calibration"}, **item} for item in CALIBRATION_SET]


def _calibration_row(job: JobView) -> tuple[str, ...]:
    status = job.status.value + (f" ({job.error.code})" if job.error else "")
    cost = (dollars(job.cost.actual_usd), dollars(job.cost.estimated_usd))
    attempt = job.attempts[-1] if job.attempts else None
    if attempt is None:
        return (job.request.model or "-", "-", "-", "-", "-", "-", *cost, status)
    took, catalog, delivered = attempt.billed.gpu_seconds, attempt.estimated_render_s, attempt.delivered
    return (attempt.offer or job.request.model or "-", f"{delivered.width}x{delivered.height}", str(delivered.frames),
            f"{took:.0f}" if took else "-", f"{catalog:.0f}" if catalog else "-",
            f"{took / catalog:.2f}x" if took and catalog else "-", *cost, status)


def format_calibration(jobs: list[JobView]) -> str:
    """What each calibration job took on the GPU against the catalog's p50 for it, and what it cost."""
    header = ("offer", "size", "frames", "took GPU-s", "catalog p50 s", "took/catalog", "cost", "estimated",
              "status")
    return "\n".join(_table(header, [_calibration_row(job) for job in jobs], numeric_from=2))


def cmd_calibrate(client: ApiClient, args: argparse.Namespace) -> int:
    """Submit the standard set pinned to the local offers, wait for every job, print each against the catalog."""
    jobs = []
    for body in calibration_requests(args.seed):
        job = client.call(JobView, "POST", "/v1/jobs", json_body=body)
        print(f"{job.id} {body['model']} {body['resolution']} {body['duration_s']} s: {job.status}", file=sys.stderr)
        jobs.append(job)
    deadline = time.monotonic() + args.timeout
    while any(not job.status.terminal for job in jobs) and time.monotonic() < deadline:
        time.sleep(args.poll_interval)
        jobs = [job if job.status.terminal else client.call(JobView, "GET", f"/v1/jobs/{job.id}") for job in jobs]
    print(format_calibration(jobs))
    pending = [job.id for job in jobs if not job.status.terminal]
    if pending:
        print(f"still running after {args.timeout:.0f} s: {', '.join(pending)} (they finish and are learned "
              "without this command)", file=sys.stderr)
    return 0 if all(job.status is JobStatus.SUCCEEDED for job in jobs) else 1


# --------------------------------------------------------------------------------------------------------- campaigns

def _watch_campaign(client: ApiClient, campaign: CampaignView, interval_s: float) -> CampaignView:
    stream = sys.stderr
    tty = stream.isatty()
    last = ""
    while True:
        line = f"{campaign.id} {campaign_bar(campaign)}"
        if line != last:
            stream.write(f"\r{line}\x1b[K" if tty else f"{line}\n")
            stream.flush()
            last = line
        if campaign.status in CAMPAIGN_DONE:
            break
        time.sleep(interval_s)
        campaign = client.call(CampaignView, "GET", f"/v1/campaigns/{campaign.id}")
    if tty:
        stream.write("\n")
    return campaign


def _campaign_exit(campaign: CampaignView) -> int:
    counts = campaign.counts
    troubled = counts.failed + counts.rejected + counts.expired + counts.cancelled
    return 0 if campaign.status is CampaignStatus.COMPLETED and not troubled else 1


def _campaign_jobs(client: ApiClient, campaign_id: str) -> Iterator[JobView]:
    cursor: str | None = None
    while True:
        page = client.call(JobList, "GET", "/v1/jobs", params={
            "campaign_id": campaign_id, "limit": "500", **({"cursor": cursor} if cursor else {})})
        yield from page.items
        cursor = page.next_cursor
        if cursor is None:
            return


def _budget_refusals(client: ApiClient, campaign: CampaignView) -> list[str]:
    """An ended campaign's items that its budgets refused, with the figures: the counts alone call them rejected
    or failed, which reads as a fault of the items."""
    counts = campaign.counts
    if campaign.status not in CAMPAIGN_DONE or not counts.rejected + counts.failed:
        return []
    refused = [f"{job.id}: {job.error.message}" for job in _campaign_jobs(client, campaign.id)
               if job.error and job.error.code == "budget_exhausted"]
    if not refused:
        return []
    return [f"  refused for budget: {len(refused)} of {counts.total} items; spent {dollars(campaign.spent_usd)} of "
            f"budget {dollars(campaign.budget_usd)}", f"    {refused[0]}"]


def _campaign_text(client: ApiClient, campaign: CampaignView) -> str:
    return "\n".join([format_campaign(campaign), *_budget_refusals(client, campaign)])


def cmd_campaign_submit(client: ApiClient, args: argparse.Namespace) -> int:
    body, warnings = campaign_body(Path(args.file), args.name)
    for warning in warnings:
        print(f"warning: {warning}", file=sys.stderr)
    answer = client.answer(CampaignView, "POST", "/v1/campaigns", json_body=body)
    campaign = answer.model
    print(campaign.id)  # alone on stdout, so `ID=$(hvr campaign submit …)` works
    if answer.status == 200:  # the API's answer for a name it already has: that campaign, unchanged
        print(f"a campaign named {campaign.name!r} already exists (created {campaign.created_at:%Y-%m-%d %H:%M}Z): "
              f"nothing was submitted, here it is. To run this manifest again, give it a new name: "
              f"hvr campaign submit {args.file} --name {campaign.name}-2", file=sys.stderr)
    if not args.wait:
        print(_campaign_text(client, campaign), file=sys.stderr)
        return 0
    campaign = _watch_campaign(client, campaign, args.poll_interval)
    print(_campaign_text(client, campaign), file=sys.stderr)
    return _campaign_exit(campaign)


def cmd_campaign_status(client: ApiClient, args: argparse.Namespace) -> int:
    answer = client.answer(CampaignView, "GET", f"/v1/campaigns/{quote(args.id, safe='')}")
    if args.json:
        _print_json(answer.json)
        return 0
    campaign = answer.model
    if args.watch:
        campaign = _watch_campaign(client, campaign, args.poll_interval)
    print(_campaign_text(client, campaign))
    return _campaign_exit(campaign) if args.watch else 0


def cmd_campaign_download(client: ApiClient, args: argparse.Namespace) -> int:
    """Every output of a campaign into a folder, as <job id>.mp4. Run again, it fetches only what is missing or
    incomplete: a file is written under a .part name and renamed once whole, so a complete one is its size."""
    campaign = client.call(CampaignView, "GET", f"/v1/campaigns/{quote(args.id, safe='')}")  # an id or a name
    folder = Path(args.output)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ApiError([f"cannot make the folder {folder}: {exc.strerror}"], 400) from None
    saved = kept = waiting = 0
    for job in _campaign_jobs(client, campaign.id):
        if job.status is not JobStatus.SUCCEEDED or job.output is None:
            waiting += not job.status.terminal
            continue
        target = folder / f"{job.id}.mp4"
        if target.is_file() and target.stat().st_size == job.output.bytes:
            kept += 1
            continue
        partial = target.with_name(f"{target.name}.part")
        # Read again for a URL signed now: a listing's URLs could expire while a long campaign downloads.
        _saved_to(client, client.call(JobView, "GET", f"/v1/jobs/{job.id}"), partial)
        partial.replace(target)
        saved += 1
        print(f"saved {target}", file=sys.stderr)
    print(f"{campaign.id} {campaign.name}: {saved} saved, {kept} already complete in {folder}"
          + (f", {waiting} not finished yet (run this again later)" if waiting else ""))
    return 0


# ------------------------------------------------------------------------------------------------------------ parser

def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hvr", description="Hybrid Video Router")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    dev = commands.add_parser("dev", help="run the whole stack locally (moto, agent on sim, sandboxes, HTTP API)")
    dev.add_argument("--port", type=int, default=8787)
    dev.add_argument("--time-scale", type=float, default=None,
                     help="modelled seconds per wall second (default: the largest sample renders in ~10 s)")
    dev.add_argument("--agent-engine", choices=["sim", "comfyui"], default="sim",
                     help="the GPU agent's engine; comfyui runs against the ComfyUI sandbox unless --comfyui-url")
    dev.add_argument("--comfyui-url", default=None, help="a real ComfyUI for the agent instead of the sandbox")
    dev.add_argument("--agents", default=None, metavar="CARDS",
                     help="a fleet of sim GPU boxes, e.g. 5090,4090,3090 (each its card's VRAM and speed)")
    dev.add_argument("--data-dir", type=Path, default=None, metavar="DIR",
                     help="where jobs, budgets, ledger, keys and outputs are kept across restarts "
                          "(default: $XDG_STATE_HOME/hvr/dev, or ~/.local/state/hvr/dev)")
    dev.add_argument("--fresh", action="store_true", help="forget what the data dir kept and start empty")
    dev.add_argument("--quiet", action="store_true",
                     help="no line per API request and per job status change (they go to stderr)")
    dev.set_defaults(run=cmd_dev, client=False)

    demo = commands.add_parser("demo", help="the sample requests and campaign end to end (what `make demo` runs)")
    demo.set_defaults(run=cmd_demo, client=False)

    sandbox = commands.add_parser("sandbox", help="serve the RunPod, Replicate and Veo sandboxes alone, on loopback")
    sandbox.add_argument("--time-scale", type=float, default=None,
                         help="modelled seconds per wall second, as for dev (reported render times are modelled)")
    sandbox.set_defaults(run=cmd_sandbox, client=False)

    from hvr.sim.cli import register as register_simulate  # argparse only; the simulator loads when it runs
    register_simulate(commands)

    api = argparse.ArgumentParser(add_help=False)
    api.add_argument("--api-url", default=os.environ.get("HVR_API_URL") or DEFAULT_API_URL,
                     help="API base URL (env HVR_API_URL; default %(default)s)")
    api.add_argument("--api-key", default=os.environ.get("HVR_API_KEY"), help="API key (env HVR_API_KEY)")

    submit = commands.add_parser("submit", parents=[api], help="submit a VideoRequest and wait for the result")
    submit.add_argument("file", help="VideoRequest JSON file, or - for stdin")
    submit.add_argument("--idempotency-key", help="same key + same body returns the same job")
    submit.add_argument("--no-wait", action="store_true", help="print the accepted job and return")
    submit.add_argument("--download", metavar="PATH", help="save the output video here once it succeeds")
    submit.add_argument("--poll-interval", type=float, default=1.0, metavar="SECONDS")
    submit.add_argument("--json", action="store_true", help="the job as the API sent it instead of a summary")
    submit.set_defaults(run=cmd_submit, client=True)

    status = commands.add_parser("status", parents=[api], help="a job: status, where and why, cost, output")
    status.add_argument("id")
    status.add_argument("--json", action="store_true", help="the whole job as the API sent it")
    status.set_defaults(run=cmd_status, client=True)

    quote = commands.add_parser("quote", parents=[api], help="show where a request would go, and why")
    quote.add_argument("file", help="VideoRequest JSON file, or - for stdin")
    quote.add_argument("--json", action="store_true", help="the API's answer as JSON, as it was sent")
    quote.set_defaults(run=cmd_quote, client=True)

    jobs = commands.add_parser("jobs", help="list, watch, cancel and download jobs")
    job_commands = jobs.add_subparsers(dest="jobs_command", required=True, metavar="COMMAND")
    listing = job_commands.add_parser("list", parents=[api], help="jobs, newest first, as a table")
    listing.add_argument("--status", choices=[s.value for s in JobStatus])
    listing.add_argument("--campaign", metavar="ID", help="the jobs of one campaign (its id)")
    listing.add_argument("--provider", choices=[p.value for p in ProviderKind],
                         help="routed to or attempted on this provider")
    listing.add_argument("--offer", help="routed to or attempted on this offer (see hvr providers)")
    listing.add_argument("--from", dest="start", type=_iso_date, metavar="YYYY-MM-DD", help="created on or after, UTC")
    listing.add_argument("--to", dest="end", type=_iso_date, metavar="YYYY-MM-DD", help="created on or before, UTC")
    listing.add_argument("--limit", type=_positive, default=20, help="at most this many (default %(default)s)")
    listing.add_argument("--json", action="store_true", help="the API's listing as JSON")
    listing.set_defaults(run=cmd_jobs_list, client=True)
    watch = job_commands.add_parser("watch", parents=[api], help="a progress bar until the job ends; Ctrl-C detaches")
    watch.add_argument("id")
    watch.add_argument("--poll-interval", type=float, default=1.0, metavar="SECONDS")
    watch.add_argument("--json", action="store_true", help="the ended job as the API sent it")
    watch.set_defaults(run=cmd_jobs_watch, client=True)
    cancel = job_commands.add_parser("cancel", parents=[api], help="cancel a job that has not ended")
    cancel.add_argument("id")
    cancel.add_argument("--json", action="store_true", help="the cancelled job as the API sent it")
    cancel.set_defaults(run=cmd_jobs_cancel, client=True)
    download = job_commands.add_parser("download", parents=[api], help="save a succeeded job's video")
    download.add_argument("id")
    download.add_argument("-o", "--output", metavar="FILE", help="where (default: <job id>.mp4 here)")
    download.set_defaults(run=cmd_jobs_download, client=True)

    providers = commands.add_parser("providers", parents=[api],
                                    help="every offer: health, circuit, queue, render times learned beside the catalog")
    providers.add_argument("--json", action="store_true", help="the API's answer as JSON, as it was sent")
    providers.set_defaults(run=cmd_providers, client=True)

    upload = commands.add_parser("upload", parents=[api], help="upload an input file; prints its s3:// ref")
    upload.add_argument("file", help="an image, audio or video file (.png .jpg .jpeg .webp .wav .mp3 .mp4)")
    upload.set_defaults(run=cmd_upload, client=True)

    calibrate = commands.add_parser("calibrate", parents=[api],
                                    help="time a new GPU box: a small standard set of jobs pinned to the local offers")
    calibrate.add_argument("--seed", type=int, default=7, help="the requests' seed (default %(default)s)")
    calibrate.add_argument("--poll-interval", type=float, default=2.0, metavar="SECONDS")
    calibrate.add_argument("--timeout", type=float, default=4 * 3600.0, metavar="SECONDS",
                           help="stop waiting after this long (default 4 h); the jobs run on regardless")
    calibrate.set_defaults(run=cmd_calibrate, client=True)

    keys = commands.add_parser("keys", help="API keys (admin)")
    key_commands = keys.add_subparsers(dest="keys_command", required=True, metavar="COMMAND")
    create = key_commands.add_parser("create", parents=[api], help="create a key for a tenant; printed once")
    create.add_argument("--tenant", required=True)
    create.add_argument("--admin", action="store_true", help="the admin role (budgets, keys)")
    create.set_defaults(run=cmd_keys_create, client=True)

    costs = commands.add_parser("costs", parents=[api], help="spend in a window: a table, a chart or the TCO table")
    costs.add_argument("--from", dest="start", type=_iso_date, metavar="YYYY-MM-DD",
                       help="first day (default: the 1st of this month)")
    costs.add_argument("--to", dest="end", type=_iso_date, metavar="YYYY-MM-DD", help="last day (default: today)")
    costs.add_argument("--group-by", choices=GROUP_BY, help="table rows (default: provider)")
    costs.add_argument("--tenant", help="one tenant (admin keys; a member key always reports on its own)")
    costs.add_argument("--chart", metavar="PNG", help="draw spend per provider per day against the budget line")
    costs.add_argument("--tco", action="store_true",
                       help="the studio's TCO table: as routed vs all Veo, all local and the static rule")
    costs.add_argument("--json", action="store_true", help="the API's report as JSON (with --tco too: both, keyed)")
    costs.set_defaults(run=cmd_costs, client=True)

    reconcile = commands.add_parser("reconcile", parents=[api],
                                    help="check the ledger against the providers' own records (admin)")
    reconcile.add_argument("--from", dest="start", type=_iso_date, metavar="YYYY-MM-DD",
                           help="first day, UTC (default: yesterday; with --stored, the 1st of this month)")
    reconcile.add_argument("--to", dest="end", type=_iso_date, metavar="YYYY-MM-DD",
                           help="last day, inclusive (default: yesterday; with --stored, today)")
    reconcile.add_argument("--stored", action="store_true", help="list the findings runs have stored; run nothing")
    reconcile.add_argument("--json", action="store_true", help="the API's report (or findings) as JSON")
    reconcile.set_defaults(run=cmd_reconcile, client=True)

    budgets = commands.add_parser("budgets", parents=[api], help="list this period's budgets, or set one (admin)")
    budgets.add_argument("--json", action="store_true", help="the API's answer as JSON, as it was sent")
    budgets.set_defaults(run=cmd_budgets, client=True)
    budget_commands = budgets.add_subparsers(dest="budgets_command", metavar="COMMAND")
    # The API options again, defaulting to "not given" so `hvr budgets --api-key K set …` keeps K.
    api_again = argparse.ArgumentParser(add_help=False)
    api_again.add_argument("--api-url", default=argparse.SUPPRESS, help="as for hvr budgets")
    api_again.add_argument("--api-key", default=argparse.SUPPRESS, help="as for hvr budgets")
    put = budget_commands.add_parser("set", parents=[api_again], help="set a scope's limit, thresholds or mode")
    put.add_argument("scope", help="global, tenant:<id> or campaign:<id>")
    put.add_argument("--limit", required=True, type=_usd, metavar="USD", help="monthly limit, e.g. 100.00")
    put.add_argument("--thresholds", type=_fractions, metavar="F,F,…",
                     help="alert at these fractions of the limit (default 0.5,0.8,1.0)")
    put.add_argument("--mode", metavar="MODE", help="spend mode: normal, economy, local_only or paused")
    put.set_defaults(run=cmd_budgets_set)

    agents = commands.add_parser("agents", parents=[api],
                                 help="the GPU boxes (admin): list, or create|rotate|revoke a key, drain|undrain")
    agents.add_argument("--json", action="store_true", help="the API's listing as JSON")
    agents.set_defaults(run=cmd_agents, client=True)
    agent_commands = agents.add_subparsers(dest="agents_command", metavar="COMMAND")
    agents_api = argparse.ArgumentParser(add_help=False)  # as api_again: `hvr agents --api-key K drain …` keeps K
    agents_api.add_argument("--api-url", default=argparse.SUPPRESS, help="as for hvr agents")
    agents_api.add_argument("--api-key", default=argparse.SUPPRESS, help="as for hvr agents")
    for command, run, text in (
            ("create", cmd_agents_key, "a key for an agent: HVR_AGENT_KEY_ID and _SECRET on stdout, shown once"),
            ("rotate", cmd_agents_key, "a new key; the previous one signs for an overlap (1 h by default)"),
            ("revoke", cmd_agents_revoke, "every key of the agent stops signing now"),
            ("drain", cmd_agents_drain, "finish what the box holds, take nothing new"),
            ("undrain", cmd_agents_drain, "take work again")):
        sub = agent_commands.add_parser(command, parents=[agents_api], help=text)
        sub.add_argument("name", help="the agent's name (lowercase letters, digits, '-')")
        sub.set_defaults(run=run)

    alerts = commands.add_parser("alerts", parents=[api],
                                 help="budget alerts, newest first: thresholds crossed and spend modes moved")
    alerts.add_argument("--scope", help="global, tenant:<id> or campaign:<id> (default: every scope the key sees)")
    alerts.add_argument("--period", type=_period, metavar="YYYY-MM", help="one budget period (default: all)")
    alerts.add_argument("--json", action="store_true", help="the API's alerts as JSON")
    alerts.set_defaults(run=cmd_alerts, client=True)
    campaign = commands.add_parser("campaign", help="campaigns: many videos, one deadline, one budget")
    campaign_commands = campaign.add_subparsers(dest="campaign_command", required=True, metavar="COMMAND")
    campaign_submit = campaign_commands.add_parser(
        "submit", parents=[api], help="post a JSON Lines manifest (header + up to 1,000 items) as a campaign")
    campaign_submit.add_argument("file", help="manifest: optional {\"campaign\": {...}} line, then one request a line")
    campaign_submit.add_argument("--name", help="campaign name (default: the header's, else the file's name)")
    campaign_submit.add_argument("--wait", action="store_true", help="follow it with a progress bar until it ends")
    campaign_submit.add_argument("--poll-interval", type=float, default=2.0, metavar="SECONDS")
    campaign_submit.set_defaults(run=cmd_campaign_submit, client=True)
    campaign_status = campaign_commands.add_parser("status", parents=[api],
                                                   help="counts, spend, projections, invalid lines, items at risk")
    campaign_status.add_argument("id")
    campaign_status.add_argument("--watch", action="store_true", help="redraw the progress bar until it ends")
    campaign_status.add_argument("--json", action="store_true", help="the API's Campaign as JSON")
    campaign_status.add_argument("--poll-interval", type=float, default=2.0, metavar="SECONDS")
    campaign_status.set_defaults(run=cmd_campaign_status, client=True)
    campaign_download = campaign_commands.add_parser("download", parents=[api],
                                                     help="every output into a folder; run again to resume")
    campaign_download.add_argument("id", metavar="ID_OR_NAME",
                                   help="the campaign's id (hvr campaign submit prints it) or its name")
    campaign_download.add_argument("-o", "--output", required=True, metavar="DIR")
    campaign_download.set_defaults(run=cmd_campaign_download, client=True)

    from hvr.scorecard_text import register as register_ratings  # `hvr rate`, `hvr scorecard`
    register_ratings(commands, api)
    from hvr.experiments_text import register as register_experiments  # `hvr experiments`
    register_experiments(commands, api)

    completion = commands.add_parser("completion", help="a shell completion script: eval \"$(hvr completion bash)\"")
    completion.add_argument("shell", choices=["bash", "zsh", "tcsh"])
    completion.set_defaults(run=cmd_completion, client=False)
    return parser


def _iso_date(text: str) -> str:
    try:
        return date.fromisoformat(text).isoformat()
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date (YYYY-MM-DD)") from exc


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive whole number")
    return value


def _period(text: str) -> str:
    try:
        datetime.strptime(text, "%Y-%m")
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text!r} is not a month (YYYY-MM)") from exc
    if len(text) != 7:  # strptime also reads 2026-1
        raise argparse.ArgumentTypeError(f"{text!r} is not a month (YYYY-MM)")
    return text


def _usd(text: str) -> str:
    """Money stays a decimal string end to end: `100.00` is sent as written, never through a float."""
    try:
        value = Decimal(text)
    except InvalidOperation as exc:
        raise argparse.ArgumentTypeError(f"{text!r} is not an amount in USD") from exc
    if not value.is_finite() or value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not an amount in USD")
    return text


def _fractions(text: str) -> list[float]:
    try:
        return [float(part) for part in text.split(",") if part.strip()]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of fractions") from exc


def _command(args: argparse.Namespace) -> str:
    """`hvr campaign status`, say: which command a one-line failure is about."""
    words = [args.command, *(getattr(args, dest, None) for dest in ("keys_command", "budgets_command", "jobs_command",
                                                                    "campaign_command", "agents_command"))]
    return " ".join(["hvr", *(word for word in words if word)])


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if not args.client:
        return int(args.run(args))
    run: Callable[[ApiClient, argparse.Namespace], int] = args.run
    client = ApiClient(args.api_url, args.api_key)
    try:
        return run(client, args)
    except UnreadableAnswer as exc:
        print(f"{_command(args)}: {exc}", file=sys.stderr)
        return exc.exit_code
    except ApiError as exc:
        print("\n".join(exc.lines), file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    finally:
        client.close()
