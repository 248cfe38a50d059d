"""The offline optimum: a lower bound on what any policy could have paid, with full hindsight, as a MILP
(scipy.optimize.milp, HiGHS).

Hindsight means the bound knows every arrival and every realized render time (`truth.render_s`, one per request and
offer; on a GPU box, that times the box's speed: `truth.render_on`). It serves each request it serves on one
**candidate** offer: a cloud offer, or a local offer on the GPU boxes whose card holds it at that delivery (the
engine's own rule, `constraints.vram_reason`, through `LocalBox.holds`; a `Candidate` per box); one whose fit is `ok`
(capability and quality floor), whose cap holds (on the engine's p90 estimate or on the realized cost, whichever is
lower), and whose render alone (plus transfer) fits between arrival and deadline. Requests infeasible in an idle
world (`counting`) are left out, as they are from every deadline rate.

Formulation. Binary x[i,o] = request i served on candidate o; for a local o, continuous f[i,o,b] ≥ 0 = the share
of its render done on GPU box b (only boxes whose card holds o); continuous y[i,b,k] ≥ 0 = seconds of box b's time
spent on i's render in elementary interval k:

    minimise   Σ_cloud c[i,o] x[i,o] + Σ_local c[i,o,b] f[i,o,b]   c = realized cost of one successful attempt,
                                                                   warm; a local one's on box b (its GPU-seconds)
    subject to Σ_o x[i,o] = 1                        every request served (or Σ ≤ 1 and Σ x ≥ K, below)
               Σ_b f[i,o,b] = x[i,o]                 a local candidate's shares make up the whole render
               Σ_k y[i,b,k] = Σ_o d[i,o] s_b f[i,o,b]   its render on box b: d realized, s_b the box's speed
               Σ_i y[i,b,k] ≤ slots_b x |k|          box b's capacity in interval k
               0 ≤ y[i,b,k] ≤ |k|                    only inside [arrival, deadline - transfer]

Where only one box holds a local candidate (always, without a fleet) its share is x itself: no f, no row. So without
a fleet — one box, `agent-1`, speed 1, no memory limit, `local_slots` slots — this is exactly the model of before
fleets: the same variables, rows and columns in the same order. The elementary intervals are cut at every arrival
and local deadline, so inside one every window either covers it or misses it; on one box these constraints then say
exactly that a *preemptive* schedule exists (Horn 1974 for one slot). A request's local work on a box may fall
anywhere in the union of its local candidates' windows there (they coincide in the default catalog, where no local
offer has a transfer time).

Outages (`truth.outages`): a local candidate's work may not fall in its offer's down time on its box (the outage
edges are cuts too), and it exists only if its window's up-time holds its render; a cloud candidate exists only if
its render fits, clear of its offer's outages, between arrival and deadline (waiting out an outage is allowed,
spanning one is not).

Relaxations, each of which can only lower the bound — which is why it is one:
- renders on a GPU box may pause and resume (preemption), and with several slots move between them;
- on a fleet, a render may be split between boxes, even run on two at once, and pays each box's share at that box's
  cost (a policy's attempt runs on one box: f is then 1 there, a point of the relaxation);
- cloud offers have unlimited concurrency, no queue and no cold start (cold starts neither delay nor bill);
- no attempt fails, so nothing is paid twice and nothing waits for a retry;
- the cap is met if either the p90 estimate or the realized cost meets it.

Why it bounds every policy: a policy serves request i on time on some candidate o (on some box b that holds it, for a
local one), and its successful attempt there costs exactly c[i,o] (c[i,o,b]: same realized time, same pricing; more
with a cold start); every other attempt costs ≥ 0; its local renders ran inside their windows, on boxes that hold
them, without overlap on any box's slots. So its served set, on its own candidates, is a feasible point of the MILP
restricted to that set — `bound(served)` is below its cost.

Tractability. Cloud candidates share nothing, so only each request's cheapest one is kept; a local candidate is kept
only if cheaper than that and not dominated by another local one on the same box (no slower, no dearer, no narrower
window, up whenever it is). Both reductions are exact (the brute-force test checks the second); across boxes there
is no such dominance (each box has its own capacity), so a fleet keeps each box's candidates. On the 1,000-video
benchmark months (sample, seeds 2 and 3) this leaves 863-864 binaries (one per servable request: no local
alternative survives the pruning there), 947-984 variables and 972-1,026 constraints; HiGHS proves optimality in
0.4-0.5 s on one core (`make bench` records the figures).

On a fleet the box is a share, not a binary, because with a binary per (offer, box) HiGHS can't place the renders:
on the sample month on three boxes (fleet-5090-4090-3090.yaml, seed 2) it was 0.05 % from its proven bound after
300 s, while the shares prove their optimum to 1e-6 in 5-20 s and land on that same bound (seed 7: $57.5871 against
the binaries' proven $57.5870, whose best schedule cost $57.5893). The month then has 1,760 binaries, about 146,000
variables and 9,700 constraints. A render the solution splits between boxes is reported on the box with the largest
share, at its shares' cost rounded down (`Solution.local_work` has each box's seconds).

When not every servable request fits (the GPU is over-subscribed), the optimum first maximises how many are served
on time, then minimises cost with at least that many (two solves).
"""

