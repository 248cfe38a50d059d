"""The snapshot the caller hands the engine: everything it knows about the world, so the engine reads nothing.

Every field has a safe default, so a caller that doesn't maintain something yet (budgets, circuits) still gets
correct decisions for what it does know.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal

from router.models.budget import SpendMode
from router.models.common import Circuit, ProviderKind
from router.models.offer import Offer
from router.policy.learning import Learned
from router.policy.localqueue import Work


@dataclass(frozen=True)
class TargetState:
    """One place offers run: its name, whether it answers, its circuit, and the work queued ahead."""

    name: str
    up: bool = True
    queue_wait_s: float = 0.0  # modelled seconds of work ahead of a new job, already divided over the slots
    circuit: Circuit = Circuit.CLOSED
    warm: bool = True  # False: a serverless worker must start first (the offer's cold_start_s applies)
    # The local GPU's jobs in run order (policy.localqueue), where the agent reports them: the engine then works out
    # a newcomer's wait from its own deadline, and `queue_wait_s` is the wait of one due last. Empty: use that.
    queue: tuple[Work, ...] = ()
    slots: int = 1
    # The GPU box's memory, where it reports it: offers whose hardware fit it can't meet are refused (`vram`).
    vram_mb: int | None = None
    ram_mb: int | None = None
    # Model → modes the box can run now (its files present, its card big enough), where its agent reports them;
    # None: it doesn't say, and every model counts as installed.
    models: Mapping[str, frozenset[str]] | None = None
    # What the box draws at the wall while rendering, where it registered it: its local GPU-seconds are priced at
    # that instead of the catalog's figure (the studio's box). None: the catalog's.
    power_kw: Decimal | None = None


@dataclass(frozen=True)
class BudgetState:
    scope: str  # "global", "tenant:<id>", "campaign:<id>"
    remaining_usd: Decimal
    spend_mode: SpendMode = SpendMode.NORMAL


@dataclass(frozen=True, slots=True)
class Exploration:
    """What this decision may spend on exploring (router.policy.exploration). The caller draws and counts; its
    settings come from `exploration.Limits` through `exploration.allowance`."""

    draw: float  # uniform in [0, 1) from a seeded generator; the decision explores only if it is below `share`
    jobs_left: int  # exploring attempts left under today's cap
    usd_left: Decimal  # exploring p90 spend left under today's cap
    share: float
    margin_s: float  # between the fallback's p90 ready time and the deadline
    z: float  # optimism: sd below the learned p50 render time
    min_runs: int  # an offer with fewer measured renders has little evidence
    # Where exploring may send work: the studio's own GPU, whose idle time costs only energy. Cloud offers are
    # measured by their ordinary traffic, and their catalog figures are the providers' own.
    kinds: frozenset[ProviderKind] = frozenset({ProviderKind.LOCAL})

    @property
    def open(self) -> bool:
        return self.draw < self.share and self.jobs_left > 0 and self.usd_left > 0


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
    # Learned offer models by offer id, already resolved to the target each offer would run on (policy.learning).
    learned: Mapping[str, Learned] = field(default_factory=dict)
    exclude_offers: frozenset[str] = frozenset()  # offers already tried for this job (fallback hops)
    exploration: Exploration | None = None  # None: this decision doesn't explore
    # Where one provider has several boxes (a fleet of GPU agents): each box, and the engine places an offer on
    # the best of them. Empty: one target per provider (`targets`).
    boxes: Mapping[ProviderKind, tuple[TargetState, ...]] = field(default_factory=dict)
    # Offers whose ratings are enough to replace their catalog stars (policy.quality.routing_quality): the floor
    # check and the score read this figure instead. Empty: the stars everywhere.
    quality: Mapping[str, float] = field(default_factory=dict)

    def quality_of(self, offer: Offer) -> float:
        return self.quality.get(offer.id, offer.quality) if self.quality else offer.quality

    @property
    def spend_mode(self) -> SpendMode:
        """The most restrictive mode among the applicable scopes."""
        return max((b.spend_mode for b in self.budgets), key=lambda m: m.rank, default=SpendMode.NORMAL)

    def target(self, offer_id: str, provider: ProviderKind) -> TargetState | None:
        return self.offer_targets.get(offer_id) or self.targets.get(provider)
