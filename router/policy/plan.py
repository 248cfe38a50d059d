"""The campaign planner: pure, `plan(items, params) -> Plan`. No clock, no I/O.

A campaign is routed as a whole. Each item comes with at most two options, both estimated by the routing engine:
its cheapest local offer and its cheapest cloud offer. The local GPU is one machine shared with interactive work,
so the campaign gets a share `1 - interactive_share` of it: a local item of `d` seconds occupies `d / (1 - share)`
seconds of wall time, and local items run in earliest-deadline-first order among the jobs the GPU already holds
(`PlanParams.queue`; without it, back to back from `local_start`, the moment the GPU's current queue drains). A run of
items finishes at the sum of their p50s plus the spread of that sum (`_LocalSchedule`).

Algorithm (greedy by savings density, the classic knapsack rule):
1. Items only the local GPU can render go first, in deadline order; one whose p90 finish would pass its deadline
   is planned last and marked at risk (nothing else can render it in time).
2. Items the local GPU renders more cheaply than the cloud, `savings = cloud - local > 0` (p50 costs), are tried in
   order of savings per local second, highest first; each goes local if every local item still finishes by its
   deadline (EDF), otherwise to its cloud offer. The scan goes on past the first item that doesn't fit.
3. Everything else goes to its cheapest cloud offer that meets the deadline; items with no option are unplanned.
4. Budget: if the plan's p90 total (what reservations will hold) exceeds the budget, items are funded in priority
   order (interactive before batch), cheapest first, and the largest prefix whose plan fits is kept; the rest are
   `unfunded` and wait (pacing).

What holds afterwards (the issue's testable form, checked by tests/unit/test_plan.py):
- A: no cloud item that the local GPU would render more cheaply could be added to the local schedule without some
  local item's p90 finish (or a held job's p50 finish) passing its deadline. The local set only grows during the
  scan and adding work never makes a schedule feasible again, so an item refused once stays refused.
- B: every local item is cheaper locally than on its cloud offer, or has no cloud offer that meets its deadline.
- With one common deadline the local choice is a 0/1 knapsack over GPU seconds; greedy by density is optimal for
  its LP relaxation, so the plan's cost is within the savings of a single item of the optimum.

Re-planning is the same function over the items not yet submitted, with the GPU's queue and availability as they
are now, and the budget that is left.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from decimal import Decimal

from router.models.campaign_plan import Alternative, EntryState, ItemOption, PlanEntry, PlanInput, PlanSummary
from router.models.common import Circuit, Priority, ProviderKind, money
from router.models.decision import Candidate, Chosen, Decision, Refusal
from router.models.job import Job
from router.models.offer import Offer
from router.models.request import VideoRequest
from router.policy.constraints import estimate
from router.policy.context import RoutingContext
from router.policy.engine import route
from router.policy.localqueue import Work

PLAN_REASON = "campaign plan"
_SOFT = frozenset({Refusal.DEADLINE, Refusal.BUDGET})  # judged for the campaign as a whole, not item by item
INF = math.inf
Z90 = 1.2816  # standard normal quantile of 0.9


@dataclass(frozen=True, slots=True)
class PlanParams:
    now: datetime
    local_start: datetime  # when the local GPU can start on this campaign (its current queue drained)
    interactive_share: float = 0.2
    budget_usd: Decimal | None = None  # what the plan may hold in p90 reservations; None: no campaign budget
    local_available: bool = True  # False: the agent is down, nothing is planned on it
    # The GPU's jobs now (`localqueue.Work`, in run order, priced in learned p50s), with `slots`. Given, the plan
    # starts now and places the campaign's items among them as the agent will run them, by deadline, keeping every
    # one of them on time; not given, it starts at `local_start`, after all of them.
    queue: tuple[Work, ...] = ()
    slots: int = 1

    @property
    def rate(self) -> float:
        return max(0.05, 1.0 - self.interactive_share)


@dataclass(frozen=True)
class Plan:
    entries: list[PlanEntry]  # release order: local by planned start, then cloud, unplanned, unfunded
    summary: PlanSummary


# --- options from the engine ---------------------------------------------------------------------------------


def idle_local(context: RoutingContext) -> RoutingContext:
    """The context an item's options are estimated in: the local GPU taken as idle and up, since the plan itself
    decides when local items run and whether the GPU is there for them."""
    local = context.targets.get(ProviderKind.LOCAL)
    if local is None:
        return context
    idle = replace(local, queue_wait_s=0.0, queue=(), up=True, circuit=Circuit.CLOSED)
    return replace(context, targets={**context.targets, ProviderKind.LOCAL: idle})


def item_input(request: VideoRequest, offers: Sequence[Offer], context: RoutingContext, now: datetime,
               deadline: datetime | None, item_id: str, line: int, job_id: str) -> PlanInput:
    """One item as the planner sees it: the engine's cheapest local and cloud options for it in `context` (made
    with `idle_local`)."""
    local, cloud = options(route(request, offers, context, now, deadline), context)
    if local is not None:
        local = local.model_copy(update={"seconds_p50": _p50_seconds(local, offers, context, now)})
    return PlanInput(item_id=item_id, line=line, job_id=job_id, deadline=deadline, priority=request.priority,
                     local=local, cloud=cloud)


def _p50_seconds(option: ItemOption, offers: Sequence[Offer], context: RoutingContext, now: datetime) -> float | None:
    offer = next((o for o in offers if o.id == option.offer), None)
    if offer is None:
        return None
    est = estimate(offer, option.delivered, context.target(offer.id, offer.provider), context.learned.get(offer.id),
                   now)
    return None if est is None else round((est.ready_p50 - now).total_seconds(), 3)


def options(decision: Decision, context: RoutingContext) -> tuple[ItemOption | None, ItemOption | None]:
    """The cheapest local and cheapest cloud option among the engine's candidates.

    Deadline and budget refusals don't disqualify: the campaign's schedule and budget are judged by the planner for
    all items together. Any other reason (mode, quality, size, health, spend mode, …) does."""
    best: dict[bool, ItemOption] = {}
    for cand in decision.candidates:
        if cand.estimated_cost_usd is None or cand.estimated_cost_p90_usd is None or cand.delivered is None:
            continue
        if cand.estimated_ready_at is None or any(r.code not in _SOFT for r in cand.reasons):
            continue
        local = cand.provider is ProviderKind.LOCAL
        target = context.target(cand.offer, cand.provider)
        option = ItemOption(
            offer=cand.offer, provider=cand.provider, target=target.name if target else cand.provider.value,
            cost_usd=cand.estimated_cost_usd, cost_p90_usd=cand.estimated_cost_p90_usd,
            seconds=round((cand.estimated_ready_at - decision.decided_at).total_seconds(), 3),
            score=cand.score or 0.0, delivered=cand.delivered)
        current = best.get(local)
        if current is None or (option.cost_usd, option.offer) < (current.cost_usd, current.offer):
            best[local] = option
    return best.get(True), best.get(False)


# --- the plan --------------------------------------------------------------------------------------------------


def plan(items: Sequence[PlanInput], params: PlanParams) -> Plan:
    if params.budget_usd is not None:
        ordered = sorted(items, key=_funding_key)
        funded = _largest_funded_prefix(ordered, params)
        chosen = _schedule(ordered[:funded], params)
        unfunded = [_unfunded_entry(item) for item in ordered[funded:]]
        entries = chosen + unfunded
    else:
        entries = _schedule(list(items), params)
    return Plan(entries=entries, summary=_summary(items, entries, params))


def _funding_key(item: PlanInput) -> tuple[int, Decimal, str]:
    rank = 0 if item.priority is Priority.INTERACTIVE else 1
    cheapest = min((o.cost_p90_usd for o in (item.local, item.cloud) if o is not None), default=Decimal(0))
    return rank, cheapest, item.item_id


def _largest_funded_prefix(ordered: Sequence[PlanInput], params: PlanParams) -> int:
    assert params.budget_usd is not None
    if _reserved(_schedule(list(ordered), params)) <= params.budget_usd:
        return len(ordered)
    low, high = 0, len(ordered)  # invariant: prefix `low` fits, prefix `high` doesn't
    while high - low > 1:
        middle = (low + high) // 2
        if _reserved(_schedule(list(ordered[:middle]), params)) <= params.budget_usd:
            low = middle
        else:
            high = middle
    return low


def _reserved(entries: Sequence[PlanEntry]) -> Decimal:
    return sum((e.reserve_usd for e in entries if e.offer is not None), Decimal(0))


def _unfunded_entry(item: PlanInput) -> PlanEntry:
    option = _cheapest(item)
    return PlanEntry(item_id=item.item_id, job_id=item.job_id, offer=option.offer if option else None,
                     local=bool(option and option.local), cost_usd=option.cost_usd if option else Decimal(0),
                     reserve_usd=option.cost_p90_usd if option else Decimal(0),
                     seconds=option.seconds if option else 0.0,
                     state=EntryState.UNFUNDED, risk="budget: the campaign budget can't cover it yet")


def _cheapest(item: PlanInput) -> ItemOption | None:
    found = [o for o in (item.local, item.cloud) if o is not None]
    return min(found, key=lambda o: (o.cost_usd, o.offer)) if found else None


class _LocalSchedule:
    """Local items in EDF order; times are seconds from `now`. Each item runs its p50 (`seconds_p50`, else its p90);
    the schedule's p90 finishes are those sums plus `margin`: 1.28 sd of the sum of every item's time, each item's
    sd read from its p50 to p90 gap. Renders vary independently, so n items in a row are late by about √n times one
    item's spread, not n times (as a sum of p90s would have them): the GPU is planned that much fuller. One margin
    for the whole schedule over-covers its early items, and keeps `fits` O(log n): a new item fits if it finishes by
    its own deadline, every later item has its duration of slack and every earlier one the margin's growth."""

    def __init__(self, start_s: float, rate: float) -> None:
        self.start_s = start_s
        self.rate = rate
        self.keys: list[tuple[float, str]] = []
        self.items: list[PlanInput | None] = []  # None: a job the GPU already holds
        self.durations: list[float] = []  # p50 wall seconds of each
        self.due: list[float] = []  # the deadline each is held to (a held job already late: none)
        self.ends: list[float] = []  # cumulative p50 finish of each item
        self.slack: list[float] = []  # suffix minimum of (deadline - p50 finish)
        self.head: list[float] = []  # prefix minimum of the same
        self.variance = 0.0  # of the sum of the scheduled items' wall times

    def wall(self, item: PlanInput) -> float:
        """Its p90 wall time: what it occupies of the GPU's share, run alone."""
        assert item.local is not None
        return item.local.seconds / self.rate

    def _p50_and_variance(self, item: PlanInput) -> tuple[float, float]:
        assert item.local is not None
        p90 = item.local.seconds
        p50 = min(p90, item.local.seconds_p50 if item.local.seconds_p50 is not None else p90)
        return p50 / self.rate, ((p90 - p50) / Z90 / self.rate) ** 2

    @property
    def margin(self) -> float:
        return Z90 * math.sqrt(self.variance)

    def fits(self, item: PlanInput, deadline_s: float) -> bool:
        key = (deadline_s, item.item_id)
        position = bisect.bisect_left(self.keys, key)
        before = self.ends[position - 1] if position else self.start_s
        duration, variance = self._p50_and_variance(item)
        return self._fits(position, before, duration, Z90 * math.sqrt(self.variance + variance), deadline_s)

    def _fits(self, position: int, before: float, duration: float, margin: float, deadline_s: float) -> bool:
        if before + duration + margin > deadline_s:
            return False
        if position and self.head[position - 1] < margin:
            return False
        return position == len(self.keys) or self.slack[position] >= duration + margin

    def add(self, item: PlanInput, deadline_s: float) -> None:
        self._insert((deadline_s, item.item_id), item, deadline_s, *self._p50_and_variance(item))

    def hold(self, queue: Sequence[Work], now: datetime, slots: int) -> None:
        """The jobs the GPU already holds: running ones stay first (the agent never interrupts a render), queued ones
        take their deadlines' places; each its p50 over the GPU's slots, as the GPU's own queue wait counts it. One
        already late by then is held to no deadline: the campaign doesn't change that (as `localqueue.displaces`)."""
        for n, work in enumerate(queue):
            due = _offset(work.due, now)
            key = (-INF, f"!{n:06d}") if work.running else (due, f"~{n:06d}")
            self._insert(key, None, due, work.left_s / max(slots, 1), 0.0)
        self.due = [INF if item is None and end > due else due
                    for item, end, due in zip(self.items, self.ends, self.due, strict=True)]
        self._minima()

    def _insert(self, key: tuple[float, str], item: PlanInput | None, due: float, duration: float,
                variance: float) -> None:
        position = bisect.bisect_left(self.keys, key)
        self.keys.insert(position, key)
        self.items.insert(position, item)
        self.due.insert(position, due)
        self.durations.insert(position, duration)
        self.ends.insert(position, 0.0)
        self.slack.insert(position, 0.0)
        self.head.insert(position, 0.0)
        self.variance += variance
        running = self.ends[position - 1] if position else self.start_s
        for i in range(position, len(self.items)):
            running += self.durations[i]
            self.ends[i] = running
        self._minima()

    def _minima(self) -> None:
        tail = INF
        for i in range(len(self.items) - 1, -1, -1):
            tail = min(tail, self.due[i] - self.ends[i])
            self.slack[i] = tail
        lead = INF
        for i in range(len(self.items)):
            lead = min(lead, self.due[i] - self.ends[i])
            self.head[i] = lead


