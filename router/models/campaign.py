"""Campaigns (docs/architecture.md, "API contract"; issue 8): their ids, what the client writes, the stored
campaign and its view.

The shapes the API and the store share. Parsing a manifest's lines is router.models.manifest, the plan's shapes are
router.models.campaign_plan, and the campaigns queue's bodies are router.models.campaign_queue: each has fewer
readers than these, and none of them is needed to read or show a campaign.
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from router.models.campaign_plan import PlanSummary
from router.models.common import Money, Priority
from router.models.request import MAX_DEADLINE_S

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._\-]{0,99}$"
MAX_INLINE_ITEMS = 1000
DEFAULT_INTERACTIVE_SHARE = 0.2
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
    """A line (or inline item) that won't run, and why: kept with the campaign and listed in its view."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    item_id: str
    line: int
    field: str
    message: str


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
    """The API's Campaign (docs/architecture.md, "API contract"), plus the plan and the items at risk of missing
    the deadline."""

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
