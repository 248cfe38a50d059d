"""The sweeper (router.services.sweeper) on the twins: what it nudges, and when it holds back."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal

from router.models.budget import BudgetUpdate, period_of
from router.models.common import ProviderKind, utcnow
from router.models.ledger import LedgerEntry
from router.models.outcome import AttemptOutcome
from router.models.request import VideoRequest
from router.services import money, submit, sweeper
from router.store.errors import StoreUnavailable
from tests.twins import ScriptedVeo, twins

REQUEST = {"mode": "t2v", "prompt": "a lighthouse at dusk", "resolution": "720p", "duration_s": 4,
           "providers": ["veo"]}


def test_at_a_high_time_scale_a_queued_route_is_not_sent_again_before_the_real_time_floor() -> None:
    """A queue lags in wall seconds whatever the time scale: at 4,000x the route timeout is 15 ms, and a saturated
    embedded stack once got every accepted job routed again at each sweep, which only lengthened the queue."""
    now = [utcnow()]
    world = twins({ProviderKind.VEO: ScriptedVeo(["ok"])}, clock=lambda: now[0], HVR_TIME_SCALE="4000")
    submit.accept(VideoRequest.parse_at_edge(REQUEST), "acme", world.deps)
    assert world.queue.take() is not None  # its route message is lost
    now[0] += timedelta(seconds=1)  # 4,000 modelled seconds: past ROUTE_TIMEOUT_S, not past the floor
    assert sweeper.sweep(world.deps).nudged == {}
    now[0] += timedelta(seconds=5)
    assert sweeper.sweep(world.deps).nudged == {"route": 1}


def test_while_the_queue_has_a_backlog_rescues_wait_for_it_to_clear() -> None:
    """A quiet job's message is more likely waiting in a backlog than lost: a rescue then only queues behind it
    (a saturated embedded stack drew 1,276 route nudges for 300 jobs)."""
    now = [utcnow()]
    world = twins({ProviderKind.VEO: ScriptedVeo(["ok", "ok"])}, clock=lambda: now[0])
    for _ in range(2):
        submit.accept(VideoRequest.parse_at_edge(REQUEST), "acme", world.deps)
    world.queue.take()  # the first job's route message is lost; the second's still waits
    now[0] += timedelta(minutes=5)
    assert sweeper.sweep(world.deps).nudged == {"held_for_backlog": 2}
    world.run()  # the backlog clears: the second job runs, the first is still stuck
    assert sweeper.sweep(world.deps).nudged == {"route": 1}
    world.run()
    assert {job.status.value for job in world.jobs.list("acme")[0]} == {"succeeded"}


def test_one_jobs_failed_rescue_does_not_cost_the_others_theirs(monkeypatch) -> None:
    """A send throttled past botocore's retries fails that job's rescue only: the sweep goes on to the next job
    (under AWS chaos, 35 of 92 sweeps once ended at their first such error), and the next sweep retries it."""
    now = [utcnow()]
    world = twins({ProviderKind.VEO: ScriptedVeo(["ok", "ok"])}, clock=lambda: now[0])
    for _ in range(2):
        submit.accept(VideoRequest.parse_at_edge(REQUEST), "acme", world.deps)
    world.queue.take(), world.queue.take()  # both route messages are lost
    now[0] += timedelta(minutes=5)
    real, failures = world.queue.send, [StoreUnavailable("ThrottlingException: rate exceeded")]

    def flaky(message, delay_s: float = 0) -> None:
        if failures:
            raise failures.pop()
        real(message, delay_s=delay_s)

    monkeypatch.setattr(world.queue, "send", flaky)
    assert sweeper.sweep(world.deps).nudged == {"failed": 1, "route": 1}
    world.run()
    assert sweeper.sweep(world.deps).nudged == {"route": 1}  # the one whose rescue failed
    world.run()
    assert {job.status.value for job in world.jobs.list("acme")[0]} == {"succeeded"}


def test_at_a_high_time_scale_a_fresh_hold_is_not_reaped_before_the_real_time_floor() -> None:
    """The reaper releases a hold whose attempt the job doesn't show; at 19,000x (the demo's scale) its 15 minutes
    were 47 ms, shorter than a loaded route takes between reserving and writing the attempt into the job. The hold
    was released at nothing, the render's ledger row then counted in no budget: the demo's campaign budget drifted
    $0.2558 below its ledger."""
    now = [utcnow()]
    world = twins({ProviderKind.VEO: ScriptedVeo([])}, clock=lambda: now[0], HVR_TIME_SCALE="19000")
    deps = world.deps
    money.set_budget(deps, "tenant:acme", BudgetUpdate(limit_usd=Decimal("10")), now[0], "api:test")
    job = submit.accept(VideoRequest.parse_at_edge(REQUEST), "acme", deps)
    money.reserve(deps, "acme", None, job.id, f"att_{job.id}_1", Decimal("1.5"), now[0])  # the attempt not written yet
    now[0] += timedelta(seconds=1)  # 19,000 modelled seconds: past RESERVATION_REAP_S, not past the floor
    sweeper.sweep(deps)
    held = deps.budgets.reservation(f"att_{job.id}_1")
    assert held is not None and held.state == "reserved"
    now[0] += timedelta(seconds=5)  # past the floor: a hold no attempt took up is a crash's leftover
    sweeper.sweep(deps)
    held = deps.budgets.reservation(f"att_{job.id}_1")
    assert held is not None and held.state == "settled"


def test_a_render_whose_hold_was_reaped_before_its_row_is_still_counted_once() -> None:
    """The reaper releases at nothing a hold whose attempt shows no ledger row. Should the row come after (a
    render billed long after its attempt looked dead), `charge` found the hold settled and counted the row in no
    budget: the budget read less than its ledger."""
    now = [utcnow()]
    world = twins({ProviderKind.VEO: ScriptedVeo([])}, clock=lambda: now[0])
    deps = world.deps
    money.set_budget(deps, "tenant:acme", BudgetUpdate(limit_usd=Decimal("10")), now[0], "api:test")
    job = submit.accept(VideoRequest.parse_at_edge(REQUEST), "acme", deps)
    attempt_id = f"att_{job.id}_1"
    money.reserve(deps, "acme", None, job.id, attempt_id, Decimal("1.5"), now[0])  # no attempt took it up
    now[0] += timedelta(hours=1)
    sweeper.sweep(deps)
    released = deps.budgets.reservation(attempt_id)
    assert released is not None and (released.state, released.actual) == ("settled", Decimal(0))
    entry = billed_row(job.id, attempt_id, Decimal("1.2345"), now[0])
    money.charge(deps, entry)
    money.charge(deps, entry)  # a duplicate of the same row counts nothing more
    [budget] = deps.budgets.get_many(["tenant:acme"], period_of(now[0])).values()
    assert (budget.spent_usd, budget.reserved_usd) == (Decimal("1.2345"), Decimal(0))
    assert money.drift(deps, period_of(now[0])) == []



def billed_row(job_id: str, attempt_id: str, actual: Decimal, ended_at: datetime) -> LedgerEntry:
    seconds = Decimal(4)
    return LedgerEntry(tenant="acme", job_id=job_id, attempt_id=attempt_id, provider=ProviderKind.VEO,
                       offer="veo/veo-3-fast", model="veo-3-fast", outcome=AttemptOutcome.SUCCEEDED,
                       billed_units={"output_seconds": seconds}, unit="output_second",
                       unit_price_usd=actual / seconds, pricing_version="test", estimated_usd=Decimal("1.5"),
                       actual_usd=actual, resolution="1280x720", started_at=ended_at - timedelta(minutes=2),
                       ended_at=ended_at)