from __future__ import annotations

import bisect
import dataclasses
import itertools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import ROUND_FLOOR, Decimal
from typing import Any

from hvr.sim.counting import Fit, attempt_cost, estimated_p90_cost, place
from hvr.sim.simulator import JobRecord, window
from hvr.sim.truth import DEFAULT_BOX, LocalBox, Truth
from hvr.sim.workload import Arrival
from router.models.common import ProviderKind
from router.models.offer import Offer

TIME_LIMIT_S = 300.0
SHARE_EPS = 1e-6  # a box's share of a render below this is the solver's noise, not work


@dataclass(frozen=True)
class Candidate:
    request: int
    offer: str
    local: bool
    cost: Decimal
    render_s: float  # realized compute seconds
    ready_s: float  # realized seconds from arrival to delivery (render + transfer, and any wait for an outage)
    window: tuple[float, float]  # when its local render may run: [arrival, deadline - transfer], seconds
    down: tuple[tuple[float, float], ...] = ()  # a local candidate's outages inside its window: no work there
    box: str | None = None  # the GPU box a local candidate renders on


@dataclass(frozen=True)
class Solution:
    served: dict[int, Candidate]  # request → the candidate serving it
    cost: Decimal  # Σ of the served candidates' costs: what the optimum pays
    bound: Decimal  # the solver's proven lower bound on the MILP (= cost when solved to optimality)
    optimal: bool
    variables: int
    binaries: int
    constraints: int
    local_busy_s: float
    status: str
    local_work: dict[int, dict[str, float]] = field(default_factory=dict)  # request → seconds on each box


