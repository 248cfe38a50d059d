"""What really happens when an offer renders a request, as far as the simulator is concerned.

- **Render time**: log-normal with the catalog's p50 as its median and its p90 as its 90th percentile (the latency
  model's overhead + seconds per frame x pixel scale), times the offer's `time_bias`. It is drawn once per
  (request, offer): a retry on the same offer takes as long again, which is what lets the offline bound price every
  offer once (see `optimal`).
- **Failures**: a probability per attempt, failing part-way through the render (drawn per attempt).
- **Cold starts**: cloud offers with a cold start (the catalog's `cold_start_s`, or the truth's own figure where it
  sets one) run on serverless workers that stay warm `idle_timeout_s` after a job; a job that finds no warm worker
  waits the cold start, and a GPU-second offer bills it.
- **Queues**: the local GPU has `local_slots` slots; each cloud offer has a number of concurrent workers per
  provider kind, beyond which its jobs queue in order.
- **A fleet** (`local_boxes`): several GPU boxes instead of the one, each with its own slots, memory and speed: a
  local render on a box takes the drawn render time x the box's `speed` (its card against the studio's, whose
  figures the catalog and `time_bias` describe), and a box whose VRAM can't hold an offer at a delivery can't run
  it (the engine's own rule, `constraints.vram_reason`). Without `local_boxes` the GPU is one box, `agent-1`, with
  `local_slots` slots, speed 1 and no memory limit, as before fleets.
- **Ratings** (`rating_mean`): what raters think of an offer's videos, as a mean score on the catalog's 1-5 star
  scale; `hvr.sim.ratings` draws each rater's score around it.
- **Outages**: a provider kind or one offer down for a while: nothing new starts there, and what is queued or
  running there when it goes down fails. `local@BOX` (or a local offer id `@BOX`) takes down one box of a fleet.

Time bias, failure rates and cold starts are keyed by provider kind (`local`) or offer id (`local/wan21-14b`); an
offer's own id wins over its kind. Every draw comes from its own `random.Random` keyed by (seed, request, offer[,
attempt]), so results don't depend on the order in which the simulator asks, and every policy meets the same world.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TypeVar

from router.models.common import ProviderKind
from router.models.decision import DeliveredSpec
from router.models.offer import Offer
from router.models.rating import MAX_SCORE, MIN_SCORE
from router.policy.constraints import vram_reason
from router.policy.context import TargetState

Z90 = 1.2815515655446004  # the standard normal's 90th percentile
DAY_S = 86400.0

# Assumptions, not measurements: no provider publishes failure rates; these are a few percent each, GPU boxes and
# serverless endpoints a little worse than managed APIs.
DEFAULT_FAILURE_RATE: Mapping[str, float] = MappingProxyType({
    ProviderKind.LOCAL.value: 0.02, ProviderKind.RUNPOD.value: 0.03, ProviderKind.REPLICATE.value: 0.02,
    ProviderKind.VEO.value: 0.02,
})
# Concurrent jobs per cloud offer before its jobs queue: RunPod endpoints' default max workers, Replicate's and
# Veo's request limits, expressed as parallel renders. Assumptions again.
DEFAULT_CONCURRENCY: Mapping[ProviderKind, int] = MappingProxyType({
    ProviderKind.RUNPOD: 5, ProviderKind.REPLICATE: 20, ProviderKind.VEO: 10,
})

V = TypeVar("V")

# A fleet's cards: the memory their drivers report, and their render time against the studio's RTX 5090, whose
# figures the catalog holds. The same ESTIMATES as the embedded stack's fleet (hvr.local.embedded.CARDS; a test
# holds the two equal): from the cards' relative FP16 throughput, not measured. Kept here so that the simulator
# doesn't import the embedded stack.
CARDS: Mapping[str, tuple[int, float]] = MappingProxyType({
    "5090": (32768, 1.0), "4090": (24576, 1.3), "3090": (24576, 2.0), "3080": (10240, 2.5),
})
BOX_RAM_MB = 65536  # every box of the embedded stack's fleet (hvr.local.embedded.BOX_RAM_MB): what offloading needs
DEFAULT_BOX = "agent-1"  # the one GPU's name when there is no fleet: the agent's, as the services see it


def by_offer(table: Mapping[str, V], offer: Offer, default: V) -> V:
    """The offer's own entry, else its provider kind's, else `default`."""
    if offer.id in table:
        return table[offer.id]
    return table.get(offer.provider.value, default)


def rater_score(seed: int, job_key: int, offer_id: str, mean: float) -> int:
    """One rater's score of one video: 1 + Binomial(4, (mean - 1) / 4), whose mean is `mean` (hvr.sim.ratings)."""
    rng = random.Random(f"rating:{seed}:{job_key}:{offer_id}")
    p = (mean - MIN_SCORE) / RATING_STEPS
    return MIN_SCORE + sum(rng.random() < p for _ in range(RATING_STEPS))


def rated(seed: int, job_key: int, share: float) -> bool:
    """Whether someone rates the job's video: the same draw for every run of a seed."""
    return random.Random(f"rated:{seed}:{job_key}").random() < share


RATING_STEPS = MAX_SCORE - MIN_SCORE


@dataclass(frozen=True)
class LocalBox:
    """One GPU box: its slots, its card's memory (None: no limit) and the system RAM offloading may use, and how
    much longer it renders than the studio's card (`speed`, x the drawn render time)."""

    name: str
    slots: int = 1
    speed: float = 1.0
    vram_mb: int | None = None
    ram_mb: int | None = None

    @property
    def target(self) -> TargetState:
        """The box as the engine reads its memory (queue and health are the simulator's)."""
        return TargetState(name=self.name, slots=self.slots, vram_mb=self.vram_mb, ram_mb=self.ram_mb)

    def holds(self, offer: Offer, delivered: DeliveredSpec) -> bool:
        """Whether the box's card (offloading into its RAM where the offer allows) can run this render: the
        engine's own rule, so the simulator, the optimum and the engine never disagree about it."""
        return offer.provider is not ProviderKind.LOCAL or vram_reason(offer, delivered, self.target) is None


