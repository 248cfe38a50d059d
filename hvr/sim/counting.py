"""The counting rules every policy is scored by, and what an attempt costs.

- **Fit** of an offer for a request, by the engine's own rules (`router.policy.constraints`): `refused` when the
  provider can't even take it (mode not offered, no size for the requested tier and aspect, no stated price: the
  adapter refuses before anything renders, nothing is billed); `mismatch` when it renders something outside the
  request's duration/fps tolerance (billed, not what was asked); `below_floor` when its quality score is under the
  request's floor (billed, a quality violation); `ok` otherwise. A policy sending a request where the fit is
  `refused` or `mismatch` scores a capability miss, a missed deadline and a quality violation (issue 9).
- **Infeasible**: no offer at all can meet the request — capability, floor, cap and deadline together — judged by
  the real engine in an idle world (every provider configured and healthy, no queues, no budgets). Such requests
  leave every policy's deadline-rate denominator and are counted on their own.
- **Cost** of an attempt as the worker's ledger row computes it (`record_ledger`): GPU time is billed whatever the
  outcome, per-second and per-video prices only for a delivered video; four decimal places, Decimal throughout.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from enum import StrEnum

from router.models.common import ProviderKind, money
from router.models.decision import DeliveredSpec
from router.models.offer import Offer
from router.models.request import VideoRequest
from router.policy import constraints
from router.policy.context import RoutingContext, TargetState
from router.policy.engine import route

_PRICE_PLACES = Decimal("1e-10")  # the ledger's unit-price precision


class Fit(StrEnum):
    OK = "ok"
    BELOW_FLOOR = "below_floor"
    MISMATCH = "mismatch"
    REFUSED = "refused"

    @property
    def capability_miss(self) -> bool:
        return self in (Fit.MISMATCH, Fit.REFUSED)


@dataclass(frozen=True)
class Placement:
    """What an offer does with a request: its fit and, unless refused, what it renders."""

    fit: Fit
    delivered: DeliveredSpec | None


def place(offer: Offer, request: VideoRequest) -> Placement:
    ask = constraints.Ask.of(request)
    size = constraints.delivered_size(offer, ask)
    if request.mode not in offer.mode_set or size is None:
        return Placement(Fit.REFUSED, None)
    delivered = constraints.deliver(offer, request, size)
    if offer.price_for(delivered.width, delivered.height, delivered.duration_s) is None:
        return Placement(Fit.REFUSED, None)
    if constraints.spec_reasons(offer, ask, delivered):
        return Placement(Fit.MISMATCH, delivered)
    if offer.quality < ask.floor:
        return Placement(Fit.BELOW_FLOOR, delivered)
    return Placement(Fit.OK, delivered)


def idle_context(boxes: Sequence[TargetState] = ()) -> RoutingContext:
    """Every provider configured, healthy, warm and idle; no budgets: the world in which feasibility is judged.
    `boxes`: a fleet's GPU boxes, idle, for their memory (none: the one GPU, which holds every model)."""
    return RoutingContext(targets={kind: TargetState(name=kind.value) for kind in ProviderKind},
                          configured=frozenset(ProviderKind),
                          boxes={ProviderKind.LOCAL: tuple(boxes)} if boxes else {})


def infeasible(request: VideoRequest, offers: Sequence[Offer], arrival: datetime, deadline: datetime | None,
               boxes: Sequence[TargetState] = ()) -> bool:
    return route(request, offers, idle_context(boxes), arrival, deadline).chosen is None


def attempt_cost(offer: Offer, delivered: DeliveredSpec, gpu_seconds: float, succeeded: bool) -> Decimal:
    """USD the provider bills for one attempt: `gpu_seconds` for time-billed offers (what ran, cold start
    included for serverless), the delivered seconds or the video's price only when it succeeded."""
    priced = offer.price_for(delivered.width, delivered.height, delivered.duration_s)
    if priced is None:
        return money(0)
    unit, price = priced[0], priced[1].quantize(_PRICE_PLACES)
    if unit == "gpu_second":
        quantity = Decimal(f"{gpu_seconds:.3f}")
    elif unit == "output_second":
        quantity = Decimal(f"{delivered.duration_s:.3f}") if succeeded else Decimal(0)
    else:
        quantity = Decimal(1 if succeeded else 0)
    return money(price * quantity)


def cold_start_cost(offer: Offer, delivered: DeliveredSpec | None, cold_s: float) -> Decimal:
    """The part of an attempt's bill that paid for its cold start: a GPU-time offer bills it, others don't."""
    if cold_s <= 0 or delivered is None:
        return money(0)
    priced = offer.price_for(delivered.width, delivered.height, delivered.duration_s)
    if priced is None or priced[0] != "gpu_second":
        return money(0)
    return attempt_cost(offer, delivered, cold_s, succeeded=True)  # its seconds, priced as the whole bill is


def estimated_p90_cost(offer: Offer, delivered: DeliveredSpec) -> Decimal | None:
    """The engine's p90 cost for a delivery on a warm target (what caps and budget reservations are checked on)."""
    est = constraints.estimate(offer, delivered, None, None, datetime(2000, 1, 1, tzinfo=UTC))
    return est.cost_p90 if est is not None else None
