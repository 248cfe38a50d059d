"""Campaigns (ARCHITECTURE §4, issue 8): the manifest and its lines, the stored campaign, its plan and its view.

A manifest is JSON Lines: an optional first line `{"campaign": {...}}` (a `CampaignSpec`), then one `VideoRequest`
per line with an optional `item_id` (else the line number). Everything here is pure: parsing a line never reads the
clock (the campaign's creation time stands in for "now", so a re-run chunk judges every line exactly as before).
"""

from __future__ import annotations

import hashlib
import json
import re
from datetime import datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from router.models.common import Money, Priority, ProviderKind
from router.models.decision import DeliveredSpec
from router.models.request import MAX_DEADLINE_S, VideoRequest, field_errors

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._\-]{0,99}$"
TENANT_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_\-]{0,63}$")
ITEM_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:\-]{0,127}$")
MAX_INLINE_ITEMS = 1000
MAX_LINE_BYTES = 64 * 1024  # a VideoRequest is at most ~13 KB; anything longer is refused unread
DEFAULT_INTERACTIVE_SHARE = 0.2
MANIFEST_PREFIX = "campaigns/"
_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def _digest_id(prefix: str, *parts: str) -> str:
    """A stable id from a hash (26 Crockford characters, like the ULIDs elsewhere): the same inputs always name the
    same record, which is what makes creation idempotent."""
    value = int.from_bytes(hashlib.sha256("\x00".join(parts).encode()).digest()[:17], "big") >> 6
    chars = []
    for _ in range(26):
        value, rem = divmod(value, 32)
        chars.append(_CROCKFORD[rem])
    return f"{prefix}_{''.join(reversed(chars))}"


def campaign_id(tenant: str, name: str) -> str:
    """A campaign's identity is (tenant, name): its id is derived from them, never drawn at random."""
    return _digest_id("cmp", tenant, name)


def item_job_id(campaign: str, item_id: str) -> str:
    """Each item's job id: a redelivered chunk, a re-run or a re-upload names the same job."""
    return _digest_id("job", campaign, item_id)


def manifest_key_parts(key: str) -> tuple[str, str] | None:
    """`campaigns/<tenant>/<name>.jsonl` → (tenant, name); None for any other key."""
    parts = key.split("/")
    if len(parts) != 3 or parts[0] + "/" != MANIFEST_PREFIX or not parts[2].endswith(".jsonl"):
        return None
    tenant, name = parts[1], parts[2].removesuffix(".jsonl")
    if not TENANT_PATTERN.match(tenant) or not re.match(NAME_PATTERN, name):
        return None
    return tenant, name


# --- what the client writes -----------------------------------------------------------------------------------

CAMPAIGN_OWNED = ("campaign_id", "item_id", "deadline", "deadline_s")  # keys `defaults` may not set


def _spec_rules(schema: dict[str, Any]) -> None:
    """_one_deadline's rules, stated in the JSON Schema too: one deadline at most, and what defaults can't set."""
    schema["not"] = {"$comment": "deadline or deadline_s, not both",
                     "properties": {"deadline": {"type": "string"}, "deadline_s": {"type": "integer"}},
                     "required": ["deadline", "deadline_s"]}
    schema["properties"]["defaults"]["propertyNames"] = {"not": {"enum": list(CAMPAIGN_OWNED)}}


def _create_rules(schema: dict[str, Any]) -> None:
    """_one_source's rule as well: exactly one of items and manifest."""
    _spec_rules(schema)
    schema["oneOf"] = [{"properties": {"items": {"type": "array"}}, "required": ["items"]},
                       {"properties": {"manifest": {"type": "string"}}, "required": ["manifest"]}]


class CampaignSpec(BaseModel):
    """The manifest's header line, or the fields of `POST /v1/campaigns` besides the items."""

    model_config = ConfigDict(extra="forbid", frozen=True, json_schema_extra=_spec_rules)
    name: Annotated[str, Field(pattern=NAME_PATTERN)] | None = None
    budget_usd: Annotated[Money, Field(gt=Decimal(0), le=Decimal(10_000_000), decimal_places=4)] | None = None
    deadline: datetime | None = None
    deadline_s: Annotated[int, Field(gt=0, le=MAX_DEADLINE_S)] | None = None
    priority: Priority = Priority.BATCH
    defaults: dict[str, Any] = {}  # merged into every item (an item's own fields win)
    # The share of the local GPU's time the plan leaves to interactive (non-campaign) work.
    interactive_share: Annotated[float, Field(ge=0.0, le=0.95)] = DEFAULT_INTERACTIVE_SHARE

    @model_validator(mode="after")
    def _one_deadline(self) -> CampaignSpec:
        if self.deadline is not None and self.deadline_s is not None:
            raise ValueError("give either deadline or deadline_s, not both")
        if self.deadline is not None and self.deadline.tzinfo is None:
            raise ValueError("deadline must include a timezone (ISO 8601)")
        for key in CAMPAIGN_OWNED:
            if key in self.defaults:
                raise ValueError(f"defaults.{key} is the campaign's own to set, not a default")
        return self

    def merged(self, override: CampaignSpec) -> CampaignSpec:
        """This spec with every field the override sets explicitly (POST fields win over a manifest header)."""
        return self.model_copy(update={k: getattr(override, k) for k in override.model_fields_set})

    def resolved_deadline(self, created_at: datetime) -> datetime | None:
        if self.deadline is not None:
            return self.deadline
        return created_at + timedelta(seconds=self.deadline_s) if self.deadline_s is not None else None


