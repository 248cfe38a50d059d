"""The snapshot the caller hands the engine: everything it knows about the world, so the engine reads nothing."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from router.models.common import ProviderKind


@dataclass(frozen=True)
class TargetState:
    """One place offers of a provider kind run: its name, whether it answers, and the work queued ahead."""

    name: str
    up: bool = True
    queue_wait_s: float = 0.0  # modelled seconds of work already ahead of a new job


@dataclass(frozen=True)
class RoutingContext:
    targets: Mapping[ProviderKind, TargetState] = field(
        default_factory=lambda: {ProviderKind.LOCAL: TargetState(name="agent-1")}
    )
    # Provider kinds whose adapter and credentials exist in this deployment; the rest are `not_configured`.
    configured: frozenset[ProviderKind] = frozenset({ProviderKind.LOCAL})
    exclude_offers: frozenset[str] = frozenset()  # offers already tried for this job (fallback hops)
