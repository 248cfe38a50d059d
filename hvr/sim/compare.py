"""One benchmark run: every policy over the same workload and the same truth, the offline optimum, and the metrics
the report prints (issue 9's counting rules).

- `deadline_hit_rate`: requests delivered by their deadline, as asked (no capability miss, no floor violation),
  over the requests that are not `infeasible`.
- `cost_per_video_usd`: total cost over the videos delivered (failed and expired attempts are in the total).
- `gpu_utilization`: seconds the local GPU rendered (failed and cancelled renders too) over the run's span x slots;
  on a fleet (`truth.local_boxes`), every box's seconds over the span x every box's slots, and each box's own
  (`gpu_utilization_by_box`).
- `vram_violations` (a fleet only): attempts placed on a box whose card can't hold the offer at that delivery.
- `cost_ratio_to_optimum`: cost over the offline optimum's, which serves every request it can, on the same
  requests: those not `infeasible`. The optimum may not serve an infeasible one, so what a policy spends on those
  (`infeasible_cost_usd`: a learning policy can serve some on time, within their cap, where the catalog said no
  offer could) is counted on its own, as they are left out of every deadline rate (docs/decisions.md, 2026-12-04).
- `matched_bound_usd`: the cheapest cost, with hindsight, of delivering on time exactly what this policy delivered
  on time; it is a lower bound on this policy's cost by construction (see `optimal`), even for a policy that
  serves far less than the optimum and so costs less than it.
- `cost_ratio_to_static_rule`, three ways: total over total; like for like, the two costs over the requests both
  delivered on time; and per video delivered, which is how the studio prices its months (cost per video).
- `second_half_cost_ratio_to_optimum`: the policy's cost on the requests arriving at or after the span's midpoint,
  over what the whole-month optimum paid for those same requests — how well a learning policy does once it has
  learned. Infeasible requests are left out here too.
- `bound_omits_usd`: what the policy paid, on the requests the ratios count, that the optimum omits by construction
  (`optimal`'s relaxations): cold starts billed on delivering attempts, and attempts that delivered nothing (failed,
  abandoned, cancelled). Reported beside the ratios, never taken out of them: it says how much of a gap to the bound
  no decision could have closed the way the bound assumes (`second_half_bound_omits_usd` likewise).
- `weekly`: per week from the start (by arrival for costs and deadlines, by clock for the GPU's busy time): cost
  (infeasible requests left out), the optimum's cost on the same requests, their ratio, GPU utilization and
  deadline-hit rate.
"""

from __future__ import annotations

import heapq
import math
import statistics
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal

from hvr.sim import baselines, optimal
from hvr.sim.counting import cold_start_cost
from hvr.sim.simulator import JobRecord, RunResult, SimConfig, infeasible_flags, simulate, window
from hvr.sim.truth import LocalBox, Truth, TruthConfig
from hvr.sim.workload import Arrival
from router.models.common import ProviderKind, money
from router.models.offer import Offer

OPTIMUM = "offline_optimum"
STATIC = "static_rule"
CHEAPEST = "cheapest_feasible"
DEFAULT_POLICIES = (*baselines.POLICIES, OPTIMUM)
ZERO = Decimal("0.0000")
WEEK_S = 7 * 86400.0


@dataclass(frozen=True)
class Targets:
    """What hvr is held to (docs/architecture.md, "Numbers it is held to"). The defaults are the sample month's;
    `SCENARIO` adds issue 14's for scenario runs. A target that is None is reported without a verdict."""

    hit_rate: float = 0.99
    optimum_ratio: float = 1.10
    static_ratio: float = 0.50
    second_half_optimum_ratio: float | None = None
    gpu_share_of_optimum: float | None = None  # hvr's gpu_utilization over the optimum's, at least
    cheapest_feasible_ratio: float | None = None  # hvr's cost over cheapest_feasible's, at most


SCENARIO_TARGETS = Targets(optimum_ratio=1.15, second_half_optimum_ratio=1.08, gpu_share_of_optimum=0.8)


