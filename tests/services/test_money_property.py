"""The money figures agree after any interleaving: submissions that deliver, fail, are filtered or keep running,
cancellations, budgets set and changed mid-period, and the month rolling over. After every step, for every budget
of the current and the last period: its `spent_usd` = the ledger's figure for its scope and period = `GET /v1/costs`
total for the same scope and month, to the cent; and spent + reserved <= limit + overspent. On the stores' twins
(tests/twins.py), through the real worker; the embedded-stack run of the same steps is in
tests/integration/test_money_property.py."""

from __future__ import annotations

import calendar
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from router.models.budget import BudgetUpdate, period_of
from router.models.common import ProviderKind
from router.models.job import JobStatus
from router.models.request import VideoRequest
from router.services import cancel, money, submit
from router.services.costs import GroupBy, cost_report
from router.services.deps import Deps
from router.store.messages import MessageKind
from tests.machines import scaled_and_full
from tests.twins import ScriptedVeo, twins

TENANTS = ("acme", "beta")
SCOPES = ("global", "tenant:acme", "tenant:beta")
REQUEST = {"mode": "t2v", "prompt": "a lighthouse at dusk", "resolution": "720p", "duration_s": 4,
           "deadline_s": 6 * 3600}


def month_of(period: str) -> tuple[date, date]:
    year, month = (int(part) for part in period.split("-"))
    return date(year, month, 1), date(year, month, calendar.monthrange(year, month)[1])


class MoneyFigures(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.now = datetime(2026, 11, 28, 9, tzinfo=UTC)
        self.veo = ScriptedVeo([])
        self.world = twins({ProviderKind.VEO: self.veo}, clock=lambda: self.now, HVR_EXPLORATION_SHARE="0")
        self.on_stores(self.world.deps)
        self.deferred: list = []  # polls of renders still running: delivered when they finish

    def on_stores(self, deps: Deps) -> None:
        """Where the jobs, ledger and budgets live: the twins here; DynamoDB in the integration variant."""

    def settle_queue(self) -> None:
        """Run every message, holding back the polls of renders that are still running."""
        while (taken := self.world.queue.take()) is not None:
            message, _ = taken
            job = self.world.deps.jobs.get(message.tenant, message.job_id)
            attempt = job.attempt(message.attempt_id or "") or job.current_attempt
            running = attempt is not None and attempt.provider_job_id in self.veo.jobs and \
                self.veo.jobs[attempt.provider_job_id][1] == "running"
            if message.kind is MessageKind.POLL and running and not job.status.terminal:
                self.deferred.append(message)
                continue
            self.world.deps.queue.send(message)
            self.world.step()

    @rule(tenant=st.sampled_from(TENANTS), ending=st.sampled_from(["ok", "ok", "crash", "filtered", "wrong_size",
                                                                    "running"]))
    def submit(self, tenant: str, ending: str) -> None:
        self.veo.endings.extend([ending, "ok", "ok"])  # the ending, then whatever a fallback needs
        submit.accept(VideoRequest.parse_at_edge(REQUEST), tenant, self.world.deps)
        self.settle_queue()
        self.veo.endings.clear()

    @rule()
    def renders_finish(self) -> None:
        for ref, (submission, ending) in list(self.veo.jobs.items()):
            if ending == "running":
                self.veo.jobs[ref] = (submission, "ok")
        for message in self.deferred:
            self.world.deps.queue.send(message)
        self.deferred.clear()
        self.settle_queue()

    @rule(pick=st.integers(min_value=0, max_value=50))
    def cancel_one(self, pick: int) -> None:
        open_jobs = [(sub.tenant, sub.job_id) for sub, ending in self.veo.jobs.values() if ending == "running"]
        live = [(t, j) for t, j in open_jobs if not self.world.deps.jobs.get(t, j).status.terminal]
        if live:
            tenant, job_id = live[pick % len(live)]
            assert cancel.cancel(tenant, job_id, self.world.deps).status is JobStatus.CANCELLED

    @rule(scope=st.sampled_from(SCOPES), cents=st.integers(min_value=0, max_value=400))
    def set_budget(self, scope: str, cents: int) -> None:
        money.set_budget(self.world.deps, scope, BudgetUpdate(limit_usd=Decimal(cents) / 100), self.now, "api:ops")

    @rule(hours=st.sampled_from([1, 5, 24 * 3]))
    def time_passes(self, hours: int) -> None:
        self.now += timedelta(hours=hours)
        money.roll_over(self.world.deps, self.now)
        self.renders_finish()  # past their deadline or done: the sweeper's nudge, in short

    @invariant()
    def figures_agree(self) -> None:
        deps = self.world.deps
        current = period_of(self.now)
        last = period_of(self.now.replace(day=1) - timedelta(days=1))
        for period in (last, current):
            first, end = month_of(period)
            for budget in deps.budgets.for_period(period):
                ledger = money.spent(deps, [budget.scope], period)[budget.scope]
                tenant = budget.scope.partition(":")[2] or None
                report = cost_report(deps.ledger, first, end, GroupBy.TENANT, tenant)
                assert budget.spent_usd == ledger == report.total_usd, (budget, ledger, report.total_usd)
                assert budget.spent_usd + budget.reserved_usd <= budget.limit_usd + budget.overspent_usd, budget
                assert budget.remaining_usd == budget.limit_usd - budget.spent_usd - budget.reserved_usd


# Full: enough runs to find a three-step interleaving (a render, a budget made under it, its end).
TestMoneyFigures, TestMoneyFiguresFull = scaled_and_full(MoneyFigures, scaled=(25, 20), full=(400, 30))
