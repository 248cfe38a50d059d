"""Hard constraints: what an offer would deliver for a request, what it would cost and when it would be ready,
and every reason it can't take the request.

Reasons are `code: detail` strings; the code before the colon is stable for clients and tests.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal

from router.models.budget import SpendMode
from router.models.common import MONEY_PLACES, Circuit, Mode, ProviderKind
from router.models.decision import DeliveredSpec, Reason, Refusal
from router.models.offer import Offer
from router.models.request import VideoRequest
from router.policy.context import RoutingContext, TargetState
from router.policy.learning import CATALOG, Learned

FPS_TOLERANCE = 0.20
DURATION_TOLERANCE_S = 0.5
DURATION_TOLERANCE_FRACTION = 0.25
# Enum members read once: in Python 3.11 each `Enum.MEMBER` lookup costs a descriptor call, and these are checked
# for every offer of every decision.
_PAUSED, _LOCAL_ONLY, _LOCAL, _OPEN = SpendMode.PAUSED, SpendMode.LOCAL_ONLY, ProviderKind.LOCAL, Circuit.OPEN


_NO_MODE, _NO_SIZE = Reason(Refusal.MODE, "not offered"), Reason(Refusal.RESOLUTION, "not offered")
# s2v needs only `audio` at the edge; an offer that animates the face it is given refuses a request without one
# (the catalog's `optional_inputs` names the offers that don't).
_S2V = Mode.S2V
_EXTEND = Mode.EXTEND
_S2V_NEEDS_IMAGE = Reason(Refusal.MODE, "s2v without image: this offer animates a given face")


@dataclass(frozen=True, slots=True)
class Ask:
    """The request, digested once per decision (the engine checks it against every offer)."""

    request: VideoRequest
    floor: int
    tier: int | None
    size: tuple[int, int]
    duration_s: float
    tolerance_s: float
    # The reasons every offer that can't do the mode or the size gets, worded once.
    mode_reason: Reason = _NO_MODE
    size_reason: Reason = _NO_SIZE

    @classmethod
    def of(cls, request: VideoRequest) -> Ask:
        return cls(request=request, floor=request.quality.min_score, tier=request.named_tier, size=request.size(),
                   duration_s=request.duration_s,
                   tolerance_s=max(DURATION_TOLERANCE_S, DURATION_TOLERANCE_FRACTION * request.duration_s),
                   mode_reason=Reason(Refusal.MODE, f"{request.mode.value} not offered"),
                   size_reason=Reason(Refusal.RESOLUTION,
                                      f"{request.resolution} at {request.aspect_ratio.value} not offered"))

Z90 = 1.2816  # standard normal quantile of 0.9


@dataclass(frozen=True, slots=True)
class Estimate:
    delivered: DeliveredSpec
    compute_p50_s: float
    compute_p90_s: float
    queue_wait_s: float
    unit: str
    unit_price: Decimal
    cost_p50: Decimal
    cost_p90: Decimal
    ready_p90: datetime
    cold_s: float = 0.0  # the cold start counted in `ready_p90` (0 on a warm target)

    @property
    def expected_cost(self) -> float:
        """The mean cost, what a month of such renders averages: for a time-billed offer its p50 cost with the render
        part scaled by the log-normal mean over median, exp(sd^2 / 2), the sd read from the p50-p90 gap (1.21 where the
        p90 is 2.2 times the p50); a fixed price is its own mean. Ranking on p50 costs favoured wide-spread time-billed
        offers over fixed prices they cost more than on average."""
        p50, p90 = self.compute_p50_s, self.compute_p90_s
        if self.unit != "gpu_second" or p90 <= p50 or p50 <= 0:
            return float(self.cost_p50)
        sigma = math.log(p90 / p50) / Z90
        return float(self.cost_p50) * (p50 * math.exp(sigma * sigma / 2) + self.cold_s) / (p50 + self.cold_s)

    @property
    def ready_p50(self) -> datetime:
        """Without a cold start, at the p50 render time. Derived: only exploration asks for it."""
        return self.ready_p90 - timedelta(seconds=self.cold_s + self.compute_p90_s - self.compute_p50_s)


def delivered_size(offer: Offer, ask: Ask) -> tuple[int, int] | None:
    """Exact pixels for `WxH`; for a named tier, the offer's own size of that tier and aspect."""
    if ask.tier is None:
        return ask.size if ask.size in offer.size_list else None
    return offer.size_for_tier(ask.tier, ask.request.aspect_ratio)


