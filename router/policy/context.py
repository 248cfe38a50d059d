"""The snapshot the caller hands the engine: everything it knows about the world, so the engine reads nothing.

Every field has a safe default, so a caller that doesn't maintain something yet (budgets, circuits) still gets
correct decisions for what it does know.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum

from router.models.common import ProviderKind


class Circuit(StrEnum):
    CLOSED = "closed"
    HALF_OPEN = "half_open"
    OPEN = "open"


class SpendMode(StrEnum):
    """How a budget scope lets money be spent, from free to stopped (ARCHITECTURE §7)."""

    NORMAL = "normal"
    ECONOMY = "economy"  # cost outweighs everything else in the score
    LOCAL_ONLY = "local_only"  # only the studio's own GPU
    PAUSED = "paused"  # nothing new starts

    @property
    def rank(self) -> int:
        return list(SpendMode).index(self)


@dataclass(frozen=True)
class TargetState:
    """One place offers run: its name, whether it answers, its circuit, and the work queued ahead."""

    name: str
    up: bool = True
    queue_wait_s: float = 0.0  # modelled seconds of work ahead of a new job, already divided over the slots
    circuit: Circuit = Circuit.CLOSED
    warm: bool = True  # False: a serverless worker must start first (the offer's cold_start_s applies)


@dataclass(frozen=True)
class BudgetState:
    scope: str  # "global", "tenant:<id>", "campaign:<id>"
    remaining_usd: Decimal
    spend_mode: SpendMode = SpendMode.NORMAL


@dataclass(frozen=True)
class Calibration:
    """Observed / estimated ratios learned from finished attempts (bounded EWMA, kept by the services)."""

    time_factor: float = 1.0
    cost_factor: float = 1.0
    samples: int = 0


def _local_target() -> dict[ProviderKind, TargetState]:
    return {ProviderKind.LOCAL: TargetState(name="agent-1")}


@dataclass(frozen=True)
class RoutingContext:
    targets: Mapping[ProviderKind, TargetState] = field(default_factory=_local_target)
    # Per-offer targets where one provider has several (each RunPod endpoint has its own queue and workers).
    offer_targets: Mapping[str, TargetState] = field(default_factory=dict)
    # Provider kinds whose adapter and credentials exist in this deployment; the rest are `not_configured`.
    configured: frozenset[ProviderKind] = frozenset({ProviderKind.LOCAL})
    unsupported_offers: frozenset[str] = frozenset()  # a configured provider's adapter can't run these
    budgets: tuple[BudgetState, ...] = ()  # every scope that applies to this request
    calibration: Mapping[str, Calibration] = field(default_factory=dict)
    exclude_offers: frozenset[str] = frozenset()  # offers already tried for this job (fallback hops)

    @property
    def spend_mode(self) -> SpendMode:
        """The most restrictive mode among the applicable scopes."""
        return max((b.spend_mode for b in self.budgets), key=lambda m: m.rank, default=SpendMode.NORMAL)

    def target(self, offer_id: str, provider: ProviderKind) -> TargetState | None:
        return self.offer_targets.get(offer_id) or self.targets.get(provider)