class Problem:
    """Candidates for every request of a workload, priced once; solved for any subset to serve."""

    def __init__(self, arrivals: Sequence[Arrival], offers: Sequence[Offer], truth: Truth,
                 infeasible: Sequence[bool], start_t: Sequence[float], deadline_t: Sequence[float | None],
                 boxes: Sequence[LocalBox] = (LocalBox(DEFAULT_BOX),)) -> None:
        self.boxes = {box.name: box for box in boxes}
        self.arrival_t = list(start_t)
        self.candidates: dict[int, list[Candidate]] = {}  # after pruning: what the MILP sees
        # Before pruning: every (offer, box) that could serve it (box None for a cloud offer).
        self.eligible: dict[int, frozenset[tuple[str, str | None]]] = {}
        for i, arrival in enumerate(arrivals):
            if infeasible[i]:
                continue
            found = [c for offer in offers
                     for box in (boxes if offer.provider is ProviderKind.LOCAL else (None,))
                     if (c := candidate(i, arrival, offer, truth, start_t[i], deadline_t[i], box)) is not None]
            if found:
                self.candidates[i] = _prune(found)
                self.eligible[i] = frozenset((c.offer, c.box) for c in found)

    @classmethod
    def of(cls, arrivals: Sequence[Arrival], offers: Sequence[Offer], truth: Truth,
           infeasible: Sequence[bool]) -> Problem:
        """The candidates for a workload, on the simulator's clock (seconds from the run's start)."""
        start, _ = window(arrivals)
        arrival_t = [(a.at - start).total_seconds() for a in arrivals]
        deadline_t = [(d - start).total_seconds() if (d := a.deadline()) is not None else None for a in arrivals]
        return cls(arrivals, offers, truth, infeasible, arrival_t, deadline_t, boxes=truth.config.boxes)

    @property
    def slots(self) -> int:
        """Every box's slots together."""
        return sum(box.slots for box in self.boxes.values())

    def servable(self) -> set[int]:
        return set(self.candidates)

    def solve(self, must: Iterable[int] | None = None, time_limit_s: float = TIME_LIMIT_S,
              gap: float = 1e-6, allow_fewer: bool = True) -> Solution:
        """The cheapest way to serve every request of `must` (default: every servable one). When they don't all
        fit together, the most that fit are served, as cheaply as possible — or, without `allow_fewer`, ValueError
        (a set some policy really served must fit: if it doesn't, the model is wrong)."""
        chosen = sorted(self.servable() if must is None else set(must))
        missing = [i for i in chosen if i not in self.candidates]
        if missing:
            raise ValueError(f"requests {missing[:5]} have no candidate offer: they can't be served")
        if not chosen:
            return Solution(served={}, cost=Decimal(0), bound=Decimal(0), optimal=True, variables=0, binaries=0,
                            constraints=0, local_busy_s=0.0, status="nothing to serve")
        first = self._solve(chosen, minimum=None, time_limit_s=time_limit_s, gap=gap)
        if first is not None:
            return first
        if not allow_fewer:
            raise ValueError(f"the {len(chosen)} requests can't all be served on time, even with hindsight")
        most = self._max_served(chosen, time_limit_s)
        second = self._solve(chosen, minimum=most, time_limit_s=time_limit_s, gap=gap)
        assert second is not None, "serving the maximum found must be feasible"
        return second

    # --- the MILP ----------------------------------------------------------------------------------------------

    def _model(self, chosen: list[int]) -> _Model:
        return _Model([c for i in chosen for c in self.candidates[i]], chosen, self.boxes)

    def _solve(self, chosen: list[int], minimum: int | None, time_limit_s: float, gap: float) -> Solution | None:
        from scipy.optimize import Bounds, LinearConstraint, milp  # heavy: only the benchmark needs it

        model = self._model(chosen)
        rows, lower, upper = model.rows(every=minimum is None)
        if minimum is not None:
            rows.append({n: 1.0 for n in range(len(model.choices))})
            lower.append(float(minimum))
            upper.append(float(len(chosen)))
        matrix = model.matrix(rows)
        result = milp(model.objective(), integrality=model.integrality(), bounds=Bounds(*model.bounds()),
                      constraints=LinearConstraint(matrix, lower, upper),
                      options={"time_limit": time_limit_s, "mip_rel_gap": gap, "presolve": True})
        if result.x is None:
            if result.status == 2:  # infeasible: not all of them fit
                return None
            raise RuntimeError(f"the MILP found no solution: {result.message}")
        served, work = model.served(result.x)
        cost = sum((c.cost for c in served.values()), Decimal(0))
        dual = getattr(result, "mip_dual_bound", None)
        bound = cost if dual is None else min(cost, Decimal(dual).quantize(Decimal("0.0001"), rounding=ROUND_FLOOR))
        return Solution(served=served, cost=cost, bound=bound, optimal=result.status == 0,
                        variables=matrix.shape[1], binaries=len(model.choices), constraints=matrix.shape[0],
                        local_busy_s=sum(s for shares in work.values() for s in shares.values()),
                        status=result.message, local_work=work)

    def _max_served(self, chosen: list[int], time_limit_s: float) -> int:
        from scipy.optimize import Bounds, LinearConstraint, milp

        model = self._model(chosen)
        rows, lower, upper = model.rows(every=False)
        result = milp([-v for v in model.ones()], integrality=model.integrality(), bounds=Bounds(*model.bounds()),
                      constraints=LinearConstraint(model.matrix(rows), lower, upper),
                      options={"time_limit": time_limit_s, "mip_rel_gap": 0.0})
        if result.x is None:
            raise RuntimeError(f"the MILP found no solution: {result.message}")
        return round(-result.fun)


