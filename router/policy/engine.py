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

from router.models.decision import Candidate, Chosen, Decision, DeliveredSpec, Reason, Refusal
from router.models.offer import Offer
from router.models.request import VideoRequest
from router.policy import constraints, exploration, localqueue
from router.policy.context import RoutingContext
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
    for offer in offers:
        target = context.target(offer.id, offer.provider)
        reasons = constraints.eligibility_reasons(offer, ask, context, spend_mode, target)
        size = constraints.delivered_size(offer, ask)
        if size is None:
            reasons.append(ask.size_reason)
        if reasons:
            # Blocked before any rendering question: no estimate to show, and none worth the time it costs.
            rows[offer.id] = Candidate(offer.id, offer.provider, False, reasons)
            continue
        assert size is not None
        if target is not None and target.queue:
            # The agent runs its queue by deadline: this request waits only for what runs and what is due first.
            target = replace(target, queue_wait_s=localqueue.wait_s(target.queue, deadline, target.slots))
        delivered = constraints.deliver(offer, request, size)
        learned = context.learned.get(offer.id)
        est = constraints.estimate(offer, delivered, target, learned, now)
        reasons += constraints.spec_reasons(offer, ask, delivered, target)
        if est is None:
            reasons.append(Reason(Refusal.PRICING, f"no stated price for {min(size)}p {delivered.duration_s:.2f} s"))
            rows[offer.id] = _candidate(offer, None, reasons, delivered=delivered)
            continue
        reasons += constraints.money_and_time_reasons(request, est, deadline, context)
        if target is not None and target.queue and localqueue.displaces(target.queue, deadline, est.compute_p90_s,
                                                                        target.slots, now):
            reasons.append(Reason(Refusal.DISPLACES, "it would push a job queued on the GPU past that job's deadline"))
        if scout is not None and exploration.worth_a_look(scout, offer, target, learned, reasons):
            explorable.append((est, offer))
        if reasons:
            rows[offer.id] = _candidate(offer, est, reasons)
        else:
            feasible.append((est, offer))

    profile = profile_for(request.priority, spend_mode)
    cheapest = min((est.expected_cost for est, _ in feasible), default=None)
    ranked = sorted(
        ((score(offer, est, ask.floor, cheapest, profile, now, deadline), est, offer)
         for est, offer in feasible if cheapest is not None),
        key=lambda item: (-item[0], item[2].id),
    )
    for value, est, offer in ranked:
        rows[offer.id] = _candidate(offer, est, [], score=value)
    candidates = [rows[offer.id] for offer in offers]
    if not ranked:
        return Decision(
            chosen=None, fallbacks=[], candidates=candidates, decided_at=now,
            reasons=[f"{c.offer}: {'; '.join(map(str, c.reasons))}" for c in candidates],
        )
    if explorable and scout is not None and deadline is not None and cheapest is not None:
        explored = exploration.best(scout, explorable, ranked, ask, context, profile, cheapest, now, deadline)
        if explored is not None:
            return _exploring(explored, ranked, rows, offers, context, now)
    best, est, offer = ranked[0]
    target = context.target(offer.id, offer.provider)
    spec = est.delivered
    chosen = Chosen(
        offer=offer.id,
        provider=offer.provider,
        target=target.name if target else offer.provider.value,
        estimated_cost_usd=est.cost_p50,
        estimated_cost_p90_usd=est.cost_p90,
        estimated_ready_at=est.ready_p90,
        score=best,
        delivered=spec,
        reason=(
            f"best of {len(ranked)} feasible ({profile.name} profile, score {best:.2f}): ${est.cost_p50} "
            f"(p90 ${est.cost_p90}), quality {offer.quality}>={ask.floor}, "
            f"{spec.width}x{spec.height} {spec.frames}f@{spec.fps:g}"
        ),
    )
    return Decision(chosen=chosen, fallbacks=[o.id for _, _, o in ranked[1:]],
                                    candidates=candidates, reasons=[], decided_at=now)


def _exploring(explored: exploration.Explored, ranked: list[tuple[float, constraints.Estimate, Offer]],
               rows: dict[str, Candidate], offers: Sequence[Offer], context: RoutingContext,
               now: datetime) -> Decision:
    offer, est = explored.offer, explored.estimate
    target = context.target(offer.id, offer.provider)
    spec = est.delivered
    chosen = Chosen(
        offer=offer.id,
        provider=offer.provider,
        target=target.name if target else offer.provider.value,
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
                               estimated_ready_at=explored.ready_at, score=explored.score, delivered=spec)
    return Decision(chosen=chosen, fallbacks=[o.id for _, _, o in ranked if o.id != offer.id],
                    candidates=[rows[o.id] for o in offers], reasons=[], decided_at=now)


def _candidate(offer: Offer, est: constraints.Estimate | None, reasons: list[Reason], score: float | None = None,
               delivered: DeliveredSpec | None = None) -> Candidate:
    if est is None:
        return Candidate(offer.id, offer.provider, not reasons, reasons, None, None, None, score, delivered)
    # By position: a row per estimated offer per decision, and keywords cost a third more.
    return Candidate(offer.id, offer.provider, not reasons, reasons, est.cost_p50, est.cost_p90, est.ready_p90, score,
                     est.delivered)