@dataclass(frozen=True)
class Week:
    week: int
    cost_usd: Decimal
    optimum_cost_usd: Decimal
    gpu_utilization: float
    deadline_hit_rate: float | None

    @property
    def cost_ratio_to_optimum(self) -> float | None:
        return float(self.cost_usd / self.optimum_cost_usd) if self.optimum_cost_usd > 0 else None


@dataclass
class Metrics:
    name: str
    videos: int
    infeasible: int
    delivered: int
    on_time: int
    rejected: int
    expired: int
    failed: int
    total_cost_usd: Decimal
    quality_violations: int
    infeasible_cost_usd: Decimal  # spent on requests infeasible in an idle world: in the total, not in the ratios
    capability_misses: int
    gpu_utilization: float
    p50_turnaround_s: float | None
    p95_turnaround_s: float | None
    offer_mix: dict[str, int]
    spend: list[tuple[datetime, Decimal]]  # (when, what it cost), in time order, for the spend chart
    served: set[int] = field(default_factory=set)  # requests delivered on time
    cost_by_request: dict[int, Decimal] = field(default_factory=dict)
    omitted_by_request: dict[int, Decimal] = field(default_factory=dict)  # the part of each the bound omits
    busy: list[tuple[float, float]] = field(default_factory=list)  # the local GPU's busy spans, run seconds x slot
    gpu_utilization_by_box: dict[str, float] = field(default_factory=dict)
    vram_violations: int = 0
    weekly: list[Week] = field(default_factory=list)
    second_half_cost_usd: Decimal | None = None
    second_half_optimum_usd: Decimal | None = None
    bound_omits_usd: Decimal = ZERO
    second_half_bound_omits_usd: Decimal = ZERO
    matched_bound_usd: Decimal | None = None
    cost_ratio_to_optimum: float | None = None
    cost_ratio_to_static_rule: float | None = None
    like_for_like_vs_static_rule: float | None = None
    per_video_vs_static_rule: float | None = None

    @property
    def feasible(self) -> int:
        return self.videos - self.infeasible

    @property
    def deadline_hit_rate(self) -> float | None:
        return self.on_time / self.feasible if self.feasible else None

    @property
    def cost_per_video_usd(self) -> Decimal | None:
        return money(self.total_cost_usd / self.delivered) if self.delivered else None

    @property
    def second_half_cost_ratio_to_optimum(self) -> float | None:
        if self.second_half_cost_usd is None or not self.second_half_optimum_usd:
            return None
        return float(self.second_half_cost_usd / self.second_half_optimum_usd)


@dataclass
class Comparison:
    workload: str
    seed: int
    videos: int
    infeasible: int
    start: datetime
    horizon_s: float
    metrics: dict[str, Metrics]
    runs: dict[str, RunResult]
    optimum: optimal.Solution | None
    notes: list[str]
    targets: Targets = field(default_factory=Targets)
    boxes: tuple[LocalBox, ...] = ()  # the fleet, where the truth has one


