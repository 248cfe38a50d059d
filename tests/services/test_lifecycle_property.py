"""The job lifecycle holds under any interleaving (docs/reliability plan, D1): jobs submitted, their queue messages
taken in any order by 2-4 workers, duplicated and redelivered; provider webhooks early, late, twice and out of
order; polls, cancels, the sweeper at a later clock, provider outages, a submit whose answer is lost, and a worker
killed between the provider's accept and the intent record's update.

After every step, for every job: each write the jobs store took moves its status as `can_transition` allows, a
terminal status never changes again and the version never goes down (and goes up with every status change); the
provider holds at most one job per attempt; a job has at most one succeeded attempt and at most one open one, its
last; and the money figures agree (test_money_property's check, imported). At the end, with the faults cleared and
every render let finish, every job is driven terminal with every attempt closed and nothing left reserved.

On the stores' twins (tests/twins.py), through the real worker, cancel and sweeper. Two workers at once are modelled
at the point where they really overlap: while one waits on a provider call (its answer already decided, not yet
received), another worker runs a message of its own to the end, and that one's provider calls may let a third in."""

from __future__ import annotations

import contextlib
import functools
import itertools
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from router.models.budget import BudgetUpdate, period_of
from router.models.common import ProviderKind
from router.models.job import AttemptStatus, Job, JobStatus, can_transition
from router.models.request import VideoRequest
from router.providers.base import ProviderState, ProviderStatus, Submission
from router.providers.errors import OutcomeUnknown, Unavailable
from router.services import cancel, money, submit, sweeper, worker
from router.store.messages import MessageKind, WorkerMessage
from tests.machines import scaled_and_full
from tests.services.test_money_property import REQUEST, MoneyFigures
from tests.twins import ScriptedVeo, twins

TENANTS = ("acme", "beta")
SCOPES = ("global", "tenant:acme", "tenant:beta")
MAX_JOBS = 4
ENDINGS = ("ok", "crash", "filtered", "wrong_size")
ENDED = frozenset({*ENDINGS, "cancelled"})
class WorkerCrash(BaseException):  # a Lambda killed mid-call: no `except Exception` may swallow it
    """The worker died inside a provider call, after the provider acted on it."""


@dataclass
class Pending:
    """A message in the jobs queue: SQS hands it out no earlier than `due`, and again after a failed receive."""

    message: WorkerMessage
    due: datetime
    receives: int = 0


class Pool:
    """The jobs queue as the machine sees it: any message may be taken next, by any worker (the Queue protocol)."""

    def __init__(self, clock: Callable[[], datetime]) -> None:
        self.clock = clock
        self.items: list[Pending] = []

    def send(self, message: WorkerMessage, delay_s: float = 0) -> None:
        self.items.append(Pending(message, self.clock() + timedelta(seconds=delay_s)))

    def backlog(self) -> int:
        now = self.clock()
        return sum(1 for item in self.items if item.due <= now)

    def __len__(self) -> int:
        return len(self.items)


