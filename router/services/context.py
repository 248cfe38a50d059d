"""Assembling the policy's context snapshot: live provider health, circuits, queues, learned models, budgets, the
quality ratings have earned, and what the decision may spend on exploring.

Scopes without a budget are unlimited; a quote or job without a tenant sees no budgets at all.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from decimal import Decimal

from router.models.common import Circuit, ProviderKind
from router.models.offer import Offer
from router.policy import learning, localqueue
from router.policy.context import Exploration, RoutingContext, TargetState
from router.policy.exploration import Limits, allowance, drawn
from router.policy.quality import routing_quality
from router.providers.base import TargetHealth, offer_health
from router.services import money
from router.services.deps import Deps
from router.store import agents


def routing_context(deps: Deps, tried: frozenset[str] = frozenset(), tenant: str | None = None,
                    campaign_id: str | None = None, explore_seed: str | None = None) -> RoutingContext:
    """`explore_seed`: the decision may explore, drawing from this seed (`exploration`); None: it doesn't."""
    circuits = deps.circuits.states(deps.clock())
    targets = {}
    offer_targets = {}
    # Targets that list their jobs (the GPU agent): priced below, once the learned models are read.
    reported: dict[ProviderKind, TargetHealth] = {}
    fleets: dict[ProviderKind, tuple[TargetHealth, ...]] = {}  # several GPU boxes behind one provider
    for kind, provider in deps.providers.items():
        circuit = circuits.get(provider.target_name, Circuit.CLOSED)
        if circuit is Circuit.OPEN:
            # Not asked: the open circuit rules its offers out, and a dead target's health check would hold up
            # every decision, for jobs that don't need it too.
            targets[kind] = TargetState(name=provider.target_name, circuit=circuit)
            continue
        health = provider.health()
        targets[kind] = TargetState(name=health.name, up=health.up, queue_wait_s=health.queue_wait_s,
                                    circuit=circuit, vram_mb=health.vram_mb, ram_mb=health.ram_mb,
                                    models=health.models)
        if health.queue:
            reported[kind] = health
        if health.boxes:
            fleets[kind] = health.boxes
        if not health.endpoints:
            continue
        # Each endpoint has its own queue and workers: its offers see those, under the target's name and circuit.
        for offer in deps.catalog.offers:
            if offer.provider is kind:
                own = offer_health(health, provider, offer)
                offer_targets[offer.id] = TargetState(name=health.name, up=own.up, queue_wait_s=own.queue_wait_s,
                                                      circuit=circuit, warm=own.warm)
    learned = learned_snapshot(deps, targets, offer_targets,
                               {box.name: kind for kind, fleet in fleets.items() for box in fleet})
    for kind, health in reported.items():
        targets[kind] = priced_queue(targets[kind], health, deps.catalog.offers, learned, deps.clock())
    boxes = {kind: tuple(_box(box, circuits.get(box.name, Circuit.CLOSED), deps, on_box(learned, box.name))
                         for box in fleet)
             for kind, fleet in fleets.items()}
    if ProviderKind.LOCAL in deps.providers:
        targets, boxes = _registry_says(deps, targets, boxes)
    budgets = money.budget_states(deps, tenant, campaign_id, deps.clock()) if tenant else ()
    unsupported = frozenset(o.id for o in deps.catalog.offers
                            if o.provider in deps.providers and not deps.providers[o.provider].supports(o))
    # Every offer's rating tally in one query: those with enough ratings route by what their ratings say.
    quality = routing_quality(deps.catalog.offers, deps.ratings.tallies(), deps.settings.quality_min_ratings)
    return RoutingContext(targets=targets, offer_targets=offer_targets, boxes=boxes,
                          configured=frozenset(deps.providers),
                          unsupported_offers=unsupported, quality=quality,
                          learned=learned, budgets=budgets, exclude_offers=tried,
                          exploration=exploration(deps, explore_seed, deps.clock()) if explore_seed else None)


def _registry_says(deps: Deps, targets: dict[ProviderKind, TargetState],
                   boxes: dict[ProviderKind, tuple[TargetState, ...]],
                   ) -> tuple[dict[ProviderKind, TargetState], dict[ProviderKind, tuple[TargetState, ...]]]:
    """The fleet registry's word on the GPU boxes it knows: one an admin drains, or that missed its heartbeats,
    takes no new job (its running ones finish: their polls don't route); a box that registered its power draw is
    priced at it. A box that never registered is judged by its health check alone, so a deployment without
    heartbeats routes as before."""
    records = {record.name: record for record in deps.agents.all()}
    if not records:
        return targets, boxes
    now, heartbeat_s = deps.clock(), deps.settings.agent_heartbeat_s

    def judged(target: TargetState) -> TargetState:
        record = records.get(target.name)
        if record is None:
            return target
        power = record.registration.power_w
        if power is not None:
            target = replace(target, power_kw=Decimal(power) / 1000)
        return target if agents.routable(record, now, heartbeat_s) else replace(target, up=False)

    local = targets.get(ProviderKind.LOCAL)
    if local is not None:
        targets = {**targets, ProviderKind.LOCAL: judged(local)}
    if ProviderKind.LOCAL in boxes:
        boxes = {**boxes, ProviderKind.LOCAL: tuple(judged(box) for box in boxes[ProviderKind.LOCAL])}
    return targets, boxes


