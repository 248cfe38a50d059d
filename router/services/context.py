"""Building the policy's context snapshot from live provider health."""

from __future__ import annotations

from router.policy.context import RoutingContext, TargetState
from router.services.deps import Deps


def routing_context(deps: Deps, tried: frozenset[str] = frozenset()) -> RoutingContext:
    targets = {}
    for kind, provider in deps.providers.items():
        health = provider.health()
        targets[kind] = TargetState(name=health.name, up=health.up, queue_wait_s=health.queue_wait_s)
    return RoutingContext(targets=targets, configured=frozenset(deps.providers), exclude_offers=tried)