def compare(arrivals: Sequence[Arrival], offers: Sequence[Offer], seed: int, policies: Sequence[str] = DEFAULT_POLICIES,
            config: SimConfig | None = None, workload: str = "", truth_config: TruthConfig | None = None,
            time_limit_s: float = optimal.TIME_LIMIT_S, matched_bounds: bool = True,
            targets: Targets | None = None) -> Comparison:
    """`matched_bounds`: also solve each policy's matched bound (one more MILP per policy: minutes each when the
    GPU is fast and cheap enough that the optimum keeps many local candidates)."""
    unknown = [p for p in policies if p != OPTIMUM and p not in baselines.POLICIES]
    if unknown:
        raise ValueError(f"unknown policies {unknown}; known: {', '.join(DEFAULT_POLICIES)}")
    truth = Truth(truth_config or TruthConfig(seed=seed))
    flags = infeasible_flags(arrivals, offers, truth)
    runs = {name: simulate(arrivals, offers, baselines.make(name, offers, seed), truth, config, flags)
            for name in policies if name != OPTIMUM}
    metrics = {name: _metrics(run) for name, run in runs.items()}
    start, horizon = window(arrivals)
    # The optimum prices every policy (ratios, matched bounds), so it is solved whether or not it is listed.
    problem = optimal.Problem.of(arrivals, offers, truth, flags)
    solution = problem.solve(time_limit_s=time_limit_s)
    best = _optimum_metrics(solution, problem, flags, start, horizon, truth, offers)
    if OPTIMUM in policies:
        metrics[OPTIMUM] = best
    notes = [f"offline optimum: {solution.binaries} binaries, {solution.variables} variables, "
             f"{solution.constraints} constraints; {solution.status}; proven lower bound ${solution.bound}"]
    if matched_bounds:
        for name, run in runs.items():
            metrics[name].matched_bound_usd = problem.solve(optimal.matched_set(run.jobs, problem),
                                                            time_limit_s=time_limit_s, allow_fewer=False).bound
    else:
        notes.append("matched bounds not solved (ask for them with --matched-bounds)")
    _ratios(metrics, solution)
    arrival_t = [(a.at - start).total_seconds() for a in arrivals]
    for m in metrics.values():
        _over_time(m, best.cost_by_request, arrival_t, flags, horizon, truth.config.total_slots)
    return Comparison(workload=workload, seed=seed, videos=len(arrivals), infeasible=sum(flags), start=start,
                      horizon_s=horizon, metrics=metrics, runs=runs, optimum=solution, notes=notes,
                      targets=targets or Targets(), boxes=truth.config.local_boxes)


def _metrics(run: RunResult) -> Metrics:
    jobs = run.jobs
    turnarounds = [t for job in jobs if (t := job.turnaround_s) is not None]
    spend = sorted((run.at(a.ended_at or job.ended_at or 0.0), a.cost) for job in jobs for a in job.attempts)
    return Metrics(
        name=run.policy,
        videos=len(jobs),
        infeasible=sum(job.infeasible for job in jobs),
        delivered=sum(job.delivered for job in jobs),
        on_time=sum(job.on_time for job in jobs if not job.infeasible),
        rejected=sum(job.status == "rejected" for job in jobs),
        expired=sum(job.status == "expired" for job in jobs),
        failed=sum(job.status == "failed" for job in jobs),
        total_cost_usd=run.total_cost,
        quality_violations=sum(job.quality_violation for job in jobs),
        infeasible_cost_usd=sum((job.cost for job in jobs if job.infeasible), ZERO),
        capability_misses=sum(job.capability_miss for job in jobs),
        gpu_utilization=run.local_busy_s / (run.horizon_s * run.local_slots) if run.horizon_s > 0 else 0.0,
        p50_turnaround_s=_percentile(turnarounds, 50),
        p95_turnaround_s=_percentile(turnarounds, 95),
        offer_mix=dict(Counter(job.final.offer.id for job in jobs if job.delivered and job.final).most_common()),
        spend=spend,
        served={job.key for job in jobs if job.on_time and not job.infeasible},
        cost_by_request={job.key: job.cost for job in jobs},
        omitted_by_request={job.key: omitted for job in jobs if not job.infeasible and (omitted := _omitted(job))},
        busy=[(a.started_at, a.started_at + a.gpu_seconds) for job in jobs for a in job.attempts
              if a.offer.provider is ProviderKind.LOCAL and a.started_at is not None and a.gpu_seconds > 0],
        gpu_utilization_by_box={name: busy / (run.horizon_s * run.box_slots[name]) if run.horizon_s > 0 else 0.0
                                for name, busy in run.box_busy_s.items()},
        vram_violations=sum(a.vram_short for job in jobs for a in job.attempts),
    )