@dataclass(frozen=True)
class Outage:
    """`provider` (a kind or an offer id, optionally `@BOX` for one box of a local fleet) is down for `hours` from
    `from_day` days after the run's start (day 0 begins at the first arrival's UTC midnight)."""

    provider: str
    from_day: float
    hours: float

    @property
    def start_s(self) -> float:
        return self.from_day * DAY_S

    @property
    def end_s(self) -> float:
        return self.start_s + self.hours * 3600.0

    def covers(self, offer: Offer, box: str | None = None) -> bool:
        """Whether it takes `offer` down (on `box`, for a local offer on one box of a fleet: an outage naming a
        box covers that box only)."""
        what, _, only = self.provider.partition("@")
        if only and only != box:
            return False
        return what in (offer.id, offer.provider.value)


@dataclass(frozen=True)
class TruthConfig:
    seed: int = 0
    # By kind or offer id: the chance an attempt fails (absent: never).
    failure_rate: Mapping[str, float] = field(default_factory=lambda: DEFAULT_FAILURE_RATE)
    concurrency: Mapping[ProviderKind, int] = field(default_factory=lambda: DEFAULT_CONCURRENCY)
    local_slots: int = 1  # the studio's one RTX 5090
    local_boxes: tuple[LocalBox, ...] = ()  # a fleet instead (then `local_slots` is unused)
    idle_timeout_s: float = 300.0  # a serverless worker stays warm this long after its last job
    # Truth vs catalog, by kind or offer id: multiplies an offer's p50 and p90 (1.0: the catalog is right on average).
    time_bias: Mapping[str, float] = field(default_factory=dict)
    # By kind or offer id: a cloud offer's real cold start, where it differs from the catalog's.
    cold_start_s: Mapping[str, float] = field(default_factory=dict)
    outages: tuple[Outage, ...] = ()
    # By kind or offer id: the mean score (1-5) raters give its videos (hvr.sim.ratings); absent: its catalog stars.
    rating_mean: Mapping[str, float] = field(default_factory=dict)

    @property
    def boxes(self) -> tuple[LocalBox, ...]:
        """The GPU boxes: the fleet, or the one GPU of before fleets."""
        return self.local_boxes or (LocalBox(DEFAULT_BOX, slots=self.local_slots),)

    @property
    def fleet(self) -> bool:
        return bool(self.local_boxes)

    @property
    def total_slots(self) -> int:
        return sum(box.slots for box in self.boxes)


class Truth:
    def __init__(self, config: TruthConfig | None = None) -> None:
        self.config = config or TruthConfig()
        self._render: dict[tuple[int, str], float] = {}
        self._down: dict[str, tuple[tuple[float, float], ...]] = {}

    def render_s(self, key: int, offer: Offer, delivered: DeliveredSpec) -> float:
        """Seconds `offer` computes request `key` for (milliseconds, so costs priced from it are exact)."""
        cached = self._render.get((key, offer.id))
        if cached is not None:
            return cached
        bias = by_offer(self.config.time_bias, offer, 1.0)
        latency = offer.latency
        p50 = latency.delivery_seconds(delivered, p90=False) * bias
        p90 = latency.delivery_seconds(delivered, p90=True) * bias
        sigma = math.log(p90 / p50) / Z90 if p90 > p50 > 0 else 0.0
        draw = random.Random(f"render:{self.config.seed}:{key}:{offer.id}").lognormvariate(math.log(p50), sigma)
        value = round(max(draw, 0.001), 3)
        self._render[(key, offer.id)] = value
        return value

    def render_on(self, key: int, offer: Offer, delivered: DeliveredSpec, box: LocalBox) -> float:
        """Seconds box `box` computes request `key` on local `offer` for: the drawn render, at the box's speed."""
        drawn = self.render_s(key, offer, delivered)
        return drawn if box.speed == 1.0 else round(max(drawn * box.speed, 0.001), 3)

    def failure_at(self, key: int, offer: Offer, attempt: int) -> float | None:
        """The share of the render after which attempt `attempt` fails, or None when it succeeds."""
        rng = random.Random(f"fail:{self.config.seed}:{key}:{offer.id}:{attempt}")
        if rng.random() >= by_offer(self.config.failure_rate, offer, 0.0):
            return None
        return rng.uniform(0.05, 0.95)

    def cold_start_s(self, offer: Offer) -> float:
        if offer.provider is ProviderKind.LOCAL:
            return 0.0
        return by_offer(self.config.cold_start_s, offer, offer.latency.cold_start_s)

    def workers(self, offer: Offer) -> int:
        if offer.provider is ProviderKind.LOCAL:
            return self.config.total_slots
        return self.config.concurrency.get(offer.provider, 1)

    def outages(self, offer: Offer, box: str | None = None) -> tuple[tuple[float, float], ...]:
        """The offer's down windows (on `box`, with that box's own), [start, end) in seconds from the run's start,
        in order."""
        name = offer.id if box is None else f"{offer.id}@{box}"
        found = self._down.get(name)
        if found is None:
            found = tuple(sorted((o.start_s, o.end_s) for o in self.config.outages if o.covers(offer, box)))
            self._down[name] = found
        return found

    def down(self, offer: Offer, t: float, box: str | None = None) -> bool:
        return any(start <= t < end for start, end in self.outages(offer, box))