class CampaignCreate(CampaignSpec):
    """`POST /v1/campaigns`: inline `items` (each a VideoRequest with an optional `item_id`) or an s3:// `manifest`.

    Items are plain objects here on purpose: a bad item is recorded against its line, as in a manifest, and the
    rest of the campaign goes on."""

    model_config = ConfigDict(json_schema_extra=_create_rules)
    name: Annotated[str, Field(pattern=NAME_PATTERN)]
    items: Annotated[list[dict[str, Any]], Field(min_length=1, max_length=MAX_INLINE_ITEMS)] | None = None
    manifest: Annotated[str, Field(pattern=r"^s3://[^/]+/.+\.jsonl$", max_length=1024)] | None = None

    @model_validator(mode="after")
    def _one_source(self) -> CampaignCreate:
        if (self.items is None) == (self.manifest is None):
            raise ValueError("give either items or manifest, not both")
        return self

    def spec(self) -> CampaignSpec:
        fields = self.model_fields_set - {"items", "manifest"}
        return CampaignSpec.model_validate({k: getattr(self, k) for k in fields})


class InvalidItem(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    item_id: str
    line: int
    field: str
    message: str


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


# --- what the planner works with ------------------------------------------------------------------------------


class ItemOption(BaseModel):
    """One way to render an item, as the engine estimated it when the item was taken in."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    offer: str
    provider: ProviderKind
    target: str
    cost_usd: Money  # p50
    cost_p90_usd: Money  # what a reservation holds, so what the plan counts against the budget
    seconds: float  # p90 from submission to ready, with nothing queued ahead
    # p50 of the same, where the planner was told (a local option): a run of local items finishes at the sum of their
    # p50s plus the spread of that sum, far sooner than the sum of their p90s. None: taken as `seconds`.
    seconds_p50: float | None = None
    score: float = 0.0
    delivered: DeliveredSpec

    @property
    def local(self) -> bool:
        return self.provider is ProviderKind.LOCAL


class PlanInput(BaseModel):
    """What the planner needs of one item (stored beside the item's request)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    item_id: str
    line: int
    job_id: str
    deadline: datetime | None
    priority: Priority
    local: ItemOption | None
    cloud: ItemOption | None


class EntryState(StrEnum):
    PENDING = "pending"  # planned, not yet looked at by the release step
    RELEASED = "released"  # its job exists
    HELD = "held"  # planned for the local GPU, waiting for its turn so the GPU's queue stays short
    UNFUNDED = "unfunded"  # the campaign budget can't cover it yet: it waits (pacing)


class PlanEntry(BaseModel):
    """One item's place in the stored plan: offer, planned start and finish (p90), estimated cost."""

    model_config = ConfigDict(extra="forbid")
    item_id: str
    job_id: str
    offer: str | None
    local: bool = False
    start: datetime | None = None
    finish: datetime | None = None
    cost_usd: Money = Decimal("0.0000")  # p50 estimate
    reserve_usd: Money = Decimal("0.0000")  # p90: what the budget reservation will hold
    seconds: float = 0.0  # p90 render seconds on its offer (what a local item adds to the GPU's queue)
    state: EntryState = EntryState.PENDING
    risk: str | None = None


class Alternative(BaseModel):
    model_config = ConfigDict(extra="forbid")
    cost_usd: Money
    finish_at: datetime | None = None
    items_late: int = 0
    items_impossible: int = 0  # items this alternative can't render at all (they go the other way)


class PlanSummary(BaseModel):
    model_config = ConfigDict(extra="forbid")
    planned_at: datetime
    items: int
    local_items: int
    cloud_items: int
    unplanned_items: int
    unfunded_items: int
    planned_cost_usd: Money
    finish_at: datetime | None
    local_busy_s: float
    all_cloud: Alternative
    all_local: Alternative
    replans: int = 0


class StoredPlan(BaseModel):
    """The plan as kept in S3: entries in release order (local items by planned start, then the cloud's)."""

    model_config = ConfigDict(extra="forbid")
    summary: PlanSummary
    entries: list[PlanEntry]


# --- the stored campaign and its chain of steps ---------------------------------------------------------------


class Phase(StrEnum):
    OPEN = "open"  # snapshot the manifest, read its header, set the budget
    INTAKE = "intake"  # stream lines in chunks: item rows and invalid lines
    PLAN = "plan"  # the whole campaign at once
    RELEASE = "release"  # jobs for planned items, in chunks
    PACE = "pace"  # periodically: release held items, re-plan them, refresh progress
    DONE = "done"
    FAILED = "failed"


class CampaignStatus(StrEnum):
    EXPANDING = "expanding"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"


class Counts(BaseModel):
    model_config = ConfigDict(extra="forbid")
    total: int = 0
    accepted: int = 0  # includes routed jobs and items the plan still holds
    running: int = 0  # submitted or running
    succeeded: int = 0
    failed: int = 0
    rejected: int = 0
    expired: int = 0
    cancelled: int = 0


class ItemAtRisk(BaseModel):
    model_config = ConfigDict(extra="forbid")
    item_id: str
    job_id: str
    offer: str | None
    projected_finish_at: datetime | None
    reason: str


class Progress(BaseModel):
    model_config = ConfigDict(extra="forbid")
    as_of: datetime
    counts: Counts = Counts()
    spent_usd: Money = Decimal("0.0000")
    projected_total_usd: Money = Decimal("0.0000")
    projected_finish_at: datetime | None = None
    offer_mix: dict[str, int] = {}
    items_at_risk: list[ItemAtRisk] = []
    items_at_risk_total: int = 0
    active_jobs: int = 0  # jobs not yet in a terminal state
    waiting_items: int = 0  # items the plan still holds back (queued for the GPU, or waiting for budget)


class Campaign(BaseModel):
    """The stored campaign. `step` orders the chain of queue messages that expands and follows it: a message
    is acted on only while its step is the stored one, so duplicates and stale copies do nothing."""

    model_config = ConfigDict(extra="forbid")
    id: str
    tenant: str
    name: str
    overrides: dict[str, Any] = {}  # the fields POST /v1/campaigns set explicitly: they win over a manifest header
    spec: CampaignSpec = CampaignSpec()  # the effective spec, settled when the campaign opens
    created_at: datetime
    deadline: datetime | None = None
    origin: str  # where the manifest came from: "inline" or the s3:// key it was dropped at / posted as
    origin_etag: str | None = None
    source_key: str | None = None  # the immutable snapshot the lines are read from
    phase: Phase = Phase.OPEN
    step: int = 0
    cursor_line: int = 0  # lines read so far
    cursor_offset: int = 0  # bytes read so far
    release_index: int = 0
    released_local_s: float = 0.0  # local render seconds handed to the GPU by the release step so far
    lines: int = 0
    items: int = 0
    invalid_lines: int = 0
    invalid_entries: int = 0
    duplicates: int = 0
    error: str | None = None
    plan: PlanSummary | None = None
    progress: Progress | None = None

    @property
    def status(self) -> CampaignStatus:
        if self.phase is Phase.FAILED:
            return CampaignStatus.FAILED
        if self.phase in (Phase.OPEN, Phase.INTAKE, Phase.PLAN, Phase.RELEASE):
            return CampaignStatus.EXPANDING
        return CampaignStatus.COMPLETED if self.phase is Phase.DONE else CampaignStatus.RUNNING


class CampaignView(BaseModel):
    """The API's Campaign (ARCHITECTURE §4), plus the plan and the items at risk of missing the deadline."""

    model_config = ConfigDict(extra="forbid")
    id: str
    name: str
    status: CampaignStatus
    created_at: datetime
    deadline: datetime | None
    budget_usd: Money | None
    counts: Counts
    invalid_items: list[InvalidItem]
    invalid_items_total: int
    duplicates: int
    spent_usd: Money
    projected_total_usd: Money
    projected_finish_at: datetime | None
    offer_mix: dict[str, int]
    items_at_risk: list[ItemAtRisk]
    items_at_risk_total: int
    plan: PlanSummary | None
    progress_as_of: datetime | None
    error: str | None = None


class CampaignMessage(BaseModel):
    """A campaigns-queue message of our own: "do step N of this campaign" (what step N is, the record says)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    kind: Literal["step"] = "step"
    tenant: str
    campaign_id: str
    step: int


class ManifestDrop(BaseModel):
    """One S3 `ObjectCreated` record of a manifest (the key already URL-decoded)."""

    model_config = ConfigDict(frozen=True)
    bucket: str
    key: str
    etag: str | None = None


def parse_queue_body(body: str) -> CampaignMessage | list[ManifestDrop]:
    """A campaigns-queue body: our own step message, or S3's notification (its test event gives no drops).

    S3 URL-encodes object keys in events (moto even encodes "/"), so keys are unquoted here."""
    from urllib.parse import unquote_plus

    data = json.loads(body)
    if isinstance(data, dict) and data.get("kind") == "step":
        return CampaignMessage.model_validate(data)
    if isinstance(data, dict) and data.get("Event") == "s3:TestEvent":
        return []
    if not isinstance(data, dict) or not isinstance(data.get("Records"), list):
        raise ValueError("neither a campaign step nor an S3 event notification")
    drops = []
    for record in data["Records"]:
        if record.get("eventSource") != "aws:s3" or not str(record.get("eventName", "")).startswith("ObjectCreated"):
            continue
        obj = record["s3"]["object"]
        etag = str(obj["eTag"]).strip('"') if obj.get("eTag") else None
        drops.append(ManifestDrop(bucket=record["s3"]["bucket"]["name"], key=unquote_plus(obj["key"]), etag=etag))
    return drops
