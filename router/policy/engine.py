"""The routing engine: pure, `route(request, offers, context, now) -> Decision`.

It reads no clock, no environment and does no I/O. Every offer gets a row in the candidate table: feasible ones a
score, the rest the reasons they can't take the request. An offer blocked outright (spend mode, pin, allow list,
configuration, health, mode, quality, resolution) gets those reasons and no estimate; one that could render the
request gets its estimate and whatever it fails on (duration, fps, price, cap, budget, deadline, displacing a job
queued on the GPU: router.policy.localqueue). The best score wins; ties go to the offer id. A decision the caller
drew to explore may instead try an offer with little evidence on an optimistic estimate, with the winner kept as its
fallback (router.policy.exploration).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime
from decimal import Decimal
from typing import NamedTuple

from router.models.budget import SpendMode
from router.models.decision import Candidate, Chosen, Decision, DeliveredSpec, Reason, Refusal
from router.models.offer import Offer
from router.models.request import VideoRequest
from router.policy import constraints, exploration, localqueue
from router.policy.context import RoutingContext, TargetState
from router.policy.learning import Learned
from router.policy.learning import key as learning_key
from router.policy.scoring import profile_for, score


def route(
    request: VideoRequest,
    offers: Sequence[Offer],
    context: RoutingContext,
    now: datetime,
    deadline: datetime | None = None,
) -> Decision:
    """Decide where `request` goes. `deadline` is the resolved absolute deadline (the job's, if accepted)."""
    if deadline is None:
        deadline = request.resolved_deadline(now)
    feasible: list[tuple[constraints.Estimate, Offer]] = []
    rows: dict[str, Candidate] = {}
    spend_mode = context.spend_mode
    ask = constraints.Ask.of(request)
    scout = context.exploration if context.exploration is not None and context.exploration.open else None
    if deadline is None:
        scout = None  # the abandon point is measured back from the deadline
    explorable: list[tuple[constraints.Estimate, Offer]] = []
    placed: dict[str, str] = {}  # offer id → the box it would run on, where its provider has several
    for offer in offers:
        boxes = context.boxes.get(offer.provider) if context.boxes else None
        if boxes:
            assessed = _place(offer, boxes, request, ask, context, spend_mode, deadline, now)
            if assessed.target is not None:
                placed[offer.id] = assessed.target.name
        else:
            target = context.target(offer.id, offer.provider)
            blocked = constraints.eligibility_reasons(offer, ask, context, spend_mode, target)
            size = constraints.delivered_size(offer, ask)
            if size is None:
                blocked.append(ask.size_reason)
            if blocked or size is None:
                # Blocked before any rendering question: no estimate to show, and none worth the time it costs.
                rows[offer.id] = Candidate(offer.id, offer.provider, False, blocked)
                continue
            assessed = _estimate(offer, target, size, request, ask, context, deadline, now)
        reasons, est = assessed.reasons, assessed.estimate
        if est is None:
            rows[offer.id] = _candidate(offer, None, reasons, delivered=assessed.delivered)
            continue
        if scout is not None and exploration.worth_a_look(scout, offer, assessed.target, assessed.learned, reasons):
            explorable.append((est, offer))
        if reasons:
            rows[offer.id] = _candidate(offer, est, reasons, target=placed.get(offer.id))
        else:
            feasible.append((est, offer))

    profile = profile_for(request.priority, spend_mode)
    cheapest = min((est.expected_cost for est, _ in feasible), default=None)
    ranked = sorted(
        ((score(context.quality_of(offer), est, ask.floor, cheapest, profile, now, deadline), est, offer)
         for est, offer in feasible if cheapest is not None),
        key=lambda item: (-item[0], item[2].id),
    )
    for value, est, offer in ranked:
        rows[offer.id] = _candidate(offer, est, [], score=value, target=placed.get(offer.id))
    candidates = [rows[offer.id] for offer in offers]
    if not ranked:
        return Decision(
            chosen=None, fallbacks=[], candidates=candidates, decided_at=now,
            reasons=[f"{c.offer}: {'; '.join(map(str, c.reasons))}" for c in candidates],
        )
    if explorable and scout is not None and deadline is not None and cheapest is not None:
        explored = exploration.best(scout, explorable, ranked, ask, context, profile, cheapest, now, deadline)
        if explored is not None:
            return _exploring(explored, ranked, rows, offers, _target_name(explored.offer, context, placed), now,
                              placed.get(explored.offer.id))
    best, est, offer = ranked[0]
    spec = est.delivered
    chosen = Chosen(
        offer=offer.id,
        provider=offer.provider,
        target=_target_name(offer, context, placed),
        estimated_cost_usd=est.cost_p50,
        estimated_cost_p90_usd=est.cost_p90,
        estimated_ready_at=est.ready_p90,
        score=best,
        delivered=spec,
        reason=(
            f"best of {len(ranked)} feasible ({profile.name} profile, score {best:.2f}): ${est.cost_p50} "
            f"(p90 ${est.cost_p90}), quality {context.quality_of(offer):.3g}>={ask.floor}, "
            f"{spec.width}x{spec.height} {spec.frames}f@{spec.fps:g}"
        ),
    )
    return Decision(chosen=chosen, fallbacks=[o.id for _, _, o in ranked[1:]],
                                    candidates=candidates, reasons=[], decided_at=now)


def _exploring(explored: exploration.Explored, ranked: list[tuple[float, constraints.Estimate, Offer]],
               rows: dict[str, Candidate], offers: Sequence[Offer], target: str, now: datetime,
               box: str | None) -> Decision:
    offer, est = explored.offer, explored.estimate
    spec = est.delivered
    chosen = Chosen(
        offer=offer.id,
        provider=offer.provider,
        target=target,
        estimated_cost_usd=est.cost_p50,
        estimated_cost_p90_usd=est.cost_p90,
        estimated_ready_at=explored.ready_at,
        score=explored.score,
        delivered=spec,
        reason=(f"exploring {offer.id} on an optimistic estimate (score {explored.score:.2f}), "
                f"{explored.fallback} kept as its fallback: ${est.cost_p50} (pessimistic p90 ${est.cost_p90}), "
                f"{spec.width}x{spec.height} {spec.frames}f@{spec.fps:g}"),
        explored=explored.why,
        explore_until=explored.explore_until,
    )
    rows[offer.id] = Candidate(offer=offer.id, provider=offer.provider, feasible=True,
                               estimated_cost_usd=est.cost_p50, estimated_cost_p90_usd=est.cost_p90,
                               estimated_ready_at=explored.ready_at, score=explored.score, delivered=spec,
                               target=box)
    return Decision(chosen=chosen, fallbacks=[o.id for _, _, o in ranked if o.id != offer.id],
                    candidates=[rows[o.id] for o in offers], reasons=[], decided_at=now)


class _Assessed(NamedTuple):
    """One offer on one target: what stops it (none: feasible), and its estimate where it got that far. A tuple:
    one is made per offer per decision."""

    target: TargetState | None
    reasons: list[Reason]
    estimate: constraints.Estimate | None = None
    delivered: DeliveredSpec | None = None
    learned: Learned | None = None


def _assess(offer: Offer, target: TargetState | None, request: VideoRequest, ask: constraints.Ask,
            context: RoutingContext, spend_mode: SpendMode, deadline: datetime | None, now: datetime,
            box: bool = False) -> _Assessed:
    reasons = constraints.eligibility_reasons(offer, ask, context, spend_mode, target)
    size = constraints.delivered_size(offer, ask)
    if size is None:
        reasons.append(ask.size_reason)
    if reasons or size is None:
        return _Assessed(target, reasons)
    return _estimate(offer, target, size, request, ask, context, deadline, now, box)


def _estimate(offer: Offer, target: TargetState | None, size: tuple[int, int], request: VideoRequest,
              ask: constraints.Ask, context: RoutingContext, deadline: datetime | None, now: datetime,
              box: bool = False) -> _Assessed:
    """An offer past the eligibility checks: what it would deliver, its estimate, and what that fails on."""
    reasons: list[Reason] = []
    if target is not None and target.queue:
        # The agent runs its queue by deadline: this request waits only for what runs and what is due first.
        target = replace(target, queue_wait_s=localqueue.wait_s(target.queue, deadline, target.slots))
    learned = None
    if box and target is not None:  # one box of a fleet: its own speed where it has learned one, its own power
        learned = context.learned.get(learning_key(offer.id, target.name))
        if target.power_kw is not None:
            offer = _on_power(offer, target.power_kw)
    delivered = constraints.deliver(offer, request, size)
    learned = learned or context.learned.get(offer.id)
    est = constraints.estimate(offer, delivered, target, learned, now)
    reasons += constraints.spec_reasons(offer, ask, delivered, target)
    if est is None:
        reasons.append(Reason(Refusal.PRICING, f"no stated price for {min(size)}p {delivered.duration_s:.2f} s"))
        return _Assessed(target, reasons, None, delivered, learned)
    reasons += constraints.money_and_time_reasons(request, est, deadline, context)
    if target is not None and target.queue and localqueue.displaces(target.queue, deadline, est.compute_p90_s,
                                                                    target.slots, now):
        reasons.append(Reason(Refusal.DISPLACES, "it would push a job queued on the GPU past that job's deadline"))
    return _Assessed(target, reasons, est, delivered, learned)


def _place(offer: Offer, boxes: Sequence[TargetState], request: VideoRequest, ask: constraints.Ask,
           context: RoutingContext, spend_mode: SpendMode, deadline: datetime | None, now: datetime) -> _Assessed:
    """The offer on the best of several boxes: among those it fits, the cheapest expected, then the soonest ready,
    then the name; where it fits none, every box's reasons, each named by its box."""
    assessed = [_assess(offer, one, request, ask, context, spend_mode, deadline, now, box=True) for one in boxes]
    fitting = [a for a in assessed if not a.reasons and a.estimate is not None]
    if fitting:
        return min(fitting, key=lambda a: (a.estimate.expected_cost, a.estimate.ready_p90,  # type: ignore[union-attr]
                                           a.target.name if a.target else ""))
    named = [Reason(r.code, f"{a.target.name}: {r.detail}" if a.target else r.detail, r.scope)
             for a in assessed for r in a.reasons]
    first = next((a for a in assessed if a.estimate is not None), assessed[0])
    return _Assessed(first.target, named, first.estimate, first.delivered, first.learned)


_POWERED: dict[tuple[int, Decimal], tuple[Offer, Offer]] = {}


def _on_power(offer: Offer, power_kw: Decimal) -> Offer:
    """`offer.on_power`, made once per offer and power: a fleet's boxes are priced in every decision."""
    found = _POWERED.get((id(offer), power_kw))
    if found is None or found[0] is not offer:  # an id reused by another offer since
        found = _POWERED[(id(offer), power_kw)] = (offer, offer.on_power(power_kw))
    return found[1]


def _target_name(offer: Offer, context: RoutingContext, placed: dict[str, str]) -> str:
    if offer.id in placed:
        return placed[offer.id]
    target = context.target(offer.id, offer.provider)
    return target.name if target else offer.provider.value


def _candidate(offer: Offer, est: constraints.Estimate | None, reasons: list[Reason], score: float | None = None,
               delivered: DeliveredSpec | None = None, target: str | None = None) -> Candidate:
    if est is None:
        return Candidate(offer.id, offer.provider, not reasons, reasons, None, None, None, score, delivered, target)
    # By position: a row per estimated offer per decision, and keywords cost a third more.
    return Candidate(offer.id, offer.provider, not reasons, reasons, est.cost_p50, est.cost_p90, est.ready_p90, score,
                     est.delivered, target)
