"""The campaign planner (router/policy/plan.py): the issue's testable form, checked by properties and examples.

A: no cloud item that the local GPU renders more cheaply could join the local schedule without some local item's
   p90 finish passing its deadline.  B: no local item could move to the cloud more cheaply.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from router.models.campaign_plan import EntryState, ItemOption, PlanEntry, PlanInput
from router.models.common import Priority, ProviderKind, utcnow
from router.models.decision import Candidate, Chosen, Decision, DeliveredSpec
from router.models.job import Attempt, Job, JobStatus
from router.models.request import VideoRequest
from router.policy.catalog import load_catalog
from router.policy.context import RoutingContext, TargetState
from router.policy.engine import route
from router.policy.localqueue import Work
from router.policy.plan import PLAN_REASON, PlanParams, follow_plan, options, plan, planned_offer

NOW = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
SPEC = DeliveredSpec(width=832, height=480, frames=81, fps=16.0)


def option(local: bool, cost: str | Decimal, seconds: float, p90: str | Decimal | None = None) -> ItemOption:
    return ItemOption(offer="local/wan21-1.3b" if local else "replicate/wan-2.2-t2v-fast",
                      provider=ProviderKind.LOCAL if local else ProviderKind.REPLICATE,
                      target="agent-1" if local else "replicate", cost_usd=Decimal(cost),
                      cost_p90_usd=Decimal(p90 if p90 is not None else cost), seconds=seconds, delivered=SPEC)


def item(n: int, local: ItemOption | None, cloud: ItemOption | None, deadline: datetime | None,
         priority: Priority = Priority.BATCH) -> PlanInput:
    return PlanInput(item_id=f"i{n:03d}", line=n + 1, job_id=f"job_{n:03d}", deadline=deadline, priority=priority,
                     local=local, cloud=cloud)


def edf_feasible(items: Sequence[PlanInput], params: PlanParams) -> bool:
    """Independent of the planner's own bookkeeping: run the set back to back in deadline order."""
    clock = (params.local_start - params.now).total_seconds()
    for it in sorted(items, key=lambda i: (i.deadline or datetime.max.replace(tzinfo=UTC), i.item_id)):
        assert it.local is not None
        clock += it.local.seconds / params.rate
        if it.deadline is not None and params.now + timedelta(seconds=clock) > it.deadline:
            return False
    return True


def cloud_meets(it: PlanInput, params: PlanParams) -> bool:
    return it.cloud is not None and (it.deadline is None
                                     or params.now + timedelta(seconds=it.cloud.seconds) <= it.deadline)


def local_entries(entries: Sequence[PlanEntry]) -> list[PlanEntry]:
    return [e for e in entries if e.local and e.offer is not None and e.risk is None
            and e.state is not EntryState.UNFUNDED]


# --- strategies ---------------------------------------------------------------------------------------------

costs = st.decimals(min_value=Decimal("0.01"), max_value=Decimal("5.00"), places=2)


@st.composite
def campaigns(draw: st.DrawFn, common_deadline: bool = False, always_both: bool = False) -> tuple[list[PlanInput],
                                                                                                      PlanParams]:
    common = NOW + timedelta(seconds=draw(st.integers(600, 120_000)))
    items = []
    for n in range(draw(st.integers(0, 10))):
        has_local = always_both or draw(st.integers(0, 4)) > 0
        has_cloud = always_both or draw(st.integers(0, 4)) > 0
        local = option(True, draw(costs), draw(st.integers(60, 30_000))) if has_local else None
        cloud = option(False, draw(costs), draw(st.integers(30, 2_000))) if has_cloud else None
        if common_deadline:
            deadline: datetime | None = common
        else:
            deadline = draw(st.one_of(st.none(), st.integers(60, 150_000).map(lambda s: NOW + timedelta(seconds=s))))
        priority = draw(st.sampled_from(list(Priority)))
        items.append(item(n, local, cloud, deadline, priority))
    params = PlanParams(now=NOW, local_start=NOW + timedelta(seconds=draw(st.integers(0, 8_000))),
                        interactive_share=draw(st.sampled_from([0.0, 0.2, 0.5])))
    return items, params