def _schedule(items: list[PlanInput], params: PlanParams) -> list[PlanEntry]:
    now = params.now
    deadline_s = {i.item_id: _offset(i.deadline, now) for i in items}
    if params.queue:
        schedule = _LocalSchedule(0.0, params.rate)
        schedule.hold(params.queue, now, params.slots)
    else:
        schedule = _LocalSchedule(max(0.0, (params.local_start - now).total_seconds()), params.rate)
    local_of = {i.item_id: i.local if params.local_available else None for i in items}
    cloud_of = {i.item_id: i.cloud if i.cloud and i.cloud.seconds <= deadline_s[i.item_id] else None for i in items}

    late: list[PlanInput] = []
    only_local = sorted((i for i in items if local_of[i.item_id] and not cloud_of[i.item_id]),
                        key=lambda i: (deadline_s[i.item_id], i.item_id))
    for item in only_local:
        if schedule.fits(item, deadline_s[item.item_id]):
            schedule.add(item, deadline_s[item.item_id])
        else:
            late.append(item)

    def density(item: PlanInput) -> tuple[float, Decimal, str]:
        local, cloud = local_of[item.item_id], cloud_of[item.item_id]
        assert local is not None and cloud is not None
        savings = cloud.cost_usd - local.cost_usd
        per_second = float(savings) / local.seconds if local.seconds > 0 else INF
        return -per_second, -savings, item.item_id

    cheaper_locally = sorted((i for i in items if (l_opt := local_of[i.item_id]) and (c_opt := cloud_of[i.item_id])
                              and l_opt.cost_usd < c_opt.cost_usd), key=density)
    for item in cheaper_locally:
        if schedule.fits(item, deadline_s[item.item_id]):
            schedule.add(item, deadline_s[item.item_id])

    entries: list[PlanEntry] = []
    on_local = {i.item_id for i in schedule.items if i is not None} | {i.item_id for i in late}
    previous = schedule.start_s
    margin = schedule.margin
    for held, end in zip(schedule.items, schedule.ends, strict=True):
        if held is not None:
            entries.append(_entry(held, local_of[held.item_id], now, previous, end + margin))  # its p90 finish
        previous = end
    previous += margin
    for item in late:  # after everything that can still make it, so they delay nothing
        end = previous + schedule.wall(item)
        entries.append(_entry(item, local_of[item.item_id], now, previous, end,
                              risk="deadline: the local GPU can't finish it in time and no cloud offer can render it"))
        previous = end
    for item in sorted(items, key=lambda i: (i.line, i.item_id)):
        if item.item_id in on_local:
            continue
        cloud = cloud_of[item.item_id]
        if cloud is not None:
            entries.append(_entry(item, cloud, now, 0.0, cloud.seconds))
        else:
            entries.append(PlanEntry(item_id=item.item_id, job_id=item.job_id, offer=None,
                                     risk=_no_offer_reason(item, params)))
    return entries


