"""Campaigns as a person reads and writes them: a JSON Lines manifest as a `POST /v1/campaigns` body, and a
campaign's progress, plan and troubles as lines (`hvr campaign`, and the demo's campaign)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter

from hvr.client import ApiError
from router.models.campaign import CampaignStatus, CampaignView

# `as of` shows the moment as the API's JSON writes it (`…Z`), as it did when it printed that text; `str` differs.
_AS_SENT = TypeAdapter(datetime)


def dollars(value: Decimal | None) -> str:
    return "-" if value is None else f"${value}"


def when(at: datetime | None, now: datetime) -> str:
    if at is None:
        return "-"
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    seconds = max(0, round((at - now).total_seconds()))
    minutes, secs = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    rel = f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"
    return f"{at.astimezone(UTC):%H:%M:%S}Z (+{rel})"


CAMPAIGN_DONE = frozenset({CampaignStatus.COMPLETED, CampaignStatus.FAILED})
MAX_INLINE_ITEMS = 1000


def campaign_body(path: Path, name: str | None) -> tuple[dict[str, Any], list[str]]:
    """A JSON Lines manifest as a `POST /v1/campaigns` body: the header's fields, then its items inline.

    Items without an `item_id` get their line number, as in a manifest dropped in S3, so both ways name the same
    items. Lines that aren't JSON objects can't be sent inline: they come back as warnings."""
    body: dict[str, Any] = {}
    items: list[dict[str, Any]] = []
    warnings: list[str] = []
    try:
        lines = path.read_text().splitlines()
    except OSError as exc:
        raise ApiError([f"cannot read {path}: {exc.strerror}"], 400) from exc
    for number, text in enumerate(lines, start=1):
        if not text.strip():
            continue
        try:
            data = json.loads(text)
        except ValueError:
            data = None
        if not isinstance(data, dict):
            warnings.append(f"line {number}: not a JSON object, not sent")
            continue
        if number == 1 and set(data) == {"campaign"} and isinstance(data["campaign"], dict):
            body.update(data["campaign"])
            continue
        items.append(data if "item_id" in data else {"item_id": str(number), **data})
    if len(items) > MAX_INLINE_ITEMS:
        raise ApiError([f"{path}: {len(items)} items; at most {MAX_INLINE_ITEMS} go inline. Drop the manifest at "
                        "s3://<bucket>/campaigns/<tenant>/<name>.jsonl instead"], 400)
    body["name"] = name or body.get("name") or path.stem
    body["items"] = items
    return body, warnings


def campaign_bar(campaign: CampaignView, width: int = 30) -> str:
    counts = campaign.counts
    finished = counts.succeeded + counts.failed + counts.rejected + counts.expired + counts.cancelled
    if counts.total == 0:
        return f"[{'.' * width}]   0% {campaign.status}"
    done_cells = round(width * finished / counts.total)
    run_cells = min(width - done_cells, round(width * counts.running / counts.total))
    return (f"[{'#' * done_cells}{'>' * run_cells}{'.' * (width - done_cells - run_cells)}] "
            f"{100 * finished // counts.total:3d}% {finished}/{counts.total} {campaign.status}")


def format_campaign(campaign: CampaignView, now: datetime | None = None) -> str:
    now = now or datetime.now(UTC)
    counts = campaign.counts
    tally = (("accepted", counts.accepted), ("running", counts.running), ("succeeded", counts.succeeded),
             ("failed", counts.failed), ("rejected", counts.rejected), ("expired", counts.expired),
             ("cancelled", counts.cancelled))
    lines = [f"{campaign.id} {campaign.name}  {campaign_bar(campaign)}",
             "  " + "  ".join(f"{name} {count}" for name, count in tally),
             f"  spent {dollars(campaign.spent_usd)} of budget {dollars(campaign.budget_usd)}, "
             f"projected {dollars(campaign.projected_total_usd)}, finish "
             f"{when(campaign.projected_finish_at, now)}, deadline {when(campaign.deadline, now)}"]
    plan = campaign.plan
    if plan:
        lines.append(f"  plan: {plan.local_items} on the local GPU, {plan.cloud_items} in the cloud, "
                     f"{dollars(plan.planned_cost_usd)} (all cloud {dollars(plan.all_cloud.cost_usd)}, "
                     f"all local {dollars(plan.all_local.cost_usd)} with {plan.all_local.items_late} late)")
    if campaign.offer_mix:
        lines.append("  offers: " + ", ".join(f"{offer} {n}" for offer, n in
                                              sorted(campaign.offer_mix.items(), key=lambda i: -i[1])))
    if campaign.invalid_items:
        lines.append(f"  invalid lines ({campaign.invalid_items_total}):")
        lines += [f"    line {i.line} ({i.item_id}) {i.field or '(line)'}: {i.message}"
                  for i in campaign.invalid_items[:20]]
    if campaign.items_at_risk:
        lines.append(f"  at risk of missing the deadline ({campaign.items_at_risk_total}):")
        lines += [f"    {r.item_id} {r.offer or '-'}: {r.reason}" for r in campaign.items_at_risk[:20]]
    if campaign.error:
        lines.append(f"  error: {campaign.error}")
    if campaign.progress_as_of:
        lines.append(f"  as of {_AS_SENT.dump_python(campaign.progress_as_of, mode='json')}")
    return "\n".join(lines)