class _Model:
    """Variables: one binary per choice (a request's cloud candidate, or one of its local offers on whichever boxes
    hold it), then one continuous share per box of a local choice more than one box holds, then one continuous per
    (request, box, interval): the box's seconds on it there. A choice only one box holds is its own share."""

    def __init__(self, cands: list[Candidate], chosen: list[int], boxes: Mapping[str, LocalBox]) -> None:
        self.cands, self.chosen, self.boxes = cands, chosen, boxes
        grouped: dict[tuple[int, str], list[Candidate]] = {}
        for c in cands:  # a request's candidates for one offer: one per box that holds it
            grouped.setdefault((c.request, c.offer), []).append(c)
        self.choices = list(grouped.values())
        self.split = [c for group in self.choices if len(group) > 1 for c in group]
        self.share: dict[int, int] = {}  # id(candidate) → the column of its share
        for n, group in enumerate(self.choices):
            if len(group) == 1:
                self.share[id(group[0])] = n
        for m, c in enumerate(self.split):
            self.share[id(c)] = len(self.choices) + m
        local = [c for c in cands if c.local]
        cuts = sorted({t for c in local for t in (*c.window, *(t for span in c.down for t in span))})
        self.intervals = list(itertools.pairwise(cuts))
        self.work: list[tuple[int, str, int, float]] = []  # (request, box, interval, length)
        by_request: dict[tuple[int, str], list[Candidate]] = {}
        for c in local:  # a request's local work on a box may run wherever one of its candidates there is up
            by_request.setdefault((c.request, _box_of(c)), []).append(c)
        for (i, box), mine in sorted(by_request.items()):
            lo, hi = min(c.window[0] for c in mine), max(c.window[1] for c in mine)
            first = bisect.bisect_left(cuts, lo)
            for k in range(first, len(self.intervals)):
                a, b = self.intervals[k]
                if a >= hi:
                    break
                # Every outage edge is a cut, so an interval is wholly inside or outside each outage.
                if any(c.window[0] <= a and b <= c.window[1] and not any(x <= a and b <= y for x, y in c.down)
                       for c in mine):
                    self.work.append((i, box, k, b - a))
        self.shares = len(self.choices) + len(self.split)
        self.size = self.shares + len(self.work)

    def objective(self) -> list[float]:
        # A choice several boxes hold costs what its shares cost, each at its own box's price.
        return ([float(group[0].cost) if len(group) == 1 else 0.0 for group in self.choices]
                + [float(c.cost) for c in self.split] + [0.0] * len(self.work))

    def ones(self) -> list[float]:
        return [1.0] * len(self.choices) + [0.0] * (len(self.split) + len(self.work))

    def integrality(self) -> list[int]:
        return [1] * len(self.choices) + [0] * (len(self.split) + len(self.work))

    def bounds(self) -> tuple[list[float], list[float]]:
        return [0.0] * self.size, [1.0] * self.shares + [length for _, _, _, length in self.work]

    def rows(self, every: bool) -> tuple[list[dict[int, float]], list[float], list[float]]:
        rows: list[dict[int, float]] = []
        lower: list[float] = []
        upper: list[float] = []
        by_request: dict[int, dict[int, float]] = {}
        for n, group in enumerate(self.choices):
            by_request.setdefault(group[0].request, {})[n] = 1.0
        for i in self.chosen:
            rows.append(by_request[i])
            lower.append(1.0 if every else 0.0)
            upper.append(1.0)
        for n, group in enumerate(self.choices):  # a split choice's shares add up to it
            if len(group) > 1:
                rows.append({n: -1.0, **{self.share[id(c)]: 1.0 for c in group}})
                lower.append(0.0)
                upper.append(0.0)
        offset = self.shares
        work_rows: dict[tuple[int, str], dict[int, float]] = {}
        capacity: dict[tuple[str, int], dict[int, float]] = {}
        for m, (i, box, k, _) in enumerate(self.work):
            work_rows.setdefault((i, box), {})[offset + m] = 1.0
            capacity.setdefault((box, k), {})[offset + m] = 1.0
        for c in self.cands:
            if c.local:
                work_rows.setdefault((c.request, _box_of(c)), {})[self.share[id(c)]] = -c.render_s
        for row in work_rows.values():
            rows.append(row)
            lower.append(0.0)
            upper.append(0.0)
        for (box, k), row in sorted(capacity.items()):
            a, b = self.intervals[k]
            rows.append(row)
            lower.append(0.0)
            upper.append(self.boxes[box].slots * (b - a))
        return rows, lower, upper

    def served(self, x: Any) -> tuple[dict[int, Candidate], dict[int, dict[str, float]]]:
        """From a solution: the candidate serving each request served, and each local one's seconds per box. A
        render split between boxes is served by the candidate on the box with the largest share, at the cost of its
        shares (rounded down, so the bound stays one)."""
        served: dict[int, Candidate] = {}
        work: dict[int, dict[str, float]] = {}
        for n, group in enumerate(self.choices):
            if x[n] <= 0.5:
                continue
            shares = [(group[0], 1.0)] if len(group) == 1 else \
                [(c, float(x[self.share[id(c)]])) for c in group if x[self.share[id(c)]] > SHARE_EPS]
            if len(shares) == 1:
                shares = [(shares[0][0], 1.0)]  # all of it on one box: that candidate, exactly
            main = max(shares, key=lambda share: share[1])[0]
            if len(shares) > 1:
                mixed = sum((c.cost * Decimal(share) for c, share in shares), Decimal(0))
                main = dataclasses.replace(main, cost=mixed.quantize(Decimal("0.0001"), rounding=ROUND_FLOOR))
            served[main.request] = main
            if main.local:
                work[main.request] = {_box_of(c): c.render_s * share for c, share in shares}
        return served, work

    def matrix(self, rows: list[dict[int, float]]) -> Any:  # a scipy sparse array (scipy ships no types)
        from scipy.sparse import csr_array

        data, cols, pointers = [], [], [0]
        for row in rows:
            for column, value in sorted(row.items()):
                cols.append(column)
                data.append(value)
            pointers.append(len(cols))
        return csr_array((data, cols, pointers), shape=(len(rows), self.size))