def _omitted(job: JobRecord) -> Decimal:
    """What `job`'s attempts cost that the optimum leaves out: attempts that delivered nothing, and the cold start a
    delivering one was billed."""
    return sum((a.cost if a.status != "succeeded" else cold_start_cost(a.offer, a.delivered, a.cold_s)
                for a in job.attempts), ZERO)


def _optimum_metrics(solution: optimal.Solution, problem: optimal.Problem, flags: Sequence[bool], start: datetime,
                     horizon: float, truth: Truth | None = None, offers: Sequence[Offer] = ()) -> Metrics:
    """The optimum as a policy: cloud renders start on arrival (or when their outage ends); local ones as
    preemptive EDF runs them on their boxes (each box its share, where the bound splits a render) around the boxes'
    outages."""
    arrival_t = problem.arrival_t
    by_id = {o.id: o for o in offers}
    busy: list[tuple[float, float]] = []
    on_box: dict[str, list[tuple[int, float, float, float]]] = {}  # each box's share of each render
    down: dict[str, dict[int, tuple[tuple[float, float], ...]]] = {}
    box_busy = dict.fromkeys(problem.boxes, 0.0)
    for c in solution.served.values():
        if not c.local:
            continue
        for box, seconds in solution.local_work[c.request].items():
            on_box.setdefault(box, []).append((c.request, arrival_t[c.request], c.window[1], seconds))
            down.setdefault(box, {})[c.request] = (truth.outages(by_id[c.offer], box)
                                                   if truth is not None and c.offer in by_id else ())
            box_busy[box] += seconds
    finish: dict[int, float] = {}
    for name, jobs in on_box.items():
        for request, end in _edf_finish(jobs, problem.boxes[name].slots, down[name], busy).items():
            finish[request] = max(end, finish.get(request, end))  # a render split between boxes: its last share
    done = {i: finish.get(i, arrival_t[i] + c.ready_s) for i, c in solution.served.items()}
    turnarounds = [done[i] - arrival_t[i] for i in solution.served]
    by_request = {i: Decimal("0.0000") for i in range(len(flags))} | {i: c.cost for i, c in solution.served.items()}
    return Metrics(
        name=OPTIMUM, videos=len(flags), infeasible=sum(flags),
        delivered=len(solution.served), on_time=len(solution.served), rejected=len(flags) - len(solution.served),
        expired=0, failed=0, total_cost_usd=solution.cost, quality_violations=0, infeasible_cost_usd=ZERO,
        capability_misses=0,
        gpu_utilization=solution.local_busy_s / (horizon * problem.slots) if horizon > 0 else 0.0,
        gpu_utilization_by_box={name: busy / (horizon * problem.boxes[name].slots) if horizon > 0 else 0.0
                                for name, busy in box_busy.items()},
        p50_turnaround_s=_percentile(turnarounds, 50), p95_turnaround_s=_percentile(turnarounds, 95),
        offer_mix=dict(Counter(c.offer for c in solution.served.values()).most_common()),
        spend=sorted((start + timedelta(seconds=done[i]), c.cost) for i, c in solution.served.items()),
        served=set(solution.served), cost_by_request=by_request, matched_bound_usd=solution.bound, busy=busy,
    )


def _edf_finish(local: list[tuple[int, float, float, float]], slots: int,
                down: dict[int, tuple[tuple[float, float], ...]] | None = None,
                busy: list[tuple[float, float]] | None = None) -> dict[int, float]:
    """Completion times of (request, release, due, work) under preemptive earliest-deadline-first on `slots`, a
    request's work pausing while its offer is `down`; the spans worked are appended to `busy`."""
    down = down or {}
    pending = sorted(local, key=lambda job: job[1])
    ready: list[tuple[float, int, float]] = []  # (due, request, work left)
    finish: dict[int, float] = {}
    t, n = 0.0, 0
    while n < len(pending) or ready:
        if not ready:
            t = max(t, pending[n][1])
        while n < len(pending) and pending[n][1] <= t:
            request, _, due, work = pending[n]
            heapq.heappush(ready, (due, request, work))
            n += 1
        held = [heapq.heappop(ready) for _ in range(len(ready))]
        able = [job for job in held if not _in(down.get(job[1], ()), t)]
        running = able[:slots]
        for job in held:
            if job not in running:
                heapq.heappush(ready, job)
        edges = [e - t for job in held for span in down.get(job[1], ()) for e in span if e > t]
        if n < len(pending):
            edges.append(pending[n][1] - t)
        if not running:  # everything ready is down: wait for the next outage to end or the next release
            t += min(edges)
            continue
        step = min([work for _, _, work in running] + edges)
        for due, request, work in running:
            if busy is not None:
                busy.append((t, t + step))
            if work - step <= 1e-9:
                finish[request] = t + step
            else:
                heapq.heappush(ready, (due, request, work - step))
        t += step
    return finish