def _box(health: TargetHealth, circuit: Circuit, deps: Deps, learned: Mapping[str, learning.Learned]) -> TargetState:
    """One GPU box of a fleet as the engine sees it: its own health, circuit, memory, models and priced queue."""
    state = TargetState(name=health.name, up=health.up,
                        queue_wait_s=health.queue_wait_s, circuit=circuit, vram_mb=health.vram_mb,
                        ram_mb=health.ram_mb, models=health.models)
    return priced_queue(state, health, deps.catalog.offers, learned, deps.clock()) if health.queue else state


def on_box(learned: Mapping[str, learning.Learned], box: str) -> Mapping[str, learning.Learned]:
    """The learned models as one box of a fleet runs them: its own (`offer@box`) where it has one."""
    suffix = f"@{box}"
    own = {name.removesuffix(suffix): value for name, value in learned.items() if name.endswith(suffix)}
    return {**learned, **own} if own else learned


def priced_queue(target: TargetState, health: TargetHealth, offers: Sequence[Offer],
                 learned: Mapping[str, learning.Learned], now: datetime) -> TargetState:
    """`target` with the jobs its agent reports, each priced at what the router has learned about its offer: the
    agent's own `eta_s` is in its catalog's minutes per frame, tens of times too long for a GPU faster than those.
    A job whose model no offer here runs keeps the agent's estimate."""
    by_model = {o.model: o for o in offers if o.provider is ProviderKind.LOCAL}
    work = []
    for item in health.queue:
        offer = by_model.get(item.model)
        left = item.left_s if offer is None else localqueue.work_left(
            offer, item.width, item.height, item.frames, item.progress, learned.get(offer.id))
        if item.stop_at is not None:  # an exploring try holds the GPU until its abandon point at most
            left = localqueue.held_until(left, (item.stop_at - now).total_seconds())
        work.append(localqueue.Work(left_s=left, due=item.deadline, running=item.running))
    queue = localqueue.run_order(work)
    return replace(target, queue=queue, slots=health.slots,
                   queue_wait_s=localqueue.wait_s(queue, None, health.slots))


def exploration_limits(deps: Deps) -> Limits | None:
    """The deployment's exploration settings; None where exploration is off."""
    settings = deps.settings
    if settings.exploration_share <= 0:
        return None
    return Limits(share=settings.exploration_share, jobs_per_day=settings.exploration_jobs_per_day,
                  usd_per_day=settings.exploration_usd_per_day, margin_s=settings.exploration_margin_s)


def exploration(deps: Deps, seed: str, now: datetime) -> Exploration | None:
    """What one decision may spend on exploring: a draw seeded by `seed` (a job's id, so a retried decision draws
    the same), against today's counts. Read only for a decision drawn to explore: the others cost nothing."""
    limits = exploration_limits(deps)
    if limits is None:
        return None
    draw = drawn(limits, seed)
    if draw is None:
        return None
    jobs, usd = deps.learned.explored(now.date())
    return allowance(limits, draw, jobs, usd)


def learned_snapshot(deps: Deps, targets: dict[ProviderKind, TargetState], offer_targets: dict[str, TargetState],
                     boxes: Mapping[str, ProviderKind] | None = None) -> dict[str, learning.Learned]:
    """The learned models by offer id; where an offer has a model of its own per target (`offer@target`), the one
    for the target it would run on now. A fleet's boxes (`boxes`: name → provider) keep theirs under
    `offer@box`, each box's offers priced at its own speed (learning.snapshot), for the engine to place by."""
    on_boxes = {name: [o.id for o in deps.catalog.offers if o.provider is kind]
                for name, kind in (boxes or {}).items()}
    learned = learning.snapshot(deps.learned.all(), (offer.id for offer in deps.catalog.offers), on_boxes)
    if any("@" in name for name in learned):
        for offer in deps.catalog.offers:
            target = offer_targets.get(offer.id) or targets.get(offer.provider)
            own = learned.get(learning.key(offer.id, target.name)) if target is not None else None
            if own is not None:
                learned[offer.id] = own
    return learned