# --- the testable form -----------------------------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(campaigns())
def test_every_item_is_planned_once_and_the_local_schedule_keeps_every_deadline(case) -> None:
    items, params = case
    entries = plan(items, params).entries
    assert sorted(e.item_id for e in entries) == sorted(i.item_id for i in items)
    by_id = {i.item_id: i for i in items}
    on_time = local_entries(entries)
    assert edf_feasible([by_id[e.item_id] for e in on_time], params)
    for entry in on_time:
        deadline = by_id[entry.item_id].deadline
        assert entry.finish is not None and (deadline is None or entry.finish <= deadline)
    starts = [e.start for e in entries if e.local and e.start is not None]
    assert starts == sorted(starts), "local items run back to back in planned order"
    for entry in entries:
        if entry.offer is not None and not entry.local:
            assert cloud_meets(by_id[entry.item_id], params), "a cloud item is planned only on an offer in time"


@settings(max_examples=300, deadline=None)
@given(campaigns())
def test_a_no_cheaper_cloud_item_could_join_the_local_schedule(case) -> None:
    items, params = case
    entries = plan(items, params).entries
    by_id = {i.item_id: i for i in items}
    local_set = [by_id[e.item_id] for e in local_entries(entries)]
    for entry in entries:
        it = by_id[entry.item_id]
        if entry.local or entry.offer is None or it.local is None or it.cloud is None:
            continue
        if it.local.cost_usd < it.cloud.cost_usd:
            assert not edf_feasible([*local_set, it], params), f"{it.item_id} would fit locally, more cheaply"


@settings(max_examples=300, deadline=None)
@given(campaigns())
def test_b_no_local_item_could_move_to_the_cloud_more_cheaply(case) -> None:
    items, params = case
    by_id = {i.item_id: i for i in items}
    for entry in plan(items, params).entries:
        it = by_id[entry.item_id]
        if entry.local and entry.offer is not None and cloud_meets(it, params):
            assert it.local is not None and it.cloud is not None
            assert it.local.cost_usd < it.cloud.cost_usd


@settings(max_examples=200, deadline=None)
@given(campaigns(common_deadline=True, always_both=True))
def test_with_one_deadline_the_cost_is_within_one_items_savings_of_the_optimum(case) -> None:
    """Exhaustive over every subset of items on the GPU (each item has both options)."""
    items, params = case
    items = [i for i in items if cloud_meets(i, params)]
    result = plan(items, params)
    cost = sum((e.cost_usd for e in result.entries), Decimal(0))
    best = min(
        sum((i.local.cost_usd if i in chosen else i.cloud.cost_usd for i in items), Decimal(0))  # type: ignore[union-attr]
        for size in range(len(items) + 1) for chosen in itertools.combinations(items, size)
        if edf_feasible(chosen, params))
    largest_saving = max((i.cloud.cost_usd - i.local.cost_usd for i in items), default=Decimal(0))  # type: ignore[union-attr]
    assert best <= cost <= best + max(largest_saving, Decimal(0))
    assert result.summary.planned_cost_usd == cost


@settings(max_examples=200, deadline=None)
@given(campaigns(), st.decimals(min_value=Decimal("0.00"), max_value=Decimal("20.00"), places=2))
def test_a_budget_is_never_planned_past_and_the_lowest_priority_costliest_items_wait(case, budget) -> None:
    items, params = case
    params = replace(params, budget_usd=budget)
    entries = plan(items, params).entries
    funded = [e for e in entries if e.state is not EntryState.UNFUNDED]
    waiting = [e for e in entries if e.state is EntryState.UNFUNDED]
    assert sum((e.reserve_usd for e in funded if e.offer is not None), Decimal(0)) <= budget
    assert all(e.risk and e.risk.startswith("budget:") for e in waiting)
    by_id = {i.item_id: i for i in items}
    if waiting and funded:
        def rank(entry: PlanEntry) -> tuple[int, Decimal]:
            it = by_id[entry.item_id]
            cheapest = min(o.cost_p90_usd for o in (it.local, it.cloud) if o is not None) if (
                it.local or it.cloud) else Decimal(0)
            return (0 if it.priority is Priority.INTERACTIVE else 1), cheapest
        assert max(rank(e) for e in funded) <= min(rank(e) for e in waiting)


@settings(max_examples=100, deadline=None)
@given(campaigns())
def test_without_the_gpu_nothing_is_planned_on_it(case) -> None:
    items, params = case
    entries = plan(items, replace(params, local_available=False)).entries
    assert not any(e.local for e in entries if e.offer is not None)
    by_id = {i.item_id: i for i in items}
    for entry in entries:
        if entry.offer is None:
            assert not cloud_meets(by_id[entry.item_id], params) and entry.risk