class FickleVeo(ScriptedVeo):
    """A provider whose every job the machine moves by hand (queued → running → an ending), which can be down, can
    lose a submit's answer after accepting it, can't always look a job up by our attempt id (as Veo can't), and
    before answering any call may let other workers run (`interleave`) or kill its caller (`crash_on`)."""

    def __init__(self) -> None:
        super().__init__([])
        self.start = "queued"
        self.down = 0  # how many calls from now on fail to connect
        self.blind = False
        self.lose_submit_answer = False
        self.crash_on: str | None = None
        self.interleave: list[Callable[[], object]] = []

    def _answer(self, call: str, answer: Callable[[], Any]) -> Any:
        if self.down:
            self.down -= 1
            raise Unavailable(f"connect failed: {call}")
        result = answer()  # the provider has acted; what follows happens while the answer is on its way back
        while self.interleave:
            self.interleave.pop(0)()
        if self.crash_on == call:
            self.crash_on = None
            raise WorkerCrash(call)
        return result

    def _submit(self, submission: Submission) -> ProviderStatus:
        def accept() -> ProviderStatus:
            ref = f"operations/{next(self._ids)}"
            self.jobs[ref] = (submission, self.start)
            if self.lose_submit_answer:
                self.lose_submit_answer = False
                raise OutcomeUnknown("timed out after the request was sent")
            return ProviderStatus(ref, ProviderState.QUEUED)

        return self._answer("submit", accept)

    def _lookup(self, attempt_id: str) -> ProviderStatus | None:
        if self.blind:
            raise OutcomeUnknown("this provider can't look a job up by our attempt id")
        found = next((ref for ref, (sub, _) in self.jobs.items() if sub.attempt_id == attempt_id), None)
        return self._answer("lookup", lambda: None if found is None else self._state_of(found))

    def _status(self, provider_job_id: str) -> ProviderStatus:
        return self._answer("status", lambda: self._state_of(provider_job_id))

    def _cancel(self, provider_job_id: str) -> ProviderStatus:
        def stop() -> ProviderStatus:
            submission, state = self.jobs[provider_job_id]
            if state not in ENDED:
                self.jobs[provider_job_id] = (submission, "cancelled")
            self.cancelled.append(provider_job_id)
            return self._state_of(provider_job_id)

        return self._answer("cancel", stop)

    def _state_of(self, provider_job_id: str) -> ProviderStatus:
        state = self.jobs[provider_job_id][1]
        if state == "queued":
            return ProviderStatus(provider_job_id, ProviderState.QUEUED)
        if state == "cancelled":
            return ProviderStatus(provider_job_id, ProviderState.CANCELLED)
        return ScriptedVeo._status(self, provider_job_id)

    def submitted_per_attempt(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for submission, _ in self.jobs.values():
            counts[submission.attempt_id] = counts.get(submission.attempt_id, 0) + 1
        return counts


class Lifecycle(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.now = self.started = datetime(2026, 11, 28, 9, tzinfo=UTC)
        self.outer_exception = sys.exc_info()[1]  # any the runner itself is handling, not a failed step
        self.veo = FickleVeo()
        self.world = twins({ProviderKind.VEO: self.veo}, clock=lambda: self.now, HVR_EXPLORATION_SHARE="0")
        self.pool = Pool(lambda: self.now)
        self.world.deps.queue = self.pool
        self.jobs: list[tuple[str, str]] = []
        # Every version of every job as the store took it, in the order it took them: the store's own guard is the
        # code under test, so the record is taken where the write lands, not from what the services return.
        self.writes: dict[str, list[tuple[JobStatus, int]]] = {}
        self.checked: dict[str, int] = {}
        store = self.world.jobs
        put = store._put

        def recording(job: Job, expected_version: int | None) -> None:
            put(job, expected_version)
            self.writes.setdefault(job.id, []).append((job.status, job.version))

        store._put = recording  # type: ignore[method-assign]

    # -- the workers -----------------------------------------------------------------------------------------

    def handle(self, pick: int) -> None:
        """One worker takes a message, the time it is due if that is later; killed mid-call, SQS hands it out again."""
        if not self.pool.items:
            return
        item = self.pool.items.pop(pick % len(self.pool.items))
        self.now = max(self.now, item.due)
        item.receives += 1
        try:
            worker.handle(item.message, self.world.deps, receive_count=item.receives)
        except WorkerCrash:
            self.pool.items.append(item)

    def cancel_pick(self, pick: int) -> None:
        tenant, job_id = self.jobs[pick % len(self.jobs)]
        try:
            job = cancel.cancel(tenant, job_id, self.world.deps)
        except cancel.CannotCancel:
            return
        except WorkerCrash:
            return  # the API call died; the client may cancel again
        assert job.status.terminal, job.status

    def webhook_pick(self, pick: int) -> None:
        """What webhooks.py queues once a provider's callback is authenticated: a poll naming the attempt and the
        provider's job (the body is a hint only, so a start, an output and a completion all queue the same)."""
        if not self.veo.jobs:
            return
        ref, (submission, _) = list(self.veo.jobs.items())[pick % len(self.veo.jobs)]
        self.pool.send(WorkerMessage(kind=MessageKind.POLL, tenant=submission.tenant, job_id=submission.job_id,
                                     attempt_id=submission.attempt_id, provider_job_id=ref))

    @rule(action=st.sampled_from(["submit", "submit", "submit", "cancel"]), tenant=st.sampled_from(TENANTS),
          pick=st.integers(0, 63))
    def client(self, action: str, tenant: str, pick: int) -> None:
        if action == "cancel" and self.jobs:
            self.cancel_pick(pick)
        elif action == "submit" and len(self.jobs) < MAX_JOBS:
            job = submit.accept(VideoRequest.parse_at_edge(REQUEST), tenant, self.world.deps)
            self.jobs.append((tenant, job.id))

    @rule(picks=st.lists(st.integers(0, 63), min_size=1, max_size=5))
    @precondition(lambda self: self.pool.items)
    def deliver(self, picks: list[int]) -> None:
        """One worker after another takes a message (several at once: a job needs a few steps to get anywhere)."""
        for pick in picks:
            self.handle(pick)

    @rule(pick=st.integers(0, 63), redelivered=st.booleans())
    @precondition(lambda self: self.pool.items)
    def delivered_twice(self, pick: int, redelivered: bool) -> None:
        """SQS's at-least-once: the same message again as a message of its own, or (`redelivered`) the visibility
        timeout running out while a worker still holds it: handled, and handed out again."""
        item = self.pool.items[pick % len(self.pool.items)]
        if not redelivered:
            self.pool.items.append(Pending(item.message, item.due))
            return
        self.handle(pick)
        if item not in self.pool.items:
            self.pool.items.append(item)

    @rule(pick=st.integers(0, 63),
          others=st.lists(st.tuples(st.sampled_from(["deliver", "deliver", "cancel", "webhook", "sweep"]),
                                    st.integers(0, 63)), min_size=1, max_size=3))
    @precondition(lambda self: self.pool.items)
    def workers(self, pick: int, others: list[tuple[str, int]]) -> None:
        """2-4 workers at once: each of the others runs while an earlier one waits on a provider's answer."""
        actions: dict[str, Callable[[int], object]] = {
            "deliver": self.handle, "cancel": self.cancel_pick, "webhook": self.webhook_pick,
            "sweep": lambda _: self.sweep()}
        self.veo.interleave = [functools.partial(actions[kind], n) for kind, n in others]
        self.handle(pick)
        leftover, self.veo.interleave = self.veo.interleave, []
        for run in leftover:  # no provider call gave them the chance: they run just after
            run()

    @rule(pick=st.integers(0, 63), to=st.sampled_from([None, "running", "ok", "ok", *ENDINGS[1:]]),
          hook=st.booleans())
    @precondition(lambda self: self.veo.jobs)
    def provider(self, pick: int, to: str | None, hook: bool) -> None:
        """A render starts, or ends (straight from queued too), with or without its webhook; or (`to` None) a webhook
        alone, again or late or before what it announces."""
        live = [ref for ref, (_, state) in self.veo.jobs.items() if state not in ENDED]
        if to is None or not live:
            self.webhook_pick(pick)
            return
        ref = live[pick % len(live)]
        submission, state = self.veo.jobs[ref]
        if to == "running" and state != "queued":
            return
        self.veo.jobs[ref] = (submission, to)
        if hook:
            self.webhook_pick(list(self.veo.jobs).index(ref))

    def sweep(self) -> None:
        with contextlib.suppress(WorkerCrash):  # the next scheduled sweep does it again
            sweeper.sweep(self.world.deps)

    @rule(seconds=st.sampled_from([0, 5, 90, 15 * 60, 15 * 60, 3 * 3600, 7 * 3600]))
    def time_passes(self, seconds: int) -> None:
        """The clock moves on (the six-hour deadline passes at the longest step) and the sweeper runs."""
        self.now += timedelta(seconds=seconds)
        self.sweep()

    @rule(fault=st.sampled_from(["down:1", "down:3", "down:20", "blind", "sighted", "lose_submit_answer",
                                 "crash:submit", "crash:submit", "crash:status", "crash:lookup", "crash:cancel"]))
    def provider_fault(self, fault: str) -> None:
        """An outage of the next few calls; lookups by attempt id lost or back; the next submit's answer lost after
        the provider accepted it; or the next worker to make a call killed after the provider acted on it (for a
        submit: after the provider accepted the job, before the attempt's intent record says `submitted`)."""
        veo = self.veo
        kind, _, arg = fault.partition(":")
        if kind == "down":
            veo.down = int(arg)
        elif fault in ("blind", "sighted"):
            veo.blind = fault == "blind"  # Veo's way: only a webhook naming the job can reconcile a lost answer
        elif fault == "lose_submit_answer":
            veo.lose_submit_answer = True
        else:
            veo.crash_on = arg

    @rule(scope=st.sampled_from(SCOPES), cents=st.integers(min_value=0, max_value=400))
    def set_budget(self, scope: str, cents: int) -> None:
        money.set_budget(self.world.deps, scope, BudgetUpdate(limit_usd=Decimal(cents) / 100), self.now, "api:ops")

    # -- what must hold --------------------------------------------------------------------------------------

    @invariant()
    def lifecycle_holds(self) -> None:
        for job_id, writes in self.writes.items():
            start = self.checked.get(job_id, 0)
            for (before, v0), (after, v1) in itertools.pairwise(writes[max(0, start - 1):]):
                assert v1 >= v0, f"{job_id}: version went down {v0} -> {v1}: {writes}"
                if after != before:
                    assert not before.terminal, f"{job_id}: left terminal {before.value} for {after.value}: {writes}"
                    assert can_transition(before, after), f"{job_id}: {before.value} -> {after.value}: {writes}"
                    assert v1 > v0, f"{job_id}: status changed at the same version {v0}: {writes}"
            self.checked[job_id] = len(writes)
        per_attempt = self.veo.submitted_per_attempt()
        assert all(count == 1 for count in per_attempt.values()), per_attempt
        for tenant, job_id in self.jobs:
            job = self.world.jobs.get(tenant, job_id)
            assert sum(a.status is AttemptStatus.SUCCEEDED for a in job.attempts) <= 1, job.attempts
            open_ids = [a.id for a in job.attempts if not a.status.ended]
            assert open_ids in ([], [a.id for a in job.attempts[-1:]]), (job_id, open_ids)
            if job.status is JobStatus.SUCCEEDED:
                assert job.output is not None and job.attempts[-1].status is AttemptStatus.SUCCEEDED, job

    @invariant()
    def money_agrees(self) -> None:
        MoneyFigures.figures_agree(self)  # type: ignore[arg-type]  # reads only `world` and `now`

    def teardown(self) -> None:
        """Clear every fault and let every render finish: the worker and the sweeper then end every job."""
        if sys.exc_info()[1] not in (None, self.outer_exception):
            return  # a step already failed: draining on top of it would only bury its report
        veo = self.veo
        veo.down, veo.blind, veo.lose_submit_answer = 0, False, False
        veo.crash_on, veo.interleave, veo.start = None, [], "ok"
        for ref, (submission, state) in list(veo.jobs.items()):
            if state not in ENDED:
                veo.jobs[ref] = (submission, "ok")
        for _ in range(40):
            while self.pool.items:
                self.handle(0)
            stored = [self.world.jobs.get(tenant, job_id) for tenant, job_id in self.jobs]
            if all(job.status.terminal and all(a.status.ended for a in job.attempts) for job in stored):
                break
            self.now += timedelta(minutes=20)
            self.sweep()
        self.lifecycle_holds()
        self.money_agrees()
        for tenant, job_id in self.jobs:
            job = self.world.jobs.get(tenant, job_id)
            assert job.status.terminal, (job_id, job.status, job.attempts)
            assert all(a.status.ended for a in job.attempts), (job_id, job.attempts)
        for period in {period_of(self.started), period_of(self.now)}:
            for budget in self.world.deps.budgets.for_period(period):
                assert budget.reserved_usd == 0, budget


# Full: enough runs to reach the four- and five-step races (a crash, a redelivery and a webhook).
TestLifecycle, TestLifecycleFull = scaled_and_full(Lifecycle, scaled=(100, 40), full=(600, 40))


def test_a_cancel_that_races_a_fall_back_leaves_no_attempt_running_unbilled() -> None:
    """Found by the machine above (CI, 2026-12-05), kept as its steps. A cancel read the job while its first attempt
    was open, a fall-back then closed that attempt and started a second, and the cancel's write ended the job with
    the second still rendering at Veo: never stopped, never billed, its budget hold reaped. Now whichever attempt is
    open when the job ends is kept open to settle (`settle.close_or_hold_current`), for an expiry too."""
    state = Lifecycle()
    steps: list[Callable[[], Any]] = [
        lambda: state.client(action='submit', pick=50, tenant='acme'),
        lambda: state.client(action='cancel', pick=25, tenant='acme'),
        lambda: state.deliver(picks=[18, 0]),
        lambda: state.time_passes(seconds=0),
        lambda: state.set_budget(cents=227, scope='global'),
        lambda: state.client(action='cancel', pick=63, tenant='acme'),
        lambda: state.client(action='submit', pick=39, tenant='acme'),
        lambda: state.client(action='submit', pick=3, tenant='acme'),
        lambda: state.client(action='submit', pick=3, tenant='acme'),
        lambda: state.workers(others=[('deliver', 49)], pick=15),
        lambda: state.deliver(picks=[2]),
        lambda: state.deliver(picks=[60]),
        lambda: state.deliver(picks=[0]),
        lambda: state.deliver(picks=[4]),
        lambda: state.time_passes(seconds=90),
        lambda: state.workers(others=[('cancel', 61)], pick=24),
        lambda: state.provider(hook=True, pick=23, to='wrong_size'),
        lambda: state.client(action='submit', pick=16, tenant='beta'),
        lambda: state.workers(others=[('webhook', 55), ('sweep', 1)], pick=23),
        lambda: state.provider(hook=False, pick=3, to='crash'),
        lambda: state.deliver(picks=[0]),
        lambda: state.deliver(picks=[0]),
        lambda: state.deliver(picks=[58]),
        lambda: state.workers(others=[('sweep', 11)], pick=28),
        lambda: state.workers(others=[('cancel', 42), ('deliver', 45), ('deliver', 63)], pick=9),
        lambda: state.deliver(picks=[0, 1]),
        lambda: state.deliver(picks=[0]),
        lambda: state.provider(hook=True, pick=2, to=None),
        lambda: state.client(action='cancel', pick=21, tenant='beta'),
        lambda: state.set_budget(cents=289, scope='global'),
        lambda: state.set_budget(cents=200, scope='tenant:beta'),
        lambda: state.set_budget(cents=316, scope='tenant:beta'),
        lambda: state.client(action='submit', pick=36, tenant='acme'),
        lambda: state.set_budget(cents=36, scope='global'),
        lambda: state.time_passes(seconds=0),
        lambda: state.delivered_twice(pick=44, redelivered=True),
        lambda: state.time_passes(seconds=900),
        lambda: state.time_passes(seconds=900),
        lambda: state.set_budget(cents=60, scope='tenant:acme'),
        lambda: state.provider(hook=True, pick=46, to='crash'),
    ]
    for step in steps:
        step()
        state.lifecycle_holds()
        state.money_agrees()
    state.teardown()


def test_the_same_steps_give_the_same_jobs_in_the_same_order() -> None:
    """hypothesis replays a machine's steps and needs the same rules enabled after each. Job ids decide the order the
    sweeper reads open jobs in (the open index is sharded by id), so random ids made a replay diverge once faults
    fell on other jobs: CI reported `FlakyStrategyDefinition` rather than a finding. Twin worlds count their ids."""
    def run() -> tuple[list[tuple[str, list[tuple[JobStatus, int]]]], list[str]]:
        state = Lifecycle()
        for pick in range(6):
            state.client(action="submit", pick=pick, tenant=TENANTS[pick % 2])
        state.deliver(picks=[0, 0, 0])
        state.provider_fault(fault="down:3")
        state.time_passes(seconds=15 * 60)
        state.deliver(picks=[1, 0, 2, 0, 0])
        state.time_passes(seconds=15 * 60)
        return list(state.writes.items()), [item.message.job_id for item in state.pool.items]

    assert run() == run()