def _entry(item: PlanInput, option: ItemOption | None, now: datetime, start_s: float, end_s: float,
           risk: str | None = None) -> PlanEntry:
    assert option is not None
    return PlanEntry(item_id=item.item_id, job_id=item.job_id, offer=option.offer, local=option.local,
                     start=now + timedelta(seconds=start_s), finish=now + timedelta(seconds=end_s),
                     cost_usd=option.cost_usd, reserve_usd=option.cost_p90_usd, seconds=option.seconds, risk=risk)


def _no_offer_reason(item: PlanInput, params: PlanParams) -> str:
    if item.local is None and item.cloud is None:
        return "no_offer: no offer can render this request"
    if item.local is not None and not params.local_available:
        return "no_offer: the local GPU is down and no cloud offer can render it in time"
    return "no_offer: no offer can render it before its deadline"


def _offset(moment: datetime | None, now: datetime) -> float:
    return INF if moment is None else (moment - now).total_seconds()


# --- what the plan is worth, against the alternatives --------------------------------------------------------


def _summary(items: Sequence[PlanInput], entries: Sequence[PlanEntry], params: PlanParams) -> PlanSummary:
    funded = [e for e in entries if e.state is not EntryState.UNFUNDED]
    planned = [e for e in funded if e.offer is not None]
    cost = sum((e.cost_usd for e in planned), Decimal(0))
    finishes = [e.finish for e in planned if e.finish is not None]
    local_busy = sum((e.seconds for e in planned if e.local), 0.0)
    return PlanSummary(
        planned_at=params.now, items=len(items), local_items=sum(1 for e in planned if e.local),
        cloud_items=sum(1 for e in planned if not e.local), unplanned_items=len(funded) - len(planned),
        unfunded_items=len(entries) - len(funded), planned_cost_usd=money(cost),
        finish_at=max(finishes, default=None), local_busy_s=round(local_busy, 3),
        all_cloud=_all_cloud(items, params), all_local=_all_local(items, params))


