"""The routing engine: pure, `route(request, offers, context, now) -> Decision`.

It reads no clock, no environment and does no I/O. Every offer gets a row in the candidate table: feasible ones a
score, the rest the reasons they can't take the request. An offer blocked outright (spend mode, pin, allow list,
configuration, health, mode, quality, resolution) gets those reasons and no estimate; one that could render the
request gets its estimate and whatever it fails on (duration, fps, price, cap, budget, deadline). The best score
wins; ties go to the offer id.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from router.models.decision import Candidate, Chosen, Decision, DeliveredSpec
from router.models.offer import Offer
from router.models.request import VideoRequest
from router.policy import constraints
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
    for offer in offers:
        target = context.target(offer.id, offer.provider)
        reasons = constraints.eligibility_reasons(offer, ask, context, spend_mode, target)
        size = constraints.delivered_size(offer, ask)
        if size is None:
            reasons.append(f"resolution: {request.resolution} at {request.aspect_ratio.value} not offered")
        if reasons:
            # Blocked before any rendering question: no estimate to show, and none worth the time it costs.
            rows[offer.id] = _candidate(offer, None, reasons)
            continue
        assert size is not None
        delivered = constraints.deliver(offer, request, size)
        est = constraints.estimate(offer, delivered, target, context.calibration.get(offer.id), now)
        reasons += constraints.spec_reasons(offer, ask, delivered)
        if est is None:
            reasons.append(f"pricing: no stated price for {min(size)}p {delivered.duration_s:.2f} s")
            rows[offer.id] = _candidate(offer, None, reasons, delivered=delivered)
            continue
        reasons += constraints.money_and_time_reasons(request, est, deadline, context)
        if reasons:
            rows[offer.id] = _candidate(offer, est, reasons)
        else:
            feasible.append((est, offer))

    profile = profile_for(request.priority, spend_mode)
    cheapest = min((est.cost_p50 for est, _ in feasible), default=None)
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
            reasons=[f"{c.offer}: {'; '.join(c.reasons)}" for c in candidates],
        )
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


def _candidate(offer: Offer, est: constraints.Estimate | None, reasons: list[str], score: float | None = None,
               delivered: DeliveredSpec | None = None) -> Candidate:
    return Candidate(
        offer=offer.id,
        provider=offer.provider,
        feasible=not reasons,
        reasons=reasons,
        estimated_cost_usd=est.cost_p50 if est else None,
        estimated_cost_p90_usd=est.cost_p90 if est else None,
        estimated_ready_at=est.ready_p90 if est else None,
        score=score,
        delivered=est.delivered if est else delivered,
    )