def candidate(i: int, arrival: Arrival, offer: Offer, truth: Truth, start: float,
              deadline: float | None, box: LocalBox | None = None) -> Candidate | None:
    """Request `i` on `offer` (a local one on `box`, default the truth's first), or None where it can't be one."""
    placement = place(offer, arrival.request)
    if placement.fit is not Fit.OK or placement.delivered is None:
        return None
    spec = placement.delivered
    if offer.provider is ProviderKind.LOCAL:
        box = box or truth.config.boxes[0]
        if not box.holds(offer, spec):
            return None
        render = truth.render_on(i, offer, spec, box)
    else:
        box = None
        render = truth.render_s(i, offer, spec)
    cost = attempt_cost(offer, spec, render, succeeded=True)
    cap = arrival.request.max_cost_usd
    if cap is not None:
        p90 = estimated_p90_cost(offer, spec)
        if min(cost, p90 if p90 is not None else cost) > cap:
            return None
    transfer = offer.latency.transfer_s
    end = deadline - transfer if deadline is not None else start + 10 * 365 * 86400.0
    outages = [(a, b) for a, b in truth.outages(offer, box.name if box else None) if a < end and b > start]
    if box is not None:
        # Preemptive, like the rest of the GPU's model: the render fits if the window's up-time holds it.
        up = (end - start) - sum(min(b, end) - max(a, start) for a, b in outages)
        if render > up:
            return None
        return Candidate(request=i, offer=offer.id, local=True, cost=cost, render_s=render,
                         ready_s=render + transfer, window=(start, end), down=tuple(outages), box=box.name)
    begin = _first_gap(start, render, outages)
    if begin + render > end:
        return None
    return Candidate(request=i, offer=offer.id, local=False, cost=cost, render_s=render,
                     ready_s=begin - start + render + transfer, window=(start, end))


def _first_gap(start: float, length: float, outages: list[tuple[float, float]]) -> float:
    """The earliest start from `start` at which `length` seconds run clear of every outage (a cloud render can
    wait out an outage, but not span one: a provider going down fails what it runs)."""
    begin = start
    for a, b in sorted(outages):
        if begin + length <= a:
            break
        begin = max(begin, b)
    return begin


def _prune(found: list[Candidate]) -> list[Candidate]:
    """Keep the cheapest cloud candidate, and the local ones cheaper than it that no other local one dominates."""
    cloud = min((c for c in found if not c.local), key=lambda c: (c.cost, c.offer), default=None)
    local = [c for c in found if c.local and (cloud is None or c.cost < cloud.cost)]
    local = [c for c in local if not any(_dominates(o, c) for o in local)]
    return ([cloud] if cloud else []) + sorted(local, key=lambda c: c.offer)


def _dominates(o: Candidate, c: Candidate) -> bool:
    """o does c's job on the same box no later, no dearer, in no less time, and is up whenever c is; strictly
    better somewhere (or first by id on a tie)."""
    if o is c or o.box != c.box or o.render_s > c.render_s or o.cost > c.cost or not set(o.down) <= set(c.down):
        return False
    if o.window[0] > c.window[0] or o.window[1] < c.window[1]:
        return False
    return (o.render_s, o.cost, -o.window[1], o.offer) < (c.render_s, c.cost, -c.window[1], c.offer)


def _box_of(c: Candidate) -> str:
    assert c.box is not None, f"local candidate {c} has no box"
    return c.box


def matched_set(jobs: Sequence[JobRecord], problem: Problem) -> set[int]:
    """What a policy delivered on time on an offer (and box) the bound could have used: the set its own cost must
    cover (solve it with `allow_fewer=False`)."""
    return {job.key for job in jobs if job.on_time and job.final is not None
            and (job.final.offer.id, job.final.box) in problem.eligible.get(job.key, ())}
