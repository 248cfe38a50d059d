"""Hard constraints: what an offer would deliver for a request, and every reason it can't take it.

Reasons are `code: detail` strings; the code before the colon is stable for clients and tests.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from router.models.common import money
from router.models.decision import DeliveredSpec
from router.models.offer import Offer
from router.models.request import VideoRequest
from router.policy.context import RoutingContext

FPS_TOLERANCE = 0.20
DURATION_TOLERANCE_S = 0.5
DURATION_TOLERANCE_FRACTION = 0.25


@dataclass(frozen=True)
class Estimate:
    delivered: DeliveredSpec
    compute_p50_s: float
    compute_p90_s: float
    cost_p50: Decimal
    cost_p90: Decimal
    ready_p50: datetime
    ready_p90: datetime


def delivered_size(offer: Offer, request: VideoRequest) -> tuple[int, int] | None:
    """Exact pixels for `WxH`; for a named tier, the offer's own size of that tier and aspect."""
    tier = request.named_tier
    if tier is None:
        wanted = request.size()
        return wanted if wanted in offer.size_list else None
    return offer.size_for_tier(tier, request.aspect_ratio)


def deliver(offer: Offer, request: VideoRequest, size: tuple[int, int]) -> DeliveredSpec:
    fps = min(offer.fps.max, max(offer.fps.min, request.fps or offer.fps.default))
    frames = offer.frames.snap(request.duration_s * fps)
    return DeliveredSpec(width=size[0], height=size[1], frames=frames, fps=fps)


def estimate(offer: Offer, delivered: DeliveredSpec, queue_wait_s: float, now: datetime) -> Estimate:
    p50 = offer.latency.compute_seconds(delivered.width, delivered.height, delivered.frames, p90=False)
    p90 = offer.latency.compute_seconds(delivered.width, delivered.height, delivered.frames, p90=True)
    rate = offer.pricing.usd_per_gpu_second
    return Estimate(
        delivered=delivered,
        compute_p50_s=p50,
        compute_p90_s=p90,
        cost_p50=money(rate * Decimal(str(round(p50, 3)))),
        cost_p90=money(rate * Decimal(str(round(p90, 3)))),
        ready_p50=now + timedelta(seconds=queue_wait_s + p50),
        ready_p90=now + timedelta(seconds=queue_wait_s + p90),
    )


def eligibility_reasons(offer: Offer, request: VideoRequest, context: RoutingContext) -> list[str]:
    """Reasons that don't depend on what gets rendered: pinning, allow list, configuration, health, mode."""
    reasons = []
    if request.model and request.model != offer.id:
        reasons.append(f"pinned: request pins {request.model}")
    if request.providers and offer.provider not in request.providers:
        reasons.append(f"provider_not_allowed: {offer.provider.value} not in the request's providers")
    if offer.provider not in context.configured:
        reasons.append(f"not_configured: no {offer.provider.value} adapter or credentials in this deployment")
    target = context.targets.get(offer.provider)
    if offer.provider in context.configured and (target is None or not target.up):
        reasons.append(f"target_down: {target.name if target else offer.provider.value} is not healthy")
    if offer.id in context.exclude_offers:
        reasons.append("already_tried: an earlier attempt of this job failed on this offer")
    if request.mode not in offer.modes:
        reasons.append(f"mode: {request.mode.value} not offered")
    if offer.quality < request.quality.min_score:
        reasons.append(
            f"quality: score {offer.quality} below the {request.quality.value} floor {request.quality.min_score}"
        )
    return reasons


def spec_reasons(offer: Offer, request: VideoRequest, delivered: DeliveredSpec) -> list[str]:
    reasons = []
    if request.fps is not None and abs(delivered.fps - request.fps) > FPS_TOLERANCE * request.fps:
        reasons.append(f"fps: {request.fps:g} requested, {delivered.fps:g} delivered")
    tolerance = max(DURATION_TOLERANCE_S, DURATION_TOLERANCE_FRACTION * request.duration_s)
    if abs(delivered.duration_s - request.duration_s) > tolerance:
        reasons.append(
            f"duration: {request.duration_s:g} s requested, {delivered.duration_s:.2f} s delivered "
            f"({delivered.frames} frames at {delivered.fps:g} fps, frames {offer.frames.min}-{offer.frames.max})"
        )
    return reasons


def money_and_time_reasons(request: VideoRequest, est: Estimate, deadline: datetime | None) -> list[str]:
    reasons = []
    if request.max_cost_usd is not None and est.cost_p90 > request.max_cost_usd:
        reasons.append(f"over_cap: p90 cost ${est.cost_p90} over max_cost_usd ${request.max_cost_usd}")
    if deadline is not None and est.ready_p90 > deadline:
        late = (est.ready_p90 - deadline).total_seconds()
        reasons.append(f"deadline: p90 ready {late:.0f} s after the deadline")
    return reasons
