"""The discrete-event simulator: a virtual clock, the policy under test, and the world of `truth`.

It stands in for the services and the providers, doing what they do around each decision:

- **Route** (`router.services.route.route_next`): the policy decides with the context the services would build —
  the local target carries the agent's jobs, each priced at the policy's learned p50 for its offer and delivery less the
  share done, with its deadline (`policy.localqueue`); each RunPod offer sees its own endpoint as the adapter reads
  /health — queued jobs x 70 s over its workers, and warm only while an idle worker is left (else its cold start
  counts in time and cost); Replicate and Veo report no queue and are always warm; offers are excluded after
  failures by the services' own rule (`policy.fallback`: a crashed render may be retried once on the same offer).
  No decision: the job is rejected (or failed, after an attempt). At most `max_attempts` attempts per job.
- **Campaigns** (the campaign service's plan step): when a campaign's first item arrives, the policy plans the whole
  manifest (`Policy.campaign_plan`; hvr's is `router.policy.plan` from when the GPU's queue drains) and each item's
  first decision is given its planned offer. Not modelled: the release step holding local items beyond the GPU's
  horizon (the items reach the router seconds apart, as the manifest's fan-out does).
- **Money** (`services.money`), when a budget is configured: one global monthly scope; the attempt's p90 estimate
  is reserved before it starts and settled with its actual cost when it ends; thresholds move the spend mode
  (80 % economy, 100 % local only, as the default rules).
- **Providers**: the local GPU takes its queue earliest deadline first over its slots (the agent's scheduler,
  `agent/store.py`), never interrupting a render; each cloud offer runs a few jobs at once and queues the rest;
  serverless offers cold-start when no worker is warm. A failed attempt bills what it ran (GPU-time offers) and
  falls back through the policy at once.
- **A fleet** (`truth.local_boxes`): each box is a local target of its own, as the services build them
  (`RoutingContext.boxes`: its queue priced as above in what was learned about each offer on that box, its slots,
  VRAM and RAM; every model installed), and `targets[local]` sums them up as the fleet provider does (up while one
  box is, the shortest wait among those up). A local attempt goes to the box the engine placed it on
  (`Chosen.target`); a policy that doesn't place (or a campaign plan followed, whose `Chosen` names no box) gets the
  first box whose card holds the offer, up, with the shortest queue. Each box runs its own queue and renders at its
  own speed (`truth`). An attempt placed on a box whose VRAM can't hold it (only a policy that ignores memory gets
  there) runs out of memory at once, unbilled, counted as a VRAM violation, and falls back. Without a fleet the GPU
  is one target, `agent-1`, and the context has no boxes, exactly as before fleets.
- **Deadlines** (the worker and sweeper's expiry): when a job's deadline passes without a result it expires; its
  attempt is dequeued or cancelled, billing the GPU time it ran.
- **Learning** (finalize's `_learn`), for a policy that `learns` (hvr): every attempt that ends, failed or rendered,
  goes through `router.policy.learning.observe` as finalize would see it — the render seconds the provider reports
  (the agent's GPU-seconds, RunPod's `executionTime`, Replicate's `predict_time`; Veo reports none) against the
  catalog's p50 for the same delivery, RunPod's start delay, and every failure for the failure rate — and the next
  decision's context carries the learned snapshot. On a fleet, a local attempt teaches its offer and its offer on
  its box (`offer@box`, `services.route.observe`), and the snapshot is read with every local offer on every box
  (`services.context.learned_snapshot`). The other policies decide from the catalog alone.
- **Exploration** (the worker's), for a policy that explores (hvr): a request not yet explored gets the allowance
  production would give it (its own seeded draw, today's exploring attempts and their p90 cost, counted when an
  exploring attempt is placed). An exploring attempt still unfinished at its abandon point (`Chosen.explore_until`)
  is stopped: its slot is freed, the GPU time it ran billed, a lower bound on its render learned (`censored`), and
  it fails with `exploration_abandoned: …`, which rules the offer out for the job, before the job routes again.
- **Outages** (`truth`): while a provider or offer is down its target is not up in the context (the health probe
  sees it), a submit there fails at once, and what it was running or queueing fails when it goes down.

Everything a run produces is in `RunResult`: one `JobRecord` per request, each ending exactly once.
"""

from __future__ import annotations

import dataclasses
import heapq
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from enum import IntEnum

from hvr.sim import counting
from hvr.sim.baselines import Policy
from hvr.sim.counting import Fit, attempt_cost, estimated_p90_cost, place
from hvr.sim.truth import DEFAULT_BOX, LocalBox, Outage, Truth, by_offer, rated, rater_score
from hvr.sim.workload import Arrival
from router.models.budget import SpendMode
from router.models.common import ProviderKind
from router.models.decision import Chosen, DeliveredSpec
from router.models.offer import Offer
from router.models.outcome import AttemptCode, AttemptReason
from router.models.rating import ScoreTally
from router.policy import learning, localqueue
from router.policy.context import BudgetState, Exploration, RoutingContext, TargetState
from router.policy.fallback import excluded_offers
from router.policy.learning import Learned, Observation, OfferStats
from router.policy.quality import DEFAULT_MIN_RATINGS, routing_quality

