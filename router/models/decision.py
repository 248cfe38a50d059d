"""What the policy decided, and why: stored on the job and returned by quotes.

These are frozen stdlib dataclasses, not pydantic models: the engine builds one row per offer for every decision,
and constructing pydantic models dominated its time. Pydantic still validates and serializes them wherever they
sit inside a model (the Job, the Quote), so the API contract and the stored document are unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from router.models.common import Money, ProviderKind


@dataclass(frozen=True, slots=True)
class DeliveredSpec:
    """What an offer will actually render for a request, after its rounding rules."""

    width: int
    height: int
    frames: int
    fps: float

    @property
    def duration_s(self) -> float:
        return self.frames / self.fps


@dataclass(frozen=True, slots=True)
class Candidate:
    offer: str
    provider: ProviderKind
    feasible: bool
    reasons: list[str] = field(default_factory=list)
    estimated_cost_usd: Money | None = None
    estimated_cost_p90_usd: Money | None = None
    estimated_ready_at: datetime | None = None
    score: float | None = None
    delivered: DeliveredSpec | None = None


@dataclass(frozen=True, slots=True)
class Chosen:
    offer: str
    provider: ProviderKind
    target: str
    estimated_cost_usd: Money
    estimated_cost_p90_usd: Money
    estimated_ready_at: datetime
    score: float
    delivered: DeliveredSpec
    reason: str
    # Set when the offer was chosen to explore it (router.policy.exploration): why, and the abandon point past
    # which the worker stops it and falls back.
    explored: str | None = None
    explore_until: datetime | None = None


@dataclass(frozen=True, slots=True)
class Decision:
    chosen: Chosen | None
    fallbacks: list[str]
    candidates: list[Candidate]
    reasons: list[str]
    decided_at: datetime
