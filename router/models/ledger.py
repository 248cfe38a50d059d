"""One cost record per attempt: exact money, with the units and unit price that made it
(docs/architecture.md, "Money")."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from pydantic import BaseModel, ConfigDict

from router.models.common import Mode, Money, ProviderKind
from router.models.offer import LocalCostBasis
from router.models.outcome import AttemptOutcome


class LedgerEntry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    tenant: str
    job_id: str
    attempt_id: str
    campaign_id: str | None = None
    provider: ProviderKind
    offer: str
    model: str
    outcome: AttemptOutcome
    billed_units: dict[str, Decimal]  # e.g. gpu_seconds, output_seconds, frames
    unit: str  # which billed unit the unit price applies to
    unit_price_usd: Decimal
    pricing_version: str
    estimated_usd: Money
    actual_usd: Money
    # Local GPU rows: the energy the render used and its amortized share of depreciation, kept apart whatever
    # `cost_basis` charged (actual = energy on `marginal`, energy + amortized on `full`). None on cloud rows and on
    # rows written before they were kept.
    cost_basis: LocalCostBasis | None = None
    energy_usd: Money | None = None
    amortized_usd: Money | None = None
    resolution: str
    mode: Mode | None = None  # what was rendered (t2v, i2v, ...); None on rows written before it was kept
    started_at: datetime
    ended_at: datetime
    provider_job_id: str | None = None
    s3_uri: str | None = None