RUNPOD_TYPICAL_JOB_S = 70.0  # the RunPod adapter's figure for its queue-wait estimate (providers/runpod.py)
DEFAULT_SPEND_RULES: tuple[tuple[Decimal, SpendMode], ...] = (
    (Decimal("0.8"), SpendMode.ECONOMY), (Decimal("1.0"), SpendMode.LOCAL_ONLY),
)
ZERO = Decimal("0.0000")
# Providers whose status reports how long the render ran (the agent's gpu_seconds, RunPod's executionTime,
# Replicate's predict_time): what finalize learns render time from. Veo reports no time.
REPORTS_RENDER_S = frozenset({ProviderKind.LOCAL, ProviderKind.RUNPOD, ProviderKind.REPLICATE})


class Event(IntEnum):
    """Same-instant order: a render ending frees its slot, then a provider going down fails what it holds, then an
    exploring attempt is abandoned, before a deadline is judged or a newcomer routed."""

    RENDER_END = 0
    OUTAGE = 1
    ABANDON = 2  # after RENDER_END: a render done at the abandon point is kept, as the worker's poll sees it done
    DELIVER = 3
    DEADLINE = 4
    ARRIVAL = 5


@dataclass
class AttemptRecord:
    n: int
    offer: Offer
    fit: Fit
    delivered: DeliveredSpec | None
    routed_at: float
    # queued | running | transferring | succeeded | failed | refused | cancelled (dequeued, interrupted, or its
    # output arrived after the deadline)
    status: str = "queued"
    started_at: float | None = None
    ended_at: float | None = None
    render_s: float = 0.0
    cold_s: float = 0.0
    fails_at: float | None = None  # share of the render after which it fails
    gpu_seconds: float = 0.0
    cost: Decimal = ZERO
    reserved: Decimal = ZERO
    explore_until: float | None = None  # an exploring attempt's abandon point
    reason: AttemptReason | None = None  # why it failed, as the services record it, for the fallback rule
    box: str | None = None  # the GPU box a local attempt was placed on
    vram_short: bool = False  # placed on a box whose card can't hold the offer at this delivery


@dataclass
class JobRecord:
    key: int
    arrival: Arrival
    arrival_t: float
    deadline_t: float | None
    infeasible: bool
    attempts: list[AttemptRecord] = field(default_factory=list)
    status: str = "pending"  # pending | active | succeeded | failed | rejected | expired
    ended_at: float | None = None
    reason: str = ""

    @property
    def terminal(self) -> bool:
        return self.status in ("succeeded", "failed", "rejected", "expired")

    @property
    def cost(self) -> Decimal:
        return sum((a.cost for a in self.attempts), ZERO)

    @property
    def final(self) -> AttemptRecord | None:
        return self.attempts[-1] if self.attempts else None

    @property
    def delivered(self) -> bool:
        return self.status == "succeeded"

    @property
    def capability_miss(self) -> bool:
        """Sent, at least once, somewhere that can't do it."""
        return any(a.fit.capability_miss for a in self.attempts)

    @property
    def quality_violation(self) -> bool:
        """Sent somewhere under its quality floor, or somewhere that can't do it at all."""
        return self.capability_miss or any(a.fit is Fit.BELOW_FLOOR for a in self.attempts)

    @property
    def on_time(self) -> bool:
        """Delivered, by its deadline, and what was asked for (a miss on capability or floor is no hit)."""
        if not self.delivered or self.capability_miss or self.quality_violation:
            return False
        return self.deadline_t is None or (self.ended_at is not None and self.ended_at <= self.deadline_t)

    @property
    def turnaround_s(self) -> float | None:
        return self.ended_at - self.arrival_t if self.delivered and self.ended_at is not None else None


@dataclass
class RunResult:
    policy: str
    jobs: list[JobRecord]
    start: datetime
    horizon_s: float
    local_busy_s: float
    local_slots: int  # every box's together
    learned: dict[str, Learned] = field(default_factory=dict)  # what a learning policy knew at the end
    box_busy_s: dict[str, float] = field(default_factory=dict)  # seconds each GPU box rendered
    box_slots: dict[str, int] = field(default_factory=dict)

    @property
    def total_cost(self) -> Decimal:
        return sum((job.cost for job in self.jobs), ZERO)

    def at(self, t: float) -> datetime:
        return self.start + timedelta(seconds=t)


