"""A campaign's lines (docs/architecture.md, "API contract"; issue 8): the manifest's header and items, judged
one line at a time.

A manifest is JSON Lines: an optional first line `{"campaign": {...}}` (a `CampaignSpec`), then one `VideoRequest`
per line with an optional `item_id` (else the line number). Inline items of `POST /v1/campaigns` are judged the same
way. Everything here is pure: parsing a line never reads the clock (the campaign's creation time stands in for "now",
so a re-run chunk judges every line exactly as before). Apart from router.models.campaign because only the intake
(and the store's line reader, for the length cap) parses lines; the API and the stored campaign never do.
"""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta

from pydantic import BaseModel, ConfigDict, ValidationError

from router.models.campaign import CampaignSpec, InvalidItem
from router.models.request import VideoRequest, field_errors

ITEM_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:\-]{0,127}$")
MAX_LINE_BYTES = 64 * 1024  # a VideoRequest is at most ~13 KB; anything longer is refused unread


class ParsedLine(BaseModel):
    """One manifest line, judged: a request to run, or the errors that stop it (none for a blank line)."""

    model_config = ConfigDict(frozen=True)
    line: int
    item_id: str
    request: VideoRequest | None = None
    errors: list[InvalidItem] = []


def parse_header(raw: bytes) -> CampaignSpec | None:
    """The first line's `{"campaign": {...}}`, or None if the first line is an item. Raises ValueError (with the
    fields named) when it is a header but not a valid one."""
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError):  # RecursionError: a line of 64 KB of '[' nests past the stack
        return None
    if not isinstance(data, dict) or set(data) != {"campaign"}:
        return None
    try:
        return CampaignSpec.model_validate(data["campaign"])
    except ValidationError as exc:
        raise ValueError("; ".join(f"campaign.{e['field']}: {e['message']}" for e in field_errors(exc))) from exc


def parse_line(raw: bytes, line: int, campaign: str, spec: CampaignSpec, created_at: datetime) -> ParsedLine | None:
    """Judge one line: None when blank; otherwise the item's request (campaign defaults merged in, the campaign's
    deadline and priority unless the item sets its own) or its field errors."""
    if not raw.strip():
        return None
    if len(raw) > MAX_LINE_BYTES:
        return _bad(line, str(line), "", f"line is longer than {MAX_LINE_BYTES} bytes")
    try:
        data = json.loads(raw)
    except ValueError as exc:
        return _bad(line, str(line), "", f"not JSON: {exc}")
    except RecursionError:
        return _bad(line, str(line), "", "not JSON we read: nested too deeply")
    if not isinstance(data, dict):
        return _bad(line, str(line), "", "must be a JSON object (one VideoRequest)")
    raw_id = data.pop("item_id", None)
    item_id = str(line) if raw_id is None else str(raw_id)
    if isinstance(raw_id, bool) or not isinstance(raw_id, str | int | None) or not ITEM_ID_PATTERN.match(item_id):
        return _bad(line, str(line), "item_id", "must be 1-128 letters, digits or . _ : - (or an integer)")
    if "campaign_id" in data and data["campaign_id"] != campaign:
        return _bad(line, item_id, "campaign_id", "is set by the campaign")
    body = {**spec.defaults, **data, "campaign_id": campaign}
    if "deadline" not in data and "deadline_s" not in data:
        deadline = spec.resolved_deadline(created_at)
        if deadline is not None:
            body["deadline"] = deadline
    elif "deadline_s" in body and "deadline" not in body and isinstance(body["deadline_s"], int):
        # Relative to the campaign's creation, so every re-run of the line gives the job the same deadline.
        body["deadline"] = created_at + timedelta(seconds=body.pop("deadline_s"))
    body.setdefault("priority", spec.priority)
    try:
        request = VideoRequest.parse_at_edge(body, created_at)
    except ValidationError as exc:
        return ParsedLine(line=line, item_id=item_id, errors=[
            InvalidItem(item_id=item_id, line=line, field=e["field"], message=e["message"])
            for e in field_errors(exc)])
    return ParsedLine(line=line, item_id=item_id, request=request)


def _bad(line: int, item_id: str, field: str, message: str) -> ParsedLine:
    return ParsedLine(line=line, item_id=item_id,
                      errors=[InvalidItem(item_id=item_id, line=line, field=field, message=message)])