# --- examples -------------------------------------------------------------------------------------------------


def test_a_deadline_the_gpu_alone_cannot_meet_spills_exactly_enough_to_the_cloud() -> None:
    # 10 items, 2,000 p90 s each at 80 % of the GPU = 2,500 s of wall time each; 6 fit before the deadline.
    deadline = NOW + timedelta(seconds=6 * 2500 + 1000)
    items = [item(n, option(True, "0.10", 2000), option(False, "0.50", 60), deadline) for n in range(10)]
    result = plan(items, PlanParams(now=NOW, local_start=NOW, interactive_share=0.2))
    assert [e.local for e in result.entries].count(True) == 6
    summary = result.summary
    assert (summary.local_items, summary.cloud_items) == (6, 4)
    assert summary.planned_cost_usd == Decimal("2.6000")  # 6 x 0.10 + 4 x 0.50
    assert summary.all_cloud.cost_usd == Decimal("5.0000") and summary.all_cloud.items_late == 0
    assert summary.all_local.cost_usd == Decimal("1.0000") and summary.all_local.items_late == 4
    assert summary.finish_at == NOW + timedelta(seconds=6 * 2500)
    # One more item's worth of time and one more goes local.
    later = [i.model_copy(update={"deadline": deadline + timedelta(seconds=2500)}) for i in items]
    assert plan(later, PlanParams(now=NOW, local_start=NOW, interactive_share=0.2)).summary.local_items == 7


def test_a_run_of_local_items_is_planned_at_the_sum_of_its_p50s_plus_the_spread_of_that_sum() -> None:
    # p50 1,000 s, p90 1,500 s each, the whole GPU (no interactive share), 12,000 s to the deadline. As a sum of p90s
    # 8 fit; renders vary independently, so the p90 of ten in a row is 10 x 1,000 + 1.28 sd x sqrt(10) = 11,581 s:
    # 10 fit, and the eleventh (12,658 s) doesn't.
    deadline = NOW + timedelta(seconds=12_000)
    p50 = {"seconds_p50": 1000.0}
    items = [item(n, option(True, "0.10", 1500).model_copy(update=p50), option(False, "0.50", 60), deadline)
             for n in range(14)]
    params = PlanParams(now=NOW, local_start=NOW, interactive_share=0.0)
    result = plan(items, params)
    local = local_entries(result.entries)
    assert len(local) == 10
    margin = 500 * math.sqrt(10)  # 1.2816 sd, each item's sd being its p50-p90 gap over 1.2816
    assert all(abs((e.finish - NOW).total_seconds() - (1000 * (n + 1) + margin)) < 1e-3 for n, e in enumerate(local))
    assert all(e.finish is not None and e.finish <= deadline for e in local)
    # Without a p50 (a plan input stored before the planner was told it) every item counts its p90: 8 fit.
    assert len(local_entries(plan([i.model_copy(update={"local": option(True, "0.10", 1500)}) for i in items],
                                  params).entries)) == 8


def test_the_growing_margin_never_makes_an_earlier_item_late() -> None:
    # A, due at 1,600 s, fits alone (1,000 + 500); B, due much later, would widen the margin to 707 s and push A's p90
    # finish past its deadline, so B goes to the cloud.
    p50 = {"seconds_p50": 1000.0}
    first = item(0, option(True, "0.10", 1500).model_copy(update=p50), None, NOW + timedelta(seconds=1600))
    second = item(1, option(True, "0.10", 1500).model_copy(update=p50), option(False, "0.50", 60),
                  NOW + timedelta(seconds=10_000))
    entries = {e.item_id: e for e in plan([first, second], PlanParams(now=NOW, local_start=NOW,
                                                                     interactive_share=0.0)).entries}
    assert entries["i000"].local and entries["i000"].risk is None
    assert entries["i000"].finish == NOW + timedelta(seconds=1500)
    assert not entries["i001"].local