def _all_cloud(items: Sequence[PlanInput], params: PlanParams) -> Alternative:
    """Every item on its cheapest cloud offer, deadline or not (items only the GPU renders stay local)."""
    cost, late, impossible, finish = Decimal(0), 0, 0, None
    for item in items:
        if item.cloud is None:
            impossible += 1
            cost += item.local.cost_usd if item.local else Decimal(0)
            continue
        cost += item.cloud.cost_usd
        end = params.now + timedelta(seconds=item.cloud.seconds)
        late += item.deadline is not None and end > item.deadline
        finish = end if finish is None else max(finish, end)
    return Alternative(cost_usd=money(cost), finish_at=finish, items_late=late, items_impossible=impossible)


def _all_local(items: Sequence[PlanInput], params: PlanParams) -> Alternative:
    """Every item the GPU can render rendered there, in deadline order, at the campaign's share of the GPU."""
    cost, late, impossible = Decimal(0), 0, 0
    clock = max(params.local_start, params.now)
    for item in sorted(items, key=lambda i: (_offset(i.deadline, params.now), i.item_id)):
        if item.local is None:
            impossible += 1
            cost += item.cloud.cost_usd if item.cloud else Decimal(0)
            continue
        cost += item.local.cost_usd
        clock += timedelta(seconds=item.local.seconds / params.rate)
        late += item.deadline is not None and clock > item.deadline
    finish = clock if len(items) > impossible else None
    return Alternative(cost_usd=money(cost), finish_at=finish, items_late=late, items_impossible=impossible)