def _in(spans: tuple[tuple[float, float], ...], t: float) -> bool:
    return any(a <= t < b for a, b in spans)


def _over_time(m: Metrics, optimum_cost: dict[int, Decimal], arrival_t: Sequence[float], flags: Sequence[bool],
               horizon: float, slots: int) -> None:
    """Fill `weekly` and the second-half figures: costs and deadlines by the week each request arrived in, GPU
    busy time by the clock."""
    half = horizon / 2
    m.second_half_cost_usd = sum((m.cost_by_request.get(i, ZERO) for i, t in enumerate(arrival_t)
                                  if t >= half and not flags[i]), ZERO)
    m.second_half_optimum_usd = sum((optimum_cost.get(i, ZERO) for i, t in enumerate(arrival_t) if t >= half), ZERO)
    m.bound_omits_usd = sum(m.omitted_by_request.values(), ZERO)
    m.second_half_bound_omits_usd = sum((v for i, v in m.omitted_by_request.items() if arrival_t[i] >= half), ZERO)
    weeks = max(1, math.ceil(horizon / WEEK_S))
    by_week: list[list[int]] = [[] for _ in range(weeks)]
    for i, t in enumerate(arrival_t):  # the last week is short, and ends at the span's end
        by_week[min(int(t // WEEK_S), weeks - 1)].append(i)
    m.weekly = []
    for w, mine in enumerate(by_week):
        lo, hi = w * WEEK_S, min((w + 1) * WEEK_S, horizon)
        feasible = [i for i in mine if not flags[i]]
        busy = sum(max(0.0, min(b, hi) - max(a, lo)) for a, b in m.busy)
        m.weekly.append(Week(
            week=w,
            cost_usd=sum((m.cost_by_request.get(i, ZERO) for i in mine if not flags[i]), ZERO),
            optimum_cost_usd=sum((optimum_cost.get(i, ZERO) for i in mine), ZERO),
            gpu_utilization=busy / ((hi - lo) * slots) if hi > lo else 0.0,
            deadline_hit_rate=sum(i in m.served for i in feasible) / len(feasible) if feasible else None,
        ))


def _ratios(metrics: dict[str, Metrics], solution: optimal.Solution | None) -> None:
    static = metrics.get(STATIC)
    for m in metrics.values():
        if solution is not None and solution.cost > 0:
            m.cost_ratio_to_optimum = float((m.total_cost_usd - m.infeasible_cost_usd) / solution.cost)
        if static is not None and static.total_cost_usd > 0:
            m.cost_ratio_to_static_rule = float(m.total_cost_usd / static.total_cost_usd)
            common = m.served & static.served
            theirs = sum((static.cost_by_request[i] for i in common), Decimal(0))
            ours = sum((m.cost_by_request[i] for i in common), Decimal(0))
            m.like_for_like_vs_static_rule = float(ours / theirs) if theirs > 0 else None
            if m.cost_per_video_usd is not None and static.cost_per_video_usd:
                m.per_video_vs_static_rule = float(m.total_cost_usd / m.delivered
                                                   / (static.total_cost_usd / static.delivered))


def _percentile(values: list[float], pct: int) -> float | None:
    if not values:
        return None
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[pct - 1]