def test_items_go_among_the_gpus_jobs_by_deadline_and_make_none_of_them_late() -> None:
    # The GPU renders one job (3,000 s left) and holds others; the campaign's items (1,000 s each, no spread) are due
    # at 8,000 s. Planned after the whole queue, none would fit; the agent runs by deadline, so they go before
    # anything due later, as long as that still finishes in time, and a job already late is no reason to refuse.
    due = NOW + timedelta(seconds=8000)
    items = [item(n, option(True, "0.10", 1000), option(False, "0.50", 60), due) for n in range(8)]

    def local_count(*queue: Work) -> int:
        params = PlanParams(now=NOW, local_start=NOW + timedelta(seconds=sum(w.left_s for w in queue)),
                            interactive_share=0.0, queue=queue)
        return len(local_entries(plan(items, params).entries))

    running = Work(3000.0, NOW + timedelta(seconds=50_000), running=True)
    later = Work(5000.0, NOW + timedelta(seconds=20_000))
    assert local_count(running, later, Work(10_000.0, None)) == 5  # 3,000 + 5 x 1,000 <= 8,000; later done by 13,000
    assert local_count(running, Work(5000.0, NOW + timedelta(seconds=9000))) == 1  # that one must still finish by 9,000
    assert local_count(running, Work(7000.0, NOW + timedelta(seconds=9000))) == 5  # late anyway (10,000): no bar
    assert len(local_entries(plan(items, PlanParams(now=NOW, local_start=NOW + timedelta(seconds=18_000),
                                                   interactive_share=0.0)).entries)) == 0  # the queue drained first
    entries = plan(items, PlanParams(now=NOW, local_start=NOW, interactive_share=0.0, queue=(running, later))).entries
    assert [e.start for e in local_entries(entries)][:2] == [NOW + timedelta(seconds=3000),
                                                             NOW + timedelta(seconds=4000)]


def test_the_gpu_takes_the_largest_savings_per_second_first() -> None:
    deadline = NOW + timedelta(seconds=1000)
    dense = item(0, option(True, "0.10", 500), option(False, "1.10", 60), deadline)  # $2.00 saved per 1,000 s
    sparse = item(1, option(True, "0.10", 900), option(False, "1.50", 60), deadline)  # $1.56 per 1,000 s
    entries = {e.item_id: e for e in plan([sparse, dense], PlanParams(now=NOW, local_start=NOW,
                                                                       interactive_share=0.0)).entries}
    assert entries["i000"].local and not entries["i001"].local


def test_items_only_the_gpu_renders_go_first_and_the_late_ones_are_flagged() -> None:
    deadline = NOW + timedelta(seconds=3000)
    only_local = [item(n, option(True, "0.30", 1000), None, deadline) for n in range(4)]
    cheaper_locally = item(9, option(True, "0.01", 500), option(False, "5.00", 60), deadline)
    entries = plan([*only_local, cheaper_locally], PlanParams(now=NOW, local_start=NOW,
                                                              interactive_share=0.0)).entries
    on_time = [e.item_id for e in entries if e.local and e.risk is None]
    late = [e for e in entries if e.risk]
    assert on_time == ["i000", "i001", "i002"] and [e.item_id for e in late] == ["i003"]
    assert late[0].risk is not None and late[0].risk.startswith("deadline:")
    assert next(e for e in entries if e.item_id == "i009").offer == "replicate/wan-2.2-t2v-fast"


def test_an_item_nothing_can_render_is_unplanned_with_the_reason() -> None:
    [entry] = plan([item(0, None, None, None)], PlanParams(now=NOW, local_start=NOW)).entries
    assert entry.offer is None and entry.risk is not None and entry.risk.startswith("no_offer:")


def test_re_planning_with_the_gpu_busy_longer_spills_held_items() -> None:
    deadline = NOW + timedelta(seconds=10_000)
    items = [item(n, option(True, "0.10", 2000), option(False, "0.50", 60), deadline) for n in range(4)]
    assert plan(items, PlanParams(now=NOW, local_start=NOW, interactive_share=0.0)).summary.local_items == 4
    busy = PlanParams(now=NOW, local_start=NOW + timedelta(seconds=5000), interactive_share=0.0)
    assert plan(items, busy).summary.local_items == 2


# --- options from the engine ------------------------------------------------------------------------------------


