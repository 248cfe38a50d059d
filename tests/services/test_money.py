"""One figure for "spent in scope S for period P" — the ledger's — behind budgets, cost reports, roll-over, the daily
drift check and budget refusals; on the stores' twins (tests/twins.py)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal

from router.models.budget import BudgetUpdate, period_of
from router.models.common import ProviderKind
from router.models.job import JobStatus
from router.models.request import VideoRequest
from router.services import money, submit
from router.services.costs import GroupBy, cost_report
from router.services.quote import quote
from router.services.sweeper import daily
from tests.twins import ScriptedVeo, Twins, twins

REQUEST = {"mode": "t2v", "prompt": "a lighthouse at dusk", "resolution": "720p", "duration_s": 4,
           "deadline_s": 6 * 3600}
MID_MONTH = datetime(2026, 12, 4, 12, tzinfo=UTC)


def rendered(videos: int, tenant: str = "acme") -> Twins:
    world = twins({ProviderKind.VEO: ScriptedVeo(["ok"] * videos)}, clock=lambda: MID_MONTH,
                  HVR_EXPLORATION_SHARE="0")
    for _ in range(videos):
        submit.accept(VideoRequest.parse_at_edge(REQUEST), tenant, world.deps)
        world.run()
    return world


def ledger_total(world: Twins, scope: str) -> Decimal:
    return money.spent(world.deps, [scope], period_of(MID_MONTH))[scope]


def test_a_budget_set_mid_period_counts_what_the_scope_already_spent() -> None:
    world = rendered(2)
    already = ledger_total(world, "tenant:acme")
    assert already > 0
    budget = money.set_budget(world.deps, "tenant:acme", BudgetUpdate(limit_usd=Decimal(5)), MID_MONTH, "api:ops")
    assert budget.spent_usd == already and budget.remaining_usd == Decimal(5) - already
    # The cost report over the same month says the same, to the cent.
    report = cost_report(world.deps.ledger, MID_MONTH.date().replace(day=1), MID_MONTH.date(), GroupBy.TENANT, None)
    assert sum((g.actual_usd for g in report.groups if g.key == "acme"), Decimal(0)) == already
    assert ledger_total(world, "tenant:beta") == 0 and ledger_total(world, "global") == already


def test_a_changed_budget_keeps_its_count_and_a_later_render_settles_into_it() -> None:
    world = rendered(1)
    money.set_budget(world.deps, "tenant:acme", BudgetUpdate(limit_usd=Decimal(5)), MID_MONTH, "api:ops")
    submit.accept(VideoRequest.parse_at_edge(REQUEST), "acme", world.deps)
    world.deps.providers[ProviderKind.VEO].endings.append("ok")  # type: ignore[attr-defined]
    world.run()
    changed = money.set_budget(world.deps, "tenant:acme", BudgetUpdate(limit_usd=Decimal(9)), MID_MONTH, "api:ops")
    assert changed.spent_usd == ledger_total(world, "tenant:acme") and changed.reserved_usd == 0
    assert money.drift(world.deps, period_of(MID_MONTH)) == []


def test_the_daily_check_finds_a_counter_that_left_the_ledger_and_alerts_once() -> None:
    world = rendered(1)
    money.set_budget(world.deps, "global", BudgetUpdate(limit_usd=Decimal(5)), MID_MONTH, "api:ops")
    assert daily(world.deps).drift == [] and world.alerts.published == []
    # A row the budget never settled (say, written by hand while reconciling): the ledger moved, the counter didn't.
    [row] = world.deps.ledger.for_period(period_of(MID_MONTH))
    world.deps.ledger.record(row.model_copy(update={"attempt_id": "att_by_hand", "job_id": "job_by_hand"}))
    [found] = daily(world.deps).drift
    assert (found.scope, found.budget_spent_usd, found.ledger_spent_usd) == ("global", row.actual_usd,
                                                                             2 * row.actual_usd)
    [(message, subject)] = world.alerts.published
    assert json.loads(message)["budgets"][0]["ledger_spent_usd"] == str(2 * row.actual_usd)
    assert subject == "hvr budget drift in 1 budget(s)"


def test_a_new_month_starts_its_budgets_from_what_the_ledger_already_holds_for_it() -> None:
    world = rendered(0)
    money.set_budget(world.deps, "tenant:acme", BudgetUpdate(limit_usd=Decimal(5)), MID_MONTH, "api:ops")
    next_month = datetime(2027, 1, 1, 0, 5, tzinfo=UTC)
    world.deps.clock = lambda: next_month
    world.deps.providers[ProviderKind.VEO].endings.append("ok")  # type: ignore[attr-defined]
    submit.accept(VideoRequest.parse_at_edge({**REQUEST, "deadline_s": 3600}), "acme", world.deps)
    world.run()  # no January budget yet: the render is unbudgeted, but the ledger has it
    assert money.roll_over(world.deps, next_month) == 1
    [january] = world.deps.budgets.for_period(period_of(next_month))
    assert january.spent_usd == money.spent(world.deps, ["tenant:acme"], period_of(next_month))["tenant:acme"] > 0


def test_a_budget_refusal_quotes_the_budget_and_the_cheapest_offer_it_refused() -> None:
    world = rendered(1)
    money.set_budget(world.deps, "tenant:acme", BudgetUpdate(limit_usd=ledger_total(world, "tenant:acme") +
                                                             Decimal("0.05")), MID_MONTH, "api:ops")
    request = VideoRequest.parse_at_edge(REQUEST)
    quoted = quote(request, world.deps, tenant="acme")
    [budget] = world.deps.budgets.for_period(period_of(MID_MONTH))
    cheapest = min(c.estimated_cost_p90_usd for c in quoted.candidates
                   if c.reasons and all(r.code == "budget" for r in c.reasons) and c.estimated_cost_p90_usd)
    job = submit.accept(request, "acme", world.deps)
    world.run()
    done = world.jobs.get("acme", job.id)
    assert done.status is JobStatus.REJECTED and done.error is not None and done.error.code == "budget_exhausted"
    assert done.error.message == (f"budget tenant:acme can't cover any feasible offer: tenant:acme has "
                                  f"${budget.remaining_usd} left, the estimate is ${cheapest}")
    assert [r.outcome for r in world.deps.ledger.for_job("acme", job.id)] == []
    assert world.deps.budgets.for_period(period_of(MID_MONTH)) == [budget]  # nothing held, nothing spent


def running(world: Twins, tenant: str = "acme") -> str:
    """A job whose render is under way (held, if any budget applies), its worker between polls."""
    veo = world.deps.providers[ProviderKind.VEO]
    veo.endings.append("ok")  # type: ignore[attr-defined]
    job = submit.accept(VideoRequest.parse_at_edge(REQUEST), tenant, world.deps)
    while not world.jobs.get(tenant, job.id).attempts or world.jobs.get(tenant, job.id).status is JobStatus.ROUTED:
        world.step()
    return job.id


def test_a_budget_made_while_a_render_runs_counts_it_when_it_ends() -> None:
    world = rendered(0)
    job_id = running(world)
    money.set_budget(world.deps, "tenant:acme", BudgetUpdate(limit_usd=Decimal(5)), MID_MONTH, "api:ops")
    world.run()
    [row] = world.deps.ledger.for_job("acme", job_id)
    budget = world.deps.budgets.get_many(["tenant:acme"], period_of(MID_MONTH))["tenant:acme"]
    assert (budget.spent_usd, budget.reserved_usd) == (row.actual_usd, 0) and row.actual_usd > 0
    assert money.drift(world.deps, period_of(MID_MONTH)) == []


def test_a_render_held_in_one_month_and_ended_in_the_next_counts_in_the_month_it_ended() -> None:
    world = rendered(0)
    end_of_month = datetime(2026, 12, 31, 23, 50, tzinfo=UTC)
    world.deps.clock = lambda: end_of_month
    december = money.set_budget(world.deps, "tenant:acme", BudgetUpdate(limit_usd=Decimal(5)), end_of_month, "api")
    job_id = running(world)
    assert world.deps.budgets.get_many(["tenant:acme"], december.period)["tenant:acme"].reserved_usd > 0
    new_year = datetime(2027, 1, 1, 0, 5, tzinfo=UTC)
    world.deps.clock = lambda: new_year
    assert money.roll_over(world.deps, new_year) == 1
    world.run()
    [row] = world.deps.ledger.for_job("acme", job_id)
    held = world.deps.budgets.get_many(["tenant:acme"], december.period)["tenant:acme"]
    counting = world.deps.budgets.get_many(["tenant:acme"], period_of(new_year))["tenant:acme"]
    assert (held.spent_usd, held.reserved_usd, held.remaining_usd) == (0, 0, Decimal(5))
    assert counting.spent_usd == row.actual_usd > 0 and period_of(row.ended_at) == counting.period
    assert money.drift(world.deps, december.period) == [] and money.drift(world.deps, counting.period) == []