# --- the worker follows the plan -------------------------------------------------------------------------------


def planned_offer(job: Job) -> str | None:
    """The offer the campaign plan gave a job that hasn't been routed yet (its routing is the plan's decision)."""
    chosen = job.routing.chosen if job.routing is not None else None
    if job.attempts or chosen is None or not chosen.reason.startswith(PLAN_REASON):
        return None
    return chosen.offer


def follow_plan(decision: Decision, offer_id: str | None, context: RoutingContext) -> Decision:
    """The engine's decision, with the planned offer chosen instead whenever the engine still finds it feasible.
    When it doesn't (agent down, queue longer than planned, circuit open, budget moved), the engine's own choice
    stands: the job is routed afresh."""
    chosen = decision.chosen
    if offer_id is None or chosen is None or chosen.offer == offer_id:
        return decision
    planned = next((c for c in decision.candidates if c.offer == offer_id and c.feasible), None)
    if planned is None:
        return decision
    return choose_instead(decision, planned, context,
                          f"{PLAN_REASON}: {planned.offer} is still feasible (the engine alone would pick "
                          f"{chosen.offer})") or decision


def choose_instead(decision: Decision, candidate: Candidate, context: RoutingContext, reason: str) -> Decision | None:
    """The decision with a feasible candidate of its own table chosen instead of the engine's pick, which becomes
    the first fallback; None when the candidate lacks the figures a choice needs."""
    chosen = decision.chosen
    if chosen is None or not candidate.feasible or candidate.estimated_cost_usd is None \
            or candidate.estimated_cost_p90_usd is None or candidate.estimated_ready_at is None \
            or candidate.delivered is None:
        return None
    if chosen.offer == candidate.offer:
        return decision
    # A fleet's box as the engine placed the offer; else the offer's one target.
    target = candidate.target or getattr(context.target(candidate.offer, candidate.provider), "name", None)
    instead = Chosen(
        offer=candidate.offer, provider=candidate.provider, target=target or candidate.provider.value,
        estimated_cost_usd=candidate.estimated_cost_usd, estimated_cost_p90_usd=candidate.estimated_cost_p90_usd,
        estimated_ready_at=candidate.estimated_ready_at, score=candidate.score or 0.0, delivered=candidate.delivered,
        reason=reason)
    fallbacks = [chosen.offer, *(f for f in decision.fallbacks if f != candidate.offer)]
    return replace(decision, chosen=instead, fallbacks=fallbacks)