def test_options_are_the_cheapest_local_and_cloud_offers_ignoring_only_deadline_and_budget() -> None:
    catalog = load_catalog()
    context = RoutingContext(configured=frozenset(ProviderKind),
                             targets={k: TargetState(name=k.value) for k in ProviderKind})
    request = VideoRequest(mode="t2v", prompt="a boat", resolution="480p", duration_s=5,
                           deadline=NOW + timedelta(seconds=600))  # too soon for the GPU
    decision = route(request, catalog.offers, context, NOW)
    local, cloud = options(decision, context)
    assert local is not None and local.offer == "local/wan21-1.3b" and local.target == "local"
    assert any(r.code == "deadline" for c in decision.candidates if c.offer == local.offer for r in c.reasons)
    assert cloud is not None and cloud.offer == "replicate/wan-2.2-t2v-fast"
    assert local.seconds > 600 and cloud.seconds < 600
    square = VideoRequest(mode="t2v", prompt="a boat", resolution="512x512", aspect_ratio="1:1", quality="draft")
    assert options(route(square, catalog.offers, context, NOW), context)[1] is None  # no cloud renders 512x512


# --- the worker follows the plan ----------------------------------------------------------------------------------


def _candidate(offer: str, provider: ProviderKind, cost: str, feasible: bool = True) -> Candidate:
    return Candidate(offer=offer, provider=provider, feasible=feasible, reasons=[] if feasible else ["deadline: x"],
                     estimated_cost_usd=Decimal(cost), estimated_cost_p90_usd=Decimal(cost),
                     estimated_ready_at=NOW + timedelta(seconds=60), score=0.5 if feasible else None, delivered=SPEC)


def _engine_decision(planned_feasible: bool) -> Decision:
    chosen = Chosen(offer="local/wan21-1.3b", provider=ProviderKind.LOCAL, target="agent-1",
                    estimated_cost_usd=Decimal("0.01"), estimated_cost_p90_usd=Decimal("0.01"),
                    estimated_ready_at=NOW, score=0.9, delivered=SPEC, reason="best of 2")
    return Decision(chosen=chosen, fallbacks=["replicate/wan-2.2-t2v-fast"] if planned_feasible else [],
                    candidates=[_candidate("local/wan21-1.3b", ProviderKind.LOCAL, "0.01"),
                                _candidate("replicate/wan-2.2-t2v-fast", ProviderKind.REPLICATE, "0.05",
                                           feasible=planned_feasible)],
                    reasons=[], decided_at=NOW)


def test_the_planned_offer_is_kept_while_the_engine_finds_it_feasible() -> None:
    context = RoutingContext(targets={ProviderKind.REPLICATE: TargetState(name="replicate")})
    followed = follow_plan(_engine_decision(True), "replicate/wan-2.2-t2v-fast", context)
    assert followed.chosen is not None and followed.chosen.offer == "replicate/wan-2.2-t2v-fast"
    assert followed.chosen.reason.startswith(PLAN_REASON) and followed.chosen.target == "replicate"
    assert followed.fallbacks == ["local/wan21-1.3b"]


def test_an_infeasible_planned_offer_is_routed_afresh() -> None:
    engine = _engine_decision(False)
    assert follow_plan(engine, "replicate/wan-2.2-t2v-fast", RoutingContext()) is engine
    assert follow_plan(engine, None, RoutingContext()) is engine


@pytest.mark.parametrize(("reason", "attempts", "expected"), [
    (f"{PLAN_REASON}: the cloud", 0, "replicate/wan-2.2-t2v-fast"),
    ("best of 3 feasible", 0, None),  # the engine's own decision, not a plan
    (f"{PLAN_REASON}: the cloud", 1, None),  # routed already: fallbacks are the engine's business
])
def test_planned_offer_is_read_only_from_a_not_yet_routed_plan(reason: str, attempts: int,
                                                               expected: str | None) -> None:
    chosen = Chosen(offer="replicate/wan-2.2-t2v-fast", provider=ProviderKind.REPLICATE, target="replicate",
                    estimated_cost_usd=Decimal("0.05"), estimated_cost_p90_usd=Decimal("0.05"),
                    estimated_ready_at=NOW, score=0.0, delivered=SPEC, reason=reason)
    now = utcnow()
    job = Job(id="job_x", tenant="t", status=JobStatus.ACCEPTED, created_at=now, updated_at=now,
              request=VideoRequest(mode="t2v", prompt="x"),
              routing=Decision(chosen=chosen, fallbacks=[], candidates=[], reasons=[], decided_at=now),
              attempts=[Attempt(n=1, id="att_x_1", offer=chosen.offer, provider=chosen.provider, target="replicate",
                                started_at=now, delivered=SPEC, estimated_cost_usd=Decimal("0.05"))][:attempts])
    assert planned_offer(job) == expected
