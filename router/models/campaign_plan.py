"""A campaign's plan (docs/architecture.md, "Policy engine"; issue 8): what the planner is given per item and
what it stores.

Apart from the API and stored campaign shapes because only the planner (router.policy.plan), the intake that feeds
it and the store that keeps its output read these; the campaign record holds just the plan's summary.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from enum import StrEnum

from pydantic import BaseModel, ConfigDict

from router.models.common import Money, Priority, ProviderKind
from router.models.decision import DeliveredSpec


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