def deliver(offer: Offer, request: VideoRequest, size: tuple[int, int]) -> DeliveredSpec:
    rates, frames_rule = offer.fps, offer.frames
    fps = min(rates.max, max(rates.min, request.fps or rates.default))
    duration = frames_rule.snap_duration(request.duration_s) or request.duration_s
    long_form = offer.long_form
    if long_form is not None and duration * fps > frames_rule.max and duration <= long_form.max_duration_s:
        # Equal segments, each as long as one render may be at most: the fewest renders, so the fewest joins.
        segments = math.ceil(duration * fps / frames_rule.max)
        each = frames_rule.snap(duration * fps / segments)
        return DeliveredSpec(size[0], size[1], each * segments, fps, segments)
    return DeliveredSpec(size[0], size[1], frames_rule.snap(duration * fps), fps)


def render_seconds(offer: Offer, width: int, height: int, frames: int, learned: Learned) -> tuple[float, float]:
    """p50 and p90 render seconds: the catalog's latency model for this work, times what was learned about it."""
    latency = offer.latency
    p50_catalog = latency.compute_seconds(width, height, frames, p90=False)
    if learned.time_p90 is not None:
        return p50_catalog * learned.time_p50, p50_catalog * learned.time_p90
    # Too few runs to measure a spread yet: the catalog's own p90/p50, moved with the learned p50.
    return p50_catalog * learned.time_p50, latency.compute_seconds(width, height, frames, p90=True) * learned.time_p50


def estimate(offer: Offer, delivered: DeliveredSpec, target: TargetState | None, learned: Learned | None,
             now: datetime) -> Estimate | None:
    """Cost and ready times, p50 and p90; None when the offer states no price for this delivery."""
    model = learned or CATALOG
    latency = offer.latency
    segments = delivered.segments
    p50, p90 = render_seconds(offer, delivered.width, delivered.height, delivered.segment_frames, model)
    if segments > 1:  # each segment is a render of its own: its overhead included
        p50, p90 = p50 * segments, p90 * segments
    cold_start_s = latency.cold_start_s if model.cold_start_s is None else model.cold_start_s
    cold = 0.0 if target is None or target.warm else cold_start_s
    wait = target.queue_wait_s if target is not None else 0.0
    if model.queue_wait_s is not None and target is not None:
        wait = max(wait, model.queue_wait_s)  # even a warm endpoint takes this long to pick a job up
    width, height = delivered.width, delivered.height
    priced = offer.price_for(width, height, delivered.segment_frames / delivered.fps)
    if priced is None:
        return None
    unit, price = priced
    if unit == "gpu_second":
        # Serverless GPUs bill from worker start, cold start included; the local GPU only while it renders.
        billed_cold = cold if offer.provider is not _LOCAL else 0.0
        cost_p50 = price * Decimal(f"{p50 + billed_cold:.3f}")
        cost_p90 = price * Decimal(f"{p90 + billed_cold:.3f}")
    elif unit == "output_second":
        cost_p50 = cost_p90 = price * Decimal(f"{delivered.duration_s:.3f}")
    else:
        cost_p50 = cost_p90 = price * segments
    if model.cost != 1.0:
        cost_p50, cost_p90 = cost_p50 * model.cost_decimal, cost_p90 * model.cost_decimal
    # By position, and quantized in place (each is a Decimal already): one of these per offer per decision.
    return Estimate(delivered, p50, p90, wait, unit, price, cost_p50.quantize(MONEY_PLACES, ROUND_HALF_UP),
                    cost_p90.quantize(MONEY_PLACES, ROUND_HALF_UP),
                    now + timedelta(seconds=wait + cold + p90 + latency.transfer_s), cold)


def eligibility_reasons(offer: Offer, ask: Ask, context: RoutingContext, mode: SpendMode,
                        target: TargetState | None) -> list[Reason]:
    """Reasons that don't depend on what gets rendered: spend mode, pinning, allow list, configuration, health,
    circuit, mode and quality. The caller works out the spend mode and the offer's target once."""
    request = ask.request
    reasons: list[Reason] = []
    if mode is _PAUSED:
        reasons.append(Reason(Refusal.SPEND_MODE, "paused, nothing new starts"))
    elif mode is _LOCAL_ONLY and offer.provider is not _LOCAL:
        reasons.append(Reason(Refusal.SPEND_MODE, "local_only, only the local GPU may be used"))
    if request.model and request.model != offer.id:
        reasons.append(Reason(Refusal.PINNED, f"request pins {request.model}"))
    if request.providers and offer.provider not in request.providers:
        reasons.append(Reason(Refusal.PROVIDER_NOT_ALLOWED, f"{offer.provider.value} not in the request's providers"))
    if offer.provider not in context.configured:
        reasons.append(Reason(Refusal.NOT_CONFIGURED,
                              f"no {offer.provider.value} adapter or credentials in this deployment"))
    elif offer.id in context.unsupported_offers:
        reasons.append(Reason(Refusal.NOT_CONFIGURED, f"the {offer.provider.value} adapter can't run {offer.model}"))
    else:
        if target is None or not target.up:
            down = target.name if target else offer.provider.value
            reasons.append(Reason(Refusal.TARGET_DOWN, f"{down} is not healthy"))
        elif target.circuit is _OPEN:
            reasons.append(Reason(Refusal.CIRCUIT_OPEN, f"{target.name} is failing; its circuit is open"))
    if target is not None and target.models is not None and target.up:
        # What the agent says its box can run now: an offer whose files aren't there can't take the job.
        runs = offer.long_form.continue_mode if request.mode is _EXTEND and offer.long_form else request.mode
        if runs.value not in target.models.get(offer.model, ()):
            reasons.append(Reason(Refusal.NOT_INSTALLED, f"{target.name} can't run {offer.model} {runs.value} "
                                                         "(its files are missing, or its card is too small)"))
    if offer.id in context.exclude_offers:
        reasons.append(Reason(Refusal.ALREADY_TRIED, "this job failed here twice, or in a way a retry won't fix"))
    if request.mode not in offer.mode_set:
        reasons.append(ask.mode_reason)
    elif request.image is None and request.mode is _S2V and "image" not in offer.optional_inputs:
        reasons.append(_S2V_NEEDS_IMAGE)
    quality = context.quality_of(offer)
    if quality < ask.floor:
        learned = "" if quality == offer.quality else f" (learned from ratings; catalog {offer.quality})"
        reasons.append(Reason(Refusal.QUALITY,
                              f"score {quality:.3g} below the {request.quality.value} floor {ask.floor}{learned}"))
    return reasons


