"""The policies a run compares, all behind hvr's own interface: `decide(request, context, now, deadline)` returns an
offer id or None (nothing to send it to: rejected). The simulator handles everything after the decision the same way
for all of them: queues, renders, failures, fallbacks, deadlines and bills.

- `hvr`: the real engine (`router.policy.engine.route`) with the context the services build, learned offer models
  included: it starts from the catalog and learns from its own attempts as finalize does (`learns`; the simulator
  keeps the models and feeds them through `router.policy.learning.observe`).
- `always_veo`: every request to Veo (`veo/veo-3.1-fast`, the Veo the project's TCO report prices too).
- `static_rule`: the studio's rule today: AnimateDiff locally for text-to-video of at most 512 px a side, Veo for
  everything else.
- `local_only`: only the studio's GPU: the real engine over the local offers (so it still refuses what the queue
  can't finish in time); a request no local offer can render goes to the GPU anyway and scores a capability miss.
- `cheapest_feasible`: the cheapest offer the engine finds feasible when every queue is taken to be empty.

The static rules retry a failed attempt on the same offer; the engine-based ones get the services' fallback (the
context excludes offers already tried).
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Protocol

from router.models.common import Mode, ProviderKind
from router.models.offer import Offer
from router.models.request import VideoRequest
from router.policy.context import RoutingContext
from router.policy.engine import route
from router.sim.counting import Fit, place

VEO_BASELINE = "veo/veo-3.1-fast"
STATIC_LOCAL = "local/animatediff-sd15"
STATIC_MAX_SIDE = 512


class Policy(Protocol):
    name: str
    learns: bool  # the simulator keeps learned offer models for it and puts them in its context

    def decide(self, request: VideoRequest, context: RoutingContext, now: datetime,
               deadline: datetime | None) -> str | None: ...


def _require(offers: Sequence[Offer], offer_id: str) -> str:
    if not any(o.id == offer_id for o in offers):
        raise ValueError(f"the catalog has no {offer_id}, which this baseline sends requests to")
    return offer_id


class Hvr:
    name = "hvr"
    learns = True

    def __init__(self, offers: Sequence[Offer], seed: int = 0) -> None:
        self.offers = tuple(offers)
        # The engine's exploration draws (issue 14, item 2) come from here once `route` takes a generator: seeded
        # from the run's seed, so a run repeats.
        self.rng = random.Random(f"explore:{seed}")

    def decide(self, request: VideoRequest, context: RoutingContext, now: datetime,
               deadline: datetime | None) -> str | None:
        chosen = route(request, self.offers, context, now, deadline).chosen
        return chosen.offer if chosen else None


class AlwaysVeo:
    name = "always_veo"
    learns = False

    def __init__(self, offers: Sequence[Offer], veo: str = VEO_BASELINE) -> None:
        self.veo = _require(offers, veo)

    def decide(self, request: VideoRequest, context: RoutingContext, now: datetime,
               deadline: datetime | None) -> str | None:
        return self.veo


class StaticRule:
    name = "static_rule"
    learns = False

    def __init__(self, offers: Sequence[Offer], local: str = STATIC_LOCAL, veo: str = VEO_BASELINE) -> None:
        self.local, self.veo = _require(offers, local), _require(offers, veo)

    def decide(self, request: VideoRequest, context: RoutingContext, now: datetime,
               deadline: datetime | None) -> str | None:
        small = max(request.size()) <= STATIC_MAX_SIDE
        return self.local if request.mode is Mode.T2V and small else self.veo


class LocalOnly:
    name = "local_only"
    learns = False

    def __init__(self, offers: Sequence[Offer]) -> None:
        self.offers = tuple(o for o in offers if o.provider is ProviderKind.LOCAL)
        if not self.offers:
            raise ValueError("the catalog has no local offer")

    def decide(self, request: VideoRequest, context: RoutingContext, now: datetime,
               deadline: datetime | None) -> str | None:
        if not any(place(o, request).fit is Fit.OK for o in self.offers):
            # Nothing local can render it; the studio's GPU is all there is, so it goes there and misses.
            by_mode = [o for o in self.offers if request.mode in o.mode_set]
            return (by_mode or list(self.offers))[0].id
        chosen = route(request, self.offers, context, now, deadline).chosen
        return chosen.offer if chosen else None


class CheapestFeasible:
    name = "cheapest_feasible"
    learns = False

    def __init__(self, offers: Sequence[Offer]) -> None:
        self.offers = tuple(offers)

    def decide(self, request: VideoRequest, context: RoutingContext, now: datetime,
               deadline: datetime | None) -> str | None:
        blind = dataclasses.replace(
            context,
            targets={kind: dataclasses.replace(t, queue_wait_s=0.0, queue=()) for kind, t in context.targets.items()},
            offer_targets={oid: dataclasses.replace(t, queue_wait_s=0.0, queue=())
                           for oid, t in context.offer_targets.items()},
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