@dataclass
class SimConfig:
    max_attempts: int = 3  # the services' HVR_MAX_ATTEMPTS default
    budget_usd: Decimal | None = None  # one global monthly budget; None: unlimited
    spend_rules: tuple[tuple[Decimal, SpendMode], ...] = DEFAULT_SPEND_RULES
    # Synthetic raters score this share of delivered videos as they deliver (truth.rating_mean), and a learning
    # policy routes by each offer's learned quality once it has `quality_min_ratings` of them, as the services'
    # routing context does. None: nobody rates during the run (hvr.sim.ratings rates it afterwards).
    rating_share: float | None = None
    quality_min_ratings: int = DEFAULT_MIN_RATINGS


def window(arrivals: Sequence[Arrival]) -> tuple[datetime, float]:
    """The run's span, the same for every policy: from the first arrival's UTC midnight to the last deadline (or
    arrival, where later)."""
    if not arrivals:
        raise ValueError("an empty workload has nothing to simulate")
    start = arrivals[0].at.replace(hour=0, minute=0, second=0, microsecond=0)
    ends = [a.deadline() or a.at for a in arrivals] + [a.at for a in arrivals]
    return start, (max(ends) - start).total_seconds()


def infeasible_flags(arrivals: Sequence[Arrival], offers: Sequence[Offer], truth: Truth | None = None) -> list[bool]:
    """Which requests no offer can meet in an idle world, with the offers down at their arrival (`truth`'s
    outages) taken out, on the fleet's boxes where there is one (a request no card can hold is infeasible)."""
    if truth is None or not (truth.config.outages or truth.config.fleet):
        return [counting.infeasible(a.request, offers, a.at, a.deadline()) for a in arrivals]
    start, _ = window(arrivals)
    local = [o for o in offers if o.provider is ProviderKind.LOCAL]
    flags = []
    for a in arrivals:
        t = (a.at - start).total_seconds()
        up = [o for o in offers if not truth.down(o, t)]
        boxes = tuple(dataclasses.replace(box.target, up=not all(truth.down(o, t, box.name) for o in local))
                      for box in truth.config.local_boxes)
        flags.append(counting.infeasible(a.request, up, a.at, a.deadline(), boxes))
    return flags