def vram_reason(offer: Offer, delivered: DeliveredSpec, target: TargetState | None) -> Reason | None:
    """Why the box can't hold this render, where it reports its memory and the offer states its hardware fit: the
    tier's full need, else the offloading one (part of the model in system RAM). None: it fits."""
    fit = offer.vram
    if fit is None or target is None or target.vram_mb is None:
        return None
    short_side = min(delivered.width, delivered.height)
    needs = fit.tier(short_side)
    if target.vram_mb >= needs.min_mb:
        return None
    ram_ok = target.ram_mb is None or target.ram_mb >= fit.offload_ram_mb
    if needs.offload_min_mb is not None and target.vram_mb >= needs.offload_min_mb and ram_ok:
        return None
    detail = f"{_gb(target.vram_mb)} card, needs {_gb(needs.min_mb)} for {offer.model} {short_side}p"
    if needs.offload_min_mb is not None:
        detail += f" ({_gb(needs.offload_min_mb)} offloading to {_gb(fit.offload_ram_mb)} of RAM"
        detail += ")" if ram_ok or target.ram_mb is None else f"; the box has {_gb(target.ram_mb)})"
    return Reason(Refusal.VRAM, detail)


def _gb(mb: int) -> str:
    return f"{mb / 1024:.0f} GB" if mb >= 1024 else f"{mb} MB"


def spec_reasons(offer: Offer, ask: Ask, delivered: DeliveredSpec, target: TargetState | None = None) -> list[Reason]:
    """What is wrong with the delivery itself: its rate, its length, and whether the box can hold it."""
    request = ask.request
    reasons: list[Reason] = []
    if (too_big := vram_reason(offer, delivered, target)) is not None:
        reasons.append(too_big)
    if request.fps is not None and abs(delivered.fps - request.fps) > FPS_TOLERANCE * request.fps:
        reasons.append(Reason(Refusal.FPS, f"{request.fps:g} requested, {delivered.fps:g} delivered"))
    if abs(delivered.duration_s - ask.duration_s) > ask.tolerance_s:
        reasons.append(Reason(
            Refusal.DURATION, f"{request.duration_s:g} s requested, {delivered.duration_s:.2f} s delivered "
            f"({delivered.frames} frames at {delivered.fps:g} fps, frames {offer.frames.min}-{offer.frames.max})"))
    return reasons


def money_and_time_reasons(request: VideoRequest, est: Estimate, deadline: datetime | None,
                           context: RoutingContext) -> list[Reason]:
    reasons: list[Reason] = []
    if request.max_cost_usd is not None and est.cost_p90 > request.max_cost_usd:
        reasons.append(Reason(Refusal.OVER_CAP, f"p90 cost ${est.cost_p90} over max_cost_usd ${request.max_cost_usd}"))
    for budget in context.budgets:
        if est.cost_p90 > budget.remaining_usd:
            reasons.append(Reason(Refusal.BUDGET, f"p90 cost ${est.cost_p90} over {budget.scope}'s remaining "
                                  f"${budget.remaining_usd}", budget.scope))
    if deadline is not None and est.ready_p90 > deadline:
        late = (est.ready_p90 - deadline).total_seconds()
        reasons.append(Reason(Refusal.DEADLINE,
                              f"p90 ready {late:.0f} s after the deadline (queue {est.queue_wait_s:.0f} s)"))
    return reasons
