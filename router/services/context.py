"""Assembling the policy's context snapshot: live provider health, circuits, queues, calibration, budgets.

Budgets and spend modes come with the money issue; until that code exists the context carries their safe default
(no budget limit beyond the request's own cap).
"""

from __future__ import annotations

from router.policy.context import Circuit, RoutingContext, TargetState
from router.services.deps import Deps


def routing_context(deps: Deps, tried: frozenset[str] = frozenset()) -> RoutingContext:
    circuits = deps.circuits.states(deps.clock()) if deps.circuits is not None else {}
    targets = {}
    for kind, provider in deps.providers.items():
        health = provider.health()
        targets[kind] = TargetState(name=health.name, up=health.up, queue_wait_s=health.queue_wait_s,
                                    circuit=circuits.get(health.name, Circuit.CLOSED))
    calibration = deps.calibration.all() if deps.calibration is not None else {}
    return RoutingContext(targets=targets, configured=frozenset(deps.providers), calibration=calibration,
                          exclude_offers=tried)