class Simulation:
    def __init__(self, arrivals: Sequence[Arrival], offers: Sequence[Offer], policy: Policy, truth: Truth,
                 config: SimConfig | None = None, infeasible: Sequence[bool] | None = None) -> None:
        self.offers = {o.id: o for o in offers}
        self.offers_list = tuple(offers)
        self.policy, self.truth = policy, truth
        self.config = config or SimConfig()
        self.start, self.horizon_s = window(arrivals)
        flags = list(infeasible) if infeasible is not None else infeasible_flags(arrivals, offers, truth)
        self.jobs = [
            JobRecord(key=n, arrival=a, arrival_t=self._t(a.at), infeasible=flags[n],
                      deadline_t=self._t(d) if (d := a.deadline()) is not None else None)
            for n, a in enumerate(arrivals)
        ]
        self._events: list[tuple[float, int, int, int, int]] = []
        self._seq = 0
        self._running: dict[str, list[tuple[JobRecord, AttemptRecord]]] = {}
        self._waiting: dict[str, deque[tuple[JobRecord, AttemptRecord]]] = {}
        self._warm_since: dict[str, list[float]] = {}  # when each idle serverless worker of an offer went idle
        self._boxes = {box.name: box for box in truth.config.boxes}
        self._fleet = truth.config.fleet
        self._local_busy_s = 0.0
        self._box_busy_s = dict.fromkeys(self._boxes, 0.0)
        self._spent = ZERO
        self._reserved = ZERO
        self._mode = SpendMode.NORMAL
        # The learning policy's models, as the services' store keeps them, and their snapshot as contexts carry it.
        self._stats: dict[str, OfferStats] | None = {} if policy.learns else None
        # Ratings as they come in, and the quality routing reads from them (services.context's `quality`).
        self._tallies: dict[str, ScoreTally] | None = {} if policy.learns and self.config.rating_share else None
        self._quality: dict[str, float] = {}
        self._learned: dict[str, Learned] = {}
        # Every local offer on every box, for the snapshot to read each box's models by (none without a fleet).
        local = [o.id for o in offers if o.provider is ProviderKind.LOCAL]
        self._box_offers = dict.fromkeys(self._boxes, local) if self._fleet else None
        # Exploring attempts placed per UTC day and their p90 cost: the services' `learned.explored` counts.
        self._explored: dict[date, tuple[int, Decimal]] = {}
        # A campaign's items, planned together when its manifest arrives (with its first item), as the services do.
        self._campaigns: dict[str, list[JobRecord]] = {}
        for job in self.jobs:
            if (campaign := job.arrival.request.campaign_id) is not None:
                self._campaigns.setdefault(campaign, []).append(job)
        self._planned: dict[int, str] = {}

    # --- the clock ---------------------------------------------------------------------------------------------

    def _t(self, moment: datetime) -> float:
        return (moment - self.start).total_seconds()

    def _push(self, t: float, kind: Event, job: JobRecord, attempt_n: int = 0) -> None:
        self._seq += 1
        heapq.heappush(self._events, (t, int(kind), self._seq, job.key, attempt_n))

    def run(self) -> RunResult:
        for job in self.jobs:
            self._push(job.arrival_t, Event.ARRIVAL, job)
            if job.deadline_t is not None:
                self._push(job.deadline_t, Event.DEADLINE, job)
        for n, outage in enumerate(self.truth.config.outages):
            self._seq += 1
            heapq.heappush(self._events, (outage.start_s, int(Event.OUTAGE), self._seq, n, 0))
        while self._events:
            t, kind, _, key, attempt_n = heapq.heappop(self._events)
            if kind == Event.OUTAGE:
                self._outage(self.truth.config.outages[key], t)
                continue
            job = self.jobs[key]
            if job.terminal:
                continue
            if kind == Event.ARRIVAL:
                job.status = "active"
                self._route(job, t)
            elif kind == Event.DEADLINE:
                self._expire(job, t)
            elif kind == Event.RENDER_END:
                self._render_end(job, job.attempts[attempt_n - 1], t)
            elif kind == Event.ABANDON:
                self._abandon(job, job.attempts[attempt_n - 1], t)
            else:
                self._deliver(job, job.attempts[attempt_n - 1], t)
        return RunResult(policy=self.policy.name, jobs=self.jobs, start=self.start, horizon_s=self.horizon_s,
                         local_busy_s=self._local_busy_s, local_slots=self.truth.config.total_slots,
                         learned=self._learned, box_busy_s=self._box_busy_s,
                         box_slots={name: box.slots for name, box in self._boxes.items()})

    # --- routing -----------------------------------------------------------------------------------------------

    def _route(self, job: JobRecord, t: float) -> None:
        if len(job.attempts) >= self.config.max_attempts:
            self._end(job, t, "failed", f"gave up after {len(job.attempts)} attempts")
            return
        now = self.start + timedelta(seconds=t)
        deadline = job.arrival.deadline()
        # A job explores at most once (the worker's rule): its fallback's time was kept for the hop after that one.
        scout = None
        if not any(a.explore_until is not None for a in job.attempts):
            scout = self.policy.exploration(job.key, *self._explored.get(now.date(), (0, ZERO)))
        planned = None
        if not job.attempts and (campaign := job.arrival.request.campaign_id) is not None:
            if campaign in self._campaigns:
                self._plan(self._campaigns.pop(campaign), t)
            planned = self._planned.get(job.key)  # followed while the engine finds it feasible, first attempt only
        context = self._context(job, t, scout)
        choice = self.policy.decide(job.arrival.request, context, now, deadline, planned)
        if choice is None:
            self._end(job, t, "failed" if job.attempts else "rejected", "no feasible offer")
            return
        chosen = choice if isinstance(choice, Chosen) else None
        offer = self.offers[choice.offer if isinstance(choice, Chosen) else choice]
        placement = place(offer, job.arrival.request)
        attempt = AttemptRecord(n=len(job.attempts) + 1, offer=offer, fit=placement.fit,
                                delivered=placement.delivered, routed_at=t)
        if chosen is not None and chosen.explore_until is not None:
            attempt.explore_until = self._t(chosen.explore_until)
        job.attempts.append(attempt)
        if placement.delivered is None:
            attempt.status, attempt.ended_at = "refused", t
            self._end(job, t, "failed", f"{offer.id} can't take it (capability miss)")
            return
        if offer.provider is ProviderKind.LOCAL:
            attempt.box = self._placed(chosen, offer, placement.delivered, context)
        if self.truth.down(offer, t, attempt.box):
            # Only a policy that ignores health gets here: the submit fails, nothing is billed, and it falls back.
            attempt.status, attempt.ended_at = "failed", t
            self._learn(attempt, ok=False)
            self._route(job, t)
            return
        if attempt.box is not None and not self._boxes[attempt.box].holds(offer, placement.delivered):
            # The card can't hold the model at this size: the agent runs out of memory loading it, before it
            # renders or bills anything, and the job falls back.
            attempt.vram_short = True
            attempt.status, attempt.ended_at = "failed", t
            attempt.reason = AttemptReason(AttemptCode.PROVIDER_FAILED, f"out of memory on {attempt.box}")
            self._learn(attempt, ok=False)
            self._route(job, t)
            return
        if not self._reserve(attempt, placement.delivered):
            attempt.status, attempt.ended_at = "refused", t
            self._end(job, t, "failed" if len(job.attempts) > 1 else "rejected", "budget_exhausted")
            return
        if chosen is not None and chosen.explore_until is not None:
            jobs, usd = self._explored.get(now.date(), (0, ZERO))
            self._explored[now.date()] = (jobs + 1, usd + chosen.estimated_cost_p90_usd)
        self._waiting.setdefault(self._pool(attempt), deque()).append((job, attempt))
        self._pump(self._pool(attempt), t)

    def _placed(self, chosen: Chosen | None, offer: Offer, delivered: DeliveredSpec, context: RoutingContext) -> str:
        """The box a local attempt goes to: where the engine placed it, else the first box that holds it, up,
        with the shortest queue."""
        if chosen is not None and chosen.target in self._boxes:
            return chosen.target
        states = context.boxes.get(ProviderKind.LOCAL) or (context.targets[ProviderKind.LOCAL],)
        holding = [state for state in states if self._boxes[state.name].holds(offer, delivered)]
        # None holds it: it goes to a box anyway (the first, as the fleet provider sends a job that names none).
        able = [state for state in holding if state.up] or holding or [states[0]]
        return min(able, key=lambda state: state.queue_wait_s).name

    def _plan(self, jobs: list[JobRecord], t: float) -> None:
        """A campaign's plan, made when its manifest arrives, among the jobs the GPU holds (if it is up)."""
        now = self.start + timedelta(seconds=t)
        context = self._context(jobs[0], t)
        gpu = context.targets[ProviderKind.LOCAL]  # its queue, and down during an outage as the health probe sees it
        items = [(job.key, job.arrival.request, job.arrival.deadline()) for job in jobs]
        self._planned.update(self.policy.campaign_plan(items, context, now, gpu, gpu.up))

    def _context(self, job: JobRecord, t: float, scout: Exploration | None = None) -> RoutingContext:
        endpoints = self._runpod_endpoints(t)
        boxes: dict[ProviderKind, tuple[TargetState, ...]] = {}
        if self._fleet:
            fleet = boxes[ProviderKind.LOCAL] = self._fleet_targets(t)
            up = [box for box in fleet if box.up]
            # As the fleet provider sums its boxes up (providers/fleet.py): up while one is, the shortest wait.
            local = TargetState(name=ProviderKind.LOCAL.value, up=bool(up),
                                queue_wait_s=min((box.queue_wait_s for box in up), default=0.0))
        else:
            local = self._box_target(self._boxes[DEFAULT_BOX], t)
        targets = {
            ProviderKind.LOCAL: local,
            ProviderKind.RUNPOD: TargetState(name="runpod", queue_wait_s=max(
                (e.queue_wait_s for e in endpoints.values()), default=0.0)),
            ProviderKind.REPLICATE: TargetState(name="replicate"),
            ProviderKind.VEO: TargetState(name="veo"),
        }
        budgets: tuple[BudgetState, ...] = ()
        if self.config.budget_usd is not None:
            remaining = self.config.budget_usd - self._spent - self._reserved
            budgets = (BudgetState(scope="global", remaining_usd=remaining, spend_mode=self._mode),)
        if self.truth.config.outages:
            self._mark_down(targets, endpoints, t)
        return RoutingContext(targets=targets, offer_targets=endpoints, configured=frozenset(ProviderKind),
                              budgets=budgets, learned=self._learned, exclude_offers=self._excluded(job),
                              exploration=scout, boxes=boxes, quality=self._quality)

    def _mark_down(self, targets: dict[ProviderKind, TargetState], offer_targets: dict[str, TargetState],
                   t: float) -> None:
        """What the services' health probes see during an outage: the provider's (or the one offer's) target is
        not up. A fleet's boxes are judged on their own (`_fleet_targets`), and its sum from them."""
        for offer in self.offers_list:
            if self._fleet and offer.provider is ProviderKind.LOCAL:
                continue
            if not self.truth.down(offer, t):
                continue
            kind = offer.provider
            whole = all(self.truth.down(o, t) for o in self.offers_list if o.provider is kind)
            if whole:
                targets[kind] = dataclasses.replace(targets[kind], up=False)
            current = offer_targets.get(offer.id) or targets[kind]
            offer_targets[offer.id] = dataclasses.replace(current, up=False)

    def _excluded(self, job: JobRecord) -> frozenset[str]:
        # Simulated failures are a crashed render, the kind the services retry on the same offer once, unless the
        # attempt says otherwise (an abandoned exploration rules its offer out).
        failed = ((a.offer.id, a.offer.provider, a.reason.code if a.reason else AttemptCode.PROVIDER_FAILED)
                  for a in job.attempts if a.status == "failed")
        return excluded_offers(failed, self.offers_list)

    def _box_target(self, box: LocalBox, t: float) -> TargetState:
        """A GPU box as the services see it: the agent's jobs (offer, delivery, progress, deadline), each priced in
        what the policy has learned about its offer on this box, else about its offer (the catalog's figures for a
        policy that doesn't learn); its memory where it is one of a fleet."""
        pool = _box_pool(box.name)
        work = []
        for running, items in ((True, self._running.get(pool, [])), (False, self._waiting.get(pool, ()))):
            for job, attempt in items:
                spec = attempt.delivered
                assert spec is not None
                done = (t - (attempt.started_at or t)) / attempt.render_s if running and attempt.render_s else 0.0
                learned = self._learned.get(learning.key(attempt.offer.id, box.name)) if self._fleet else None
                if learned is None:
                    learned = self._learned.get(attempt.offer.id)
                left = localqueue.work_left(attempt.offer, spec.width, spec.height, spec.frames, done, learned)
                if attempt.explore_until is not None:  # a try holds the GPU until its abandon point at most
                    left = localqueue.held_until(left, attempt.explore_until - t)
                work.append(localqueue.Work(left_s=left, due=job.arrival.deadline(), running=running))
        queue = localqueue.run_order(work)
        return TargetState(name=box.name, queue_wait_s=localqueue.wait_s(queue, None, box.slots), queue=queue,
                           slots=box.slots, vram_mb=box.vram_mb, ram_mb=box.ram_mb)

    def _fleet_targets(self, t: float) -> tuple[TargetState, ...]:
        """Every box of the fleet, down where an outage takes every local offer off it, and reporting only the
        models still up where an outage takes some (as its agent would list what it can run)."""
        local = [o for o in self.offers_list if o.provider is ProviderKind.LOCAL]
        found = []
        for box in self._boxes.values():
            state = self._box_target(box, t)
            down = [o for o in local if self.truth.down(o, t, box.name)] if self.truth.config.outages else []
            if down and len(down) == len(local):
                state = dataclasses.replace(state, up=False)
            elif down:
                state = dataclasses.replace(state, models=_models(o for o in local if o not in down))
            found.append(state)
        return tuple(found)

    @staticmethod
    def _p50(attempt: AttemptRecord) -> float:
        spec = attempt.delivered
        assert spec is not None
        return attempt.offer.latency.delivery_seconds(spec, p90=False)

    def _runpod_endpoints(self, t: float) -> dict[str, TargetState]:
        """What the RunPod adapter reads from each endpoint's /health: its queue (queued jobs x 70 s over its
        workers) and whether an idle worker is left for a newcomer (else the offer's cold start applies)."""
        endpoints = {}
        for offer in self.offers_list:
            if offer.provider is not ProviderKind.RUNPOD:
                continue
            queued = len(self._waiting.get(offer.id, ()))
            idle = [since for since in self._warm_since.get(offer.id, [])
                    if t - since <= self.truth.config.idle_timeout_s]
            endpoints[offer.id] = TargetState(name="runpod", warm=len(idle) > queued,
                                              queue_wait_s=queued * RUNPOD_TYPICAL_JOB_S / self.truth.workers(offer))
        return endpoints

    # --- money -------------------------------------------------------------------------------------------------

    def _reserve(self, attempt: AttemptRecord, delivered: DeliveredSpec) -> bool:
        if self.config.budget_usd is None:
            return True
        estimate = estimated_p90_cost(attempt.offer, delivered) or ZERO
        if estimate > self.config.budget_usd - self._spent - self._reserved:
            return False
        attempt.reserved = estimate
        self._reserved += estimate
        return True

    def _settle(self, attempt: AttemptRecord) -> None:
        if self.config.budget_usd is None:
            return
        self._reserved -= attempt.reserved
        attempt.reserved = ZERO
        self._spent += attempt.cost
        limit = self.config.budget_usd
        used = self._spent / limit if limit > 0 else Decimal(1)
        for threshold, mode in self.config.spend_rules:
            if used >= threshold and mode.rank > self._mode.rank:
                self._mode = mode

    # --- providers ---------------------------------------------------------------------------------------------

    @staticmethod
    def _pool(attempt: AttemptRecord) -> str:
        """Local offers share their GPU box's slots; each cloud offer has its own workers."""
        return _box_pool(attempt.box) if attempt.box is not None else attempt.offer.id

    def _pump(self, pool: str, t: float) -> None:
        queue = self._waiting.get(pool)
        running = self._running.setdefault(pool, [])
        while queue:
            job, attempt = queue[0]
            box = self._boxes[attempt.box] if attempt.box is not None else None
            if len(running) >= (box.slots if box is not None else self.truth.workers(attempt.offer)):
                return
            if box is not None:
                # The agent's order: earliest deadline first, then first come (agent/store.py `claim_next`).
                job, attempt = min(queue, key=lambda item: (item[0].deadline_t is None, item[0].deadline_t or 0.0))
                queue.remove((job, attempt))
            else:
                queue.popleft()
            running.append((job, attempt))
            self._start(job, attempt, t)

    def _start(self, job: JobRecord, attempt: AttemptRecord, t: float) -> None:
        offer, spec = attempt.offer, attempt.delivered
        assert spec is not None
        attempt.status, attempt.started_at = "running", t
        attempt.render_s = (self.truth.render_on(job.key, offer, spec, self._boxes[attempt.box])
                            if attempt.box is not None else self.truth.render_s(job.key, offer, spec))
        attempt.cold_s = self._cold_start(offer, t)
        attempt.fails_at = self.truth.failure_at(job.key, offer, attempt.n)
        share = attempt.fails_at if attempt.fails_at is not None else 1.0
        self._push(t + attempt.cold_s + share * attempt.render_s, Event.RENDER_END, job, attempt.n)
        if attempt.explore_until is not None:
            self._push(max(t, attempt.explore_until), Event.ABANDON, job, attempt.n)

    def _cold_start(self, offer: Offer, t: float) -> float:
        cold = self.truth.cold_start_s(offer)
        if cold <= 0:
            return 0.0
        idle = self._warm_since.setdefault(offer.id, [])
        idle[:] = [since for since in idle if t - since <= self.truth.config.idle_timeout_s]
        if idle:
            idle.pop()  # the most recently idled worker takes it, warm
            return 0.0
        return cold

    def _release(self, job: JobRecord, attempt: AttemptRecord, t: float) -> None:
        """Free the attempt's worker or slot, bill what it ran, and start whoever waits."""
        pool = self._pool(attempt)
        self._running[pool] = [(j, a) for j, a in self._running[pool] if a is not attempt]
        ran = max(0.0, t - (attempt.started_at or t))
        if attempt.box is not None:
            self._local_busy_s += ran
            self._box_busy_s[attempt.box] += ran
        elif self.truth.cold_start_s(attempt.offer) > 0:
            self._warm_since.setdefault(attempt.offer.id, []).append(t)
        # What a time-billed offer charges: the local GPU while it rendered; a serverless worker from its start,
        # cold start included (it began at `started_at`).
        attempt.gpu_seconds = round(ran, 3)
        self._pump(pool, t)

    def _render_end(self, job: JobRecord, attempt: AttemptRecord, t: float) -> None:
        if attempt.status != "running":
            return
        failed = attempt.fails_at is not None
        self._release(job, attempt, t)
        assert attempt.delivered is not None
        attempt.cost = attempt_cost(attempt.offer, attempt.delivered, attempt.gpu_seconds, succeeded=not failed)
        self._settle(attempt)
        self._learn(attempt, ok=not failed)
        if failed:
            attempt.status, attempt.ended_at = "failed", t
            self._route(job, t)  # the services' fallback hop
            return
        transfer = attempt.offer.latency.transfer_s
        attempt.status = "transferring"
        if transfer > 0:
            self._push(t + transfer, Event.DELIVER, job, attempt.n)
        else:
            self._deliver(job, attempt, t)

    def _abandon(self, job: JobRecord, attempt: AttemptRecord, t: float) -> None:
        """The worker's `_abandon`: an exploring attempt unfinished at its abandon point is stopped, billed for the
        GPU time it ran, learned from as a lower bound, and the job falls back with the offer ruled out."""
        if attempt.status == "queued":  # not the engine's doing (it explores only an idle GPU), but stop it alike
            pool = self._waiting[self._pool(attempt)]
            pool.remove(next(item for item in pool if item[1] is attempt))
        elif attempt.status == "running":
            self._release(job, attempt, t)
            assert attempt.delivered is not None
            attempt.cost = attempt_cost(attempt.offer, attempt.delivered, attempt.gpu_seconds, succeeded=False)
        else:
            return  # it ended first (rendered, failed or cancelled)
        self._settle(attempt)
        # Only a measured GPU time bounds the render (the worker's rule); a queued attempt taught nothing.
        ran_s = attempt.gpu_seconds if attempt.offer.provider in REPORTS_RENDER_S and attempt.gpu_seconds else None
        self._observe(attempt, Observation(ok=True, render_s=ran_s, catalog_render_s=self._p50(attempt),
                                           censored=True))
        assert attempt.explore_until is not None
        ran = f"after {ran_s:.0f} GPU-seconds" if ran_s else "(no GPU time reported)"
        attempt.status, attempt.ended_at = "failed", t
        until = self.start + timedelta(seconds=attempt.explore_until)
        attempt.reason = AttemptReason(AttemptCode.EXPLORATION_ABANDONED, f"not done by its abandon point "
                                       f"{until:%Y-%m-%dT%H:%M:%SZ} {ran}; stopped at the provider")
        self._route(job, t)

    def _deliver(self, job: JobRecord, attempt: AttemptRecord, t: float) -> None:
        attempt.status, attempt.ended_at = "succeeded", t
        self._end(job, t, "succeeded", "")
        self._rate(job, attempt)

    def _rate(self, job: JobRecord, attempt: AttemptRecord) -> None:
        """A synthetic rater's score of the video, if someone rates it, into its offer's tally (the ratings store)
        and the quality routing reads (policy.quality.routing_quality)."""
        if self._tallies is None or not rated(self.truth.config.seed, job.key, self.config.rating_share or 0.0):
            return
        offer = attempt.offer
        mean = by_offer(self.truth.config.rating_mean, offer, float(offer.quality))
        score = rater_score(self.truth.config.seed, job.key, offer.id, mean)
        self._tallies[offer.id] = self._tallies.get(offer.id, ScoreTally()).plus(score)
        self._quality = routing_quality([offer], self._tallies, self.config.quality_min_ratings) | {
            k: v for k, v in self._quality.items() if k != offer.id}

    def _expire(self, job: JobRecord, t: float) -> None:
        attempt = job.final
        if attempt is not None and attempt.status in ("queued", "running"):
            if attempt.status == "queued":
                pool = self._waiting[self._pool(attempt)]
                pool.remove(next(item for item in pool if item[1] is attempt))
            else:
                self._release(job, attempt, t)
                assert attempt.delivered is not None
                attempt.cost = attempt_cost(attempt.offer, attempt.delivered, attempt.gpu_seconds, succeeded=False)
            attempt.status, attempt.ended_at = "cancelled", t
            self._settle(attempt)
        elif attempt is not None and attempt.status == "transferring":
            attempt.status, attempt.ended_at = "cancelled", t  # rendered and billed, but too late to deliver
        self._end(job, t, "expired", "deadline passed with no result")

    # --- learning ----------------------------------------------------------------------------------------------

    def _learn(self, attempt: AttemptRecord, ok: bool) -> None:
        """What finalize feeds the learned models for this attempt, through the same update."""
        if self._stats is None:
            return
        offer = attempt.offer
        observation = Observation(ok=False)
        if ok:
            started = attempt.started_at if attempt.started_at is not None else attempt.routed_at
            runpod = offer.provider is ProviderKind.RUNPOD
            # Billed and priced are left out: the simulator bills exactly the catalog's price, so there is no
            # cost error to learn.
            observation = Observation(
                ok=True,
                render_s=attempt.render_s if offer.provider in REPORTS_RENDER_S else None,
                catalog_render_s=self._p50(attempt),
                start_delay_s=started - attempt.routed_at + attempt.cold_s if runpod else None,
                cold_start_prior_s=offer.latency.cold_start_s,
            )
        self._observe(attempt, observation)

    def _observe(self, attempt: AttemptRecord, observation: Observation) -> None:
        if self._stats is None:
            return
        names = [learning.key(attempt.offer.id)]
        if self._fleet and attempt.box is not None:
            names.append(learning.key(attempt.offer.id, attempt.box))
        for name in names:
            self._stats[name] = learning.observe(self._stats.get(name, OfferStats()), observation)
        # A new snapshot, not an update in place: a context keeps the one it was given. Every key is read again, as
        # one offer's runs move its group's prior (and, on a fleet, a box's runs its speed on every offer).
        self._learned = learning.snapshot(self._stats, self.offers, self._box_offers)

    def _outage(self, outage: Outage, t: float) -> None:
        """Everything queued or running on what went down fails now (running GPU time is billed) and falls back."""
        hit: list[tuple[JobRecord, AttemptRecord]] = []
        for pool, queue in self._waiting.items():
            lost = [(j, a) for j, a in queue if outage.covers(a.offer, a.box)]
            self._waiting[pool] = deque(item for item in queue if not outage.covers(item[1].offer, item[1].box))
            for _, attempt in lost:
                attempt.status, attempt.ended_at = "failed", t
                self._settle(attempt)
                self._learn(attempt, ok=False)
            hit += lost
        for running in list(self._running.values()):
            for job, attempt in [(j, a) for j, a in running if outage.covers(a.offer, a.box)]:
                self._release(job, attempt, t)
                assert attempt.delivered is not None
                attempt.cost = attempt_cost(attempt.offer, attempt.delivered, attempt.gpu_seconds, succeeded=False)
                attempt.status, attempt.ended_at = "failed", t
                self._settle(attempt)
                self._learn(attempt, ok=False)
                hit.append((job, attempt))
        for job, _ in sorted(hit, key=lambda item: item[0].key):
            if not job.terminal:
                self._route(job, t)

    def _end(self, job: JobRecord, t: float, status: str, reason: str) -> None:
        assert not job.terminal, f"job {job.key} ended twice"
        job.status, job.ended_at, job.reason = status, t, reason


def _box_pool(box: str) -> str:
    return f"{ProviderKind.LOCAL.value}@{box}"


def _models(offers: Iterable[Offer]) -> Mapping[str, frozenset[str]]:
    """What a box reports it can run: each model, with the modes its offers render."""
    found: dict[str, frozenset[str]] = {}
    for offer in offers:
        found[offer.model] = found.get(offer.model, frozenset()) | {mode.value for mode in offer.modes}
    return found


def simulate(arrivals: Sequence[Arrival], offers: Sequence[Offer], policy: Policy, truth: Truth,
             config: SimConfig | None = None, infeasible: Sequence[bool] | None = None) -> RunResult:
    return Simulation(arrivals, offers, policy, truth, config, infeasible).run()
