"""Assembling the policy's context snapshot: live provider health, circuits, queues, calibration, budgets.

Scopes without a budget are unlimited; a quote or job without a tenant sees no budgets at all.
"""

from __future__ import annotations

from router.policy.context import Circuit, RoutingContext, TargetState
from router.providers.base import offer_health
from router.services import money
from router.services.deps import Deps


def routing_context(deps: Deps, tried: frozenset[str] = frozenset(), tenant: str | None = None,
                    campaign_id: str | None = None) -> RoutingContext:
    circuits = deps.circuits.states(deps.clock()) if deps.circuits is not None else {}
    targets = {}
    offer_targets = {}
    for kind, provider in deps.providers.items():
        health = provider.health()
        circuit = circuits.get(health.name, Circuit.CLOSED)
        targets[kind] = TargetState(name=health.name, up=health.up, queue_wait_s=health.queue_wait_s,
                                    circuit=circuit)
        if not health.endpoints:
            continue
        # Each endpoint has its own queue and workers: its offers see those, under the target's name and circuit.
        for offer in deps.catalog.offers:
            if offer.provider is kind:
                own = offer_health(health, provider, offer)
                offer_targets[offer.id] = TargetState(name=health.name, up=own.up, queue_wait_s=own.queue_wait_s,
                                                      circuit=circuit, warm=own.warm)
    calibration = deps.calibration.all() if deps.calibration is not None else {}
    budgets = money.budget_states(deps, tenant, campaign_id, deps.clock()) if tenant else ()
    unsupported = frozenset(o.id for o in deps.catalog.offers
                            if o.provider in deps.providers and not deps.providers[o.provider].supports(o))
    return RoutingContext(targets=targets, offer_targets=offer_targets, configured=frozenset(deps.providers),
                          unsupported_offers=unsupported,
                          calibration=calibration, budgets=budgets, exclude_offers=tried)
