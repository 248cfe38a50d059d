"""Budgets: a limit per scope and period, what is spent and reserved, thresholds and spend mode
(docs/architecture.md, "Money")."""

from __future__ import annotations

import re
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from router.models.common import Money

SCOPE_PATTERN = re.compile(r"^(global|tenant:[a-z0-9][a-z0-9_\-]{0,63}|campaign:[A-Za-z0-9_\-]{1,128})$")
DEFAULT_THRESHOLDS = (0.5, 0.8, 1.0)


class SpendMode(StrEnum):
    """How a budget scope lets money be spent, from free to stopped (docs/architecture.md, "Money")."""

    NORMAL = "normal"
    ECONOMY = "economy"  # cost outweighs everything else in the score
    LOCAL_ONLY = "local_only"  # only the studio's own GPU
    PAUSED = "paused"  # nothing new starts

    @property
    def rank(self) -> int:
        return list(SpendMode).index(self)


def period_of(moment: datetime) -> str:
    """Calendar months, UTC: the period a moment's spend counts in."""
    return f"{moment.year:04d}-{moment.month:02d}"


def scopes_for(tenant: str, campaign_id: str | None) -> list[str]:
    return ["global", f"tenant:{tenant}"] + ([f"campaign:{campaign_id}"] if campaign_id else [])


class Budget(BaseModel):
    """The API's Budget (docs/architecture.md, "API contract")."""

    scope: str
    period: str
    limit_usd: Money
    spent_usd: Money
    reserved_usd: Money
    remaining_usd: Money
    thresholds: list[float]
    spend_mode: SpendMode
    spend_mode_changed_by: str | None = None
    spend_mode_changed_at: datetime | None = None
    overspent_usd: Money = Decimal("0.0000")  # actual-over-estimate excess that took spend past the limit


class BudgetUpdate(BaseModel):
    """`PUT /v1/budgets/{scope}` body."""

    model_config = ConfigDict(extra="forbid")
    limit_usd: Annotated[Money, Field(ge=Decimal(0), le=Decimal(10_000_000), decimal_places=4)]
    period: Literal["monthly"] = "monthly"
    thresholds: Annotated[list[Annotated[float, Field(gt=0, le=2)]], Field(min_length=1, max_length=10)] = list(
        DEFAULT_THRESHOLDS)
    spend_mode: SpendMode | None = None  # set by hand (e.g. `paused`); thresholds and AWS Budgets move it too

    @field_validator("thresholds")
    @classmethod
    def _sorted_unique(cls, value: list[float]) -> list[float]:
        return sorted(set(value))


class BudgetAlert(BaseModel):
    """One budget alert as it happened: a threshold crossed, or a spend mode moved by a rule (`GET /v1/alerts`)."""

    scope: str
    period: str
    kind: Literal["threshold", "spend_mode"]
    threshold: float | None = None  # the fraction of the limit crossed; for a spend_mode, the rule's that moved it
    spent_usd: Money
    limit_usd: Money
    mode: SpendMode | None = None  # the mode moved to (spend_mode only)
    at: datetime
    source: str  # what raised it: "threshold 80% of limit", "aws-budgets hvr-tenant-acme at 85%", …


class AlertList(BaseModel):
    """`GET /v1/alerts`: a page of alerts, newest first."""

    alerts: list[BudgetAlert]
    next_cursor: str | None
