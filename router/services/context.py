"""Assembling the policy's context snapshot: live provider health, circuits, queues, calibration, budgets.

Budgets and spend modes come with the money issue and circuits with the cloud providers; until their code exists
the context carries their safe defaults (no budget limits beyond the request's own cap, circuits closed).
"""

from __future__ import annotations

from router.policy.context import RoutingContext, TargetState
from router.services.deps import Deps


def routing_context(deps: Deps, tried: frozenset[str] = frozenset()) -> RoutingContext:
    targets = {}
    for kind, provider in deps.providers.items():
        health = provider.health()
        targets[kind] = TargetState(name=health.name, up=health.up, queue_wait_s=health.queue_wait_s)
    calibration = deps.calibration.all() if deps.calibration is not None else {}
    return RoutingContext(targets=targets, configured=frozenset(deps.providers), calibration=calibration,
                          exclude_offers=tried)
