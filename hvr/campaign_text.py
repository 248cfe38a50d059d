"""Campaigns as a person reads and writes them: a JSON Lines manifest as a `POST /v1/campaigns` body, and a
campaign's progress, plan and troubles as lines (`hvr campaign`, and the demo's campaign)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from hvr.client import ApiError


def dollars(value: Any) -> str:
    return "-" if value is None else f"${value}"


def when(value: Any, now: datetime) -> str:
    if not value:
        return "-"
    try:
        at = datetime.fromisoformat(str(value))
    except ValueError:
        return str(value)
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    seconds = max(0, round((at - now).total_seconds()))
    minutes, secs = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    rel = f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"
    return f"{at.astimezone(UTC):%H:%M:%S}Z (+{rel})"



CAMPAIGN_DONE = frozenset({"completed", "failed"})
FINISHED_COUNTS = ("succeeded", "failed", "rejected", "expired", "cancelled")
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


def campaign_bar(campaign: dict[str, Any], width: int = 30) -> str:
    counts = campaign.get("counts") or {}
    total = int(counts.get("total") or 0)
    finished = sum(int(counts.get(key) or 0) for key in FINISHED_COUNTS)
    running = int(counts.get("running") or 0)
    if total == 0:
        return f"[{'.' * width}]   0% {campaign.get('status')}"
    done_cells = round(width * finished / total)
    run_cells = min(width - done_cells, round(width * running / total))
    return (f"[{'#' * done_cells}{'>' * run_cells}{'.' * (width - done_cells - run_cells)}] "
            f"{100 * finished // total:3d}% {finished}/{total} {campaign.get('status')}")


def format_campaign(campaign: dict[str, Any], now: datetime | None = None) -> str:
    now = now or datetime.now(UTC)
    counts = campaign.get("counts") or {}
    lines = [f"{campaign.get('id')} {campaign.get('name')}  {campaign_bar(campaign)}",
             "  " + "  ".join(f"{key} {counts.get(key, 0)}" for key in
                              ("accepted", "running", "succeeded", "failed", "rejected", "expired", "cancelled")),
             f"  spent {dollars(campaign.get('spent_usd'))} of budget {dollars(campaign.get('budget_usd'))}, "
             f"projected {dollars(campaign.get('projected_total_usd'))}, finish "
             f"{when(campaign.get('projected_finish_at'), now)}, deadline {when(campaign.get('deadline'), now)}"]
    plan = campaign.get("plan")
    if plan:
        lines.append(f"  plan: {plan['local_items']} on the local GPU, {plan['cloud_items']} in the cloud, "
                     f"{dollars(plan['planned_cost_usd'])} (all cloud {dollars(plan['all_cloud']['cost_usd'])}, "
                     f"all local {dollars(plan['all_local']['cost_usd'])} with {plan['all_local']['items_late']} late)")
    mix = campaign.get("offer_mix") or {}
    if mix:
        lines.append("  offers: " + ", ".join(f"{offer} {n}" for offer, n in sorted(mix.items(), key=lambda i: -i[1])))
    invalid = campaign.get("invalid_items") or []
    if invalid:
        lines.append(f"  invalid lines ({campaign.get('invalid_items_total', len(invalid))}):")
        lines += [f"    line {i['line']} ({i['item_id']}) {i['field'] or '(line)'}: {i['message']}"
                  for i in invalid[:20]]
    risks = campaign.get("items_at_risk") or []
    if risks:
        lines.append(f"  at risk of missing the deadline ({campaign.get('items_at_risk_total', len(risks))}):")
        lines += [f"    {r['item_id']} {r.get('offer') or '-'}: {r['reason']}" for r in risks[:20]]
    if campaign.get("error"):
        lines.append(f"  error: {campaign['error']}")
    if campaign.get("progress_as_of"):
        lines.append(f"  as of {campaign['progress_as_of']}")
    return "\n".join(lines)
