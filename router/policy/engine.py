"""The routing engine: pure, `route(request, offers, context, now) -> Decision`.

It reads no clock, no environment and does no I/O. This first engine applies the hard constraints and picks
the cheapest feasible offer (p50 cost, ties broken by offer id); the policy issue replaces the scoring.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal

from router.models.decision import Candidate, Chosen, Decision
from router.models.offer import Offer
from router.models.request import VideoRequest
from router.policy import constraints
from router.policy.context import RoutingContext


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
    rejected: list[Candidate] = []
    for offer in offers:
        reasons = constraints.eligibility_reasons(offer, request, context)
        size = constraints.delivered_size(offer, request)
        if size is None:
            reasons.append(f"resolution: {request.resolution} at {request.aspect_ratio.value} not offered")
            rejected.append(Candidate(offer=offer.id, provider=offer.provider, feasible=False, reasons=reasons))
            continue
        delivered = constraints.deliver(offer, request, size)
        target = context.targets.get(offer.provider)
        est = constraints.estimate(offer, delivered, target.queue_wait_s if target else 0.0, now)
        reasons += constraints.spec_reasons(offer, request, delivered)
        reasons += constraints.money_and_time_reasons(request, est, deadline)
        if reasons:
            rejected.append(_candidate(offer, est, feasible=False, reasons=reasons))
        else:
            feasible.append((est, offer))

    feasible.sort(key=lambda pair: (pair[0].cost_p50, pair[1].id))
    cheapest = feasible[0][0].cost_p50 if feasible else None
    ranked = [
        _candidate(offer, est, feasible=True, score=_score(cheapest, est)) for est, offer in feasible
    ]
    by_offer = {c.offer: c for c in ranked + rejected}
    candidates = [by_offer[offer.id] for offer in offers]
    if not feasible:
        return Decision(
            chosen=None,
            fallbacks=[],
            candidates=candidates,
            reasons=[f"{c.offer}: {'; '.join(c.reasons)}" for c in rejected],
            decided_at=now,
        )
    est, offer = feasible[0]
    target = context.targets[offer.provider]
    floor = request.quality.min_score
    chosen = Chosen(
        offer=offer.id,
        provider=offer.provider,
        target=target.name,
        estimated_cost_usd=est.cost_p50,
        estimated_cost_p90_usd=est.cost_p90,
        estimated_ready_at=est.ready_p90,
        score=ranked[0].score or 1.0,
        delivered=est.delivered,
        reason=(
            f"cheapest of {len(feasible)} feasible: ${est.cost_p50} (p90 ${est.cost_p90}), "
            f"quality {offer.quality}>={floor}, {est.delivered.width}x{est.delivered.height} "
            f"{est.delivered.frames}f@{est.delivered.fps:g}"
        ),
    )
    return Decision(
        chosen=chosen,
        fallbacks=[c.offer for c in ranked[1:]],
        candidates=candidates,
        reasons=[],
        decided_at=now,
    )


def _score(cheapest: Decimal | None, est: constraints.Estimate) -> float:
    """Relative cheapness in (0, 1]; the policy issue replaces this with the weighted profile score."""
    if cheapest is None or est.cost_p50 == 0:
        return 1.0
    return round(float(cheapest / est.cost_p50), 4)


def _candidate(
    offer: Offer,
    est: constraints.Estimate,
    *,
    feasible: bool,
    reasons: list[str] | None = None,
    score: float | None = None,
) -> Candidate:
    return Candidate(
        offer=offer.id,
        provider=offer.provider,
        feasible=feasible,
        reasons=reasons or [],
        estimated_cost_usd=est.cost_p50,
        estimated_cost_p90_usd=est.cost_p90,
        estimated_ready_at=est.ready_p90,
        score=score,
        delivered=est.delivered,
    )
