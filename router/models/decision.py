"""What the policy decided, and why: stored on the job and returned by quotes."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict

from router.models.common import Money, ProviderKind


class DeliveredSpec(BaseModel):
    """What an offer will actually render for a request, after its rounding rules."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    width: int
    height: int
    frames: int
    fps: float

    @property
    def duration_s(self) -> float:
        return self.frames / self.fps


class Candidate(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    offer: str
    provider: ProviderKind
    feasible: bool
    reasons: list[str] = []
    estimated_cost_usd: Money | None = None
    estimated_cost_p90_usd: Money | None = None
    estimated_ready_at: datetime | None = None
    score: float | None = None
    delivered: DeliveredSpec | None = None


class Chosen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    offer: str
    provider: ProviderKind
    target: str
    estimated_cost_usd: Money
    estimated_cost_p90_usd: Money
    estimated_ready_at: datetime
    score: float
    delivered: DeliveredSpec
    reason: str


class Decision(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    chosen: Chosen | None
    fallbacks: list[str]
    candidates: list[Candidate]
    reasons: list[str]
    decided_at: datetime
