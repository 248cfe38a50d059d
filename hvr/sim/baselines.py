"""The policies a run compares, all behind hvr's own interface: `decide(request, context, now, deadline)` returns an
offer id or None (nothing to send it to: rejected). The simulator handles everything after the decision the same way
for all of them: queues, renders, failures, fallbacks, deadlines and bills.

- `hvr`: the real engine (`router.policy.engine.route`) with the context the services build, learned offer models
  included: it starts from the catalog and learns from its own attempts as finalize does (`learns`; the simulator
  keeps the models and feeds them through `router.policy.learning.observe`), and explores as production does
  (`allowance`: the deployment's default limits, a draw seeded by the run's seed and the request); its decision is
  the engine's whole `Chosen`, so the simulator can stop an exploring attempt at its abandon point. A campaign is
  planned as the campaign service plans it (`campaign_plan`: `router.policy.plan`, the knapsack by savings per GPU
  second, when its manifest arrives) and each item follows its planned offer while the engine finds it feasible.
- `always_veo`: every request to Veo (`veo/veo-3.1-fast`, the Veo the project's TCO report prices too).
- `static_rule`: the studio's rule today: AnimateDiff locally for text-to-video of at most 512 px a side, Veo for
  everything else.
- `local_only`: only the studio's GPU: the real engine over the local offers (so it still refuses what the queue
  can't finish in time); a request no local offer can render goes to the GPU anyway and scores a capability miss.
- `cheapest_feasible`: the cheapest offer the engine finds feasible when every queue is taken to be empty.

The static rules retry a failed attempt on the same offer; the engine-based ones get the services' fallback (the
context excludes offers already tried). Only hvr explores.

On a fleet of GPU boxes the engine places a local offer on a box (`Chosen.target`), so hvr and local_only, which
return the engine's `Chosen`, choose their box; for a bare offer id the simulator takes the first box that holds it,
up, with the shortest queue (`Simulation._placed`). cheapest_feasible takes every box's queue as empty too.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Protocol

from hvr.sim.counting import Fit, place
from router.models.campaign import DEFAULT_INTERACTIVE_SHARE
from router.models.common import Mode, ProviderKind
from router.models.decision import Chosen
from router.models.offer import Offer
from router.models.request import VideoRequest
from router.policy.context import Exploration, RoutingContext, TargetState
from router.policy.engine import route
from router.policy.exploration import Limits, allowance, drawn
from router.policy.plan import PlanParams, follow_plan, idle_local, item_input, plan
from router.settings import Settings

VEO_BASELINE = "veo/veo-3.1-fast"
STATIC_LOCAL = "local/animatediff-sd15"
STATIC_MAX_SIDE = 512


class Policy(Protocol):
    name: str
    learns: bool  # the simulator keeps learned offer models for it and puts them in its context

    def exploration(self, key: int, jobs_today: int, usd_today: Decimal) -> Exploration | None:
        """What the decision for request `key` may spend on exploring, given today's exploring attempts and their
        p90 cost; None: it doesn't explore."""
        ...

    def campaign_plan(self, items: Sequence[tuple[int, VideoRequest, datetime | None]], context: RoutingContext,
                      now: datetime, gpu: TargetState, local_up: bool) -> dict[int, str]:
        """The offer for each item (by key) of a campaign whose manifest arrives now, planned as a whole; empty for
        a policy that routes campaign items one by one."""
        ...

    def decide(self, request: VideoRequest, context: RoutingContext, now: datetime,
               deadline: datetime | None, planned: str | None = None) -> Chosen | str | None:
        """The engine's choice (hvr's carries an exploring attempt's abandon point) or an offer id; None: nothing
        to send it to. `planned`: the offer its campaign's plan gave the request, if any."""
        ...


def production_limits() -> Limits:
    """The exploration limits a deployment runs with when nothing is set: router/settings.py's defaults, as
    `router.services.context.exploration_limits` builds them (z and min_runs are the Limits' own)."""
    fields = Settings.model_fields
    return Limits(share=fields["exploration_share"].default, jobs_per_day=fields["exploration_jobs_per_day"].default,
                  usd_per_day=fields["exploration_usd_per_day"].default,
                  margin_s=fields["exploration_margin_s"].default)


class _Blind:
    """A baseline: decides from the catalog alone, item by item, and never explores."""

    learns = False

    def exploration(self, key: int, jobs_today: int, usd_today: Decimal) -> Exploration | None:
        return None

    def campaign_plan(self, items: Sequence[tuple[int, VideoRequest, datetime | None]], context: RoutingContext,
                      now: datetime, gpu: TargetState, local_up: bool) -> dict[int, str]:
        return {}


def _require(offers: Sequence[Offer], offer_id: str) -> str:
    if not any(o.id == offer_id for o in offers):
        raise ValueError(f"the catalog has no {offer_id}, which this baseline sends requests to")
    return offer_id


class Hvr:
    name = "hvr"
    learns = True

    def __init__(self, offers: Sequence[Offer], seed: int = 0, limits: Limits | None = None) -> None:
        self.offers = tuple(offers)
        self.seed = seed
        self.limits = production_limits() if limits is None else limits

    def exploration(self, key: int, jobs_today: int, usd_today: Decimal) -> Exploration | None:
        # As `router.services.context.exploration`: one draw per request (a retried decision draws the same), from
        # the run's seed so a run repeats; a decision not drawn reads no counts.
        draw = drawn(self.limits, f"{self.seed}:{key}")
        return None if draw is None else allowance(self.limits, draw, jobs_today, usd_today)

    def campaign_plan(self, items: Sequence[tuple[int, VideoRequest, datetime | None]], context: RoutingContext,
                      now: datetime, gpu: TargetState, local_up: bool) -> dict[int, str]:
        # As the campaign service's intake and plan steps: each item's options with the GPU taken as idle, then the
        # knapsack by savings per GPU-second from when the GPU's queue drains (no exploring, no campaign budget).
        context = idle_local(context)
        inputs = [item_input(request, self.offers, context, now, deadline, str(key), line, str(key))
                  for line, (key, request, deadline) in enumerate(items, start=1)]
        params = PlanParams(now=now, local_start=now + timedelta(seconds=gpu.queue_wait_s),
                            interactive_share=DEFAULT_INTERACTIVE_SHARE, local_available=local_up, queue=gpu.queue,
                            slots=gpu.slots)
        return {int(entry.item_id): entry.offer for entry in plan(inputs, params).entries if entry.offer is not None}

    def decide(self, request: VideoRequest, context: RoutingContext, now: datetime,
               deadline: datetime | None, planned: str | None = None) -> Chosen | None:
        # As the worker: a campaign item keeps its planned offer while the engine still finds it feasible.
        return follow_plan(route(request, self.offers, context, now, deadline), planned, context).chosen


class AlwaysVeo(_Blind):
    name = "always_veo"

    def __init__(self, offers: Sequence[Offer], veo: str = VEO_BASELINE) -> None:
        self.veo = _require(offers, veo)

    def decide(self, request: VideoRequest, context: RoutingContext, now: datetime,
               deadline: datetime | None, planned: str | None = None) -> str | None:
        return self.veo


class StaticRule(_Blind):
    name = "static_rule"

    def __init__(self, offers: Sequence[Offer], local: str = STATIC_LOCAL, veo: str = VEO_BASELINE) -> None:
        self.local, self.veo = _require(offers, local), _require(offers, veo)

    def decide(self, request: VideoRequest, context: RoutingContext, now: datetime,
               deadline: datetime | None, planned: str | None = None) -> str | None:
        small = max(request.size()) <= STATIC_MAX_SIDE
        return self.local if request.mode is Mode.T2V and small else self.veo


class LocalOnly(_Blind):
    name = "local_only"

    def __init__(self, offers: Sequence[Offer]) -> None:
        self.offers = tuple(o for o in offers if o.provider is ProviderKind.LOCAL)
        if not self.offers:
            raise ValueError("the catalog has no local offer")

    def decide(self, request: VideoRequest, context: RoutingContext, now: datetime,
               deadline: datetime | None, planned: str | None = None) -> Chosen | str | None:
        if not any(place(o, request).fit is Fit.OK for o in self.offers):
            # Nothing local can render it; the studio's GPU is all there is, so it goes there and misses.
            by_mode = [o for o in self.offers if request.mode in o.mode_set]
            return (by_mode or list(self.offers))[0].id
        # The engine's whole choice: on a fleet, it names the box too.
        return route(request, self.offers, context, now, deadline).chosen


class CheapestFeasible(_Blind):
    name = "cheapest_feasible"

    def __init__(self, offers: Sequence[Offer]) -> None:
        self.offers = tuple(offers)

    def decide(self, request: VideoRequest, context: RoutingContext, now: datetime,
               deadline: datetime | None, planned: str | None = None) -> str | None:
        blind = dataclasses.replace(
            context,
            targets={kind: dataclasses.replace(t, queue_wait_s=0.0, queue=()) for kind, t in context.targets.items()},
            offer_targets={oid: dataclasses.replace(t, queue_wait_s=0.0, queue=())
                           for oid, t in context.offer_targets.items()},
            boxes={kind: tuple(dataclasses.replace(t, queue_wait_s=0.0, queue=()) for t in fleet)
                   for kind, fleet in context.boxes.items()},
        )
        feasible = [c for c in route(request, self.offers, blind, now, deadline).candidates if c.feasible]
        best = min(feasible, key=lambda c: (c.estimated_cost_usd, c.offer), default=None)
        return best.offer if best else None


POLICIES: dict[str, Callable[[Sequence[Offer]], Policy]] = {
    cls.name: cls for cls in (Hvr, AlwaysVeo, LocalOnly, StaticRule, CheapestFeasible)
}


def make(name: str, offers: Sequence[Offer], seed: int = 0) -> Policy:
    """The policy `name` over `offers`; `seed` seeds hvr's exploration."""
    if name == Hvr.name:
        return Hvr(offers, seed)
    try:
        return POLICIES[name](offers)
    except KeyError:
        raise ValueError(f"unknown policy {name!r}; known: {', '.join(POLICIES)}") from None
