"""An attempt's life through the worker, on the stores' in-memory twins (tests/twins.py): how each way an attempt
ends is recorded — its typed reason, its ledger row and outcome, the budget it held, the fallback it leads to.

The provider is a scripted VideoProvider (tests/twins.py `ScriptedVeo`) that answers inline, as Veo may, with the
video's bytes, so the real finalize path stores and probes a real MP4."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest

from router.models.budget import BudgetUpdate, period_of
from router.models.common import ProviderKind, utcnow
from router.models.job import AttemptStatus, Job, JobStatus
from router.models.outcome import AttemptCode, AttemptOutcome
from router.models.request import VideoRequest
from router.services import cancel, submit
from router.store.artifacts import output_key
from tests.twins import ScriptedVeo, Twins, twins

REQUEST = {"mode": "t2v", "prompt": "a lighthouse at dusk", "resolution": "720p", "duration_s": 4,
           "deadline_s": 6 * 3600}


def started(endings: list[str]) -> tuple[Twins, ScriptedVeo, Job]:
    veo = ScriptedVeo(endings)
    world = twins({ProviderKind.VEO: veo}, HVR_EXPLORATION_SHARE="0")
    job = submit.accept(VideoRequest.parse_at_edge(REQUEST), "acme", world.deps)
    return world, veo, job


def test_a_delivered_attempt_stores_its_video_and_writes_one_priced_ledger_row() -> None:
    world, _, job = started(["ok"])
    world.run()
    done = world.jobs.get("acme", job.id)
    assert done.status is JobStatus.SUCCEEDED and done.output is not None and done.error is None
    attempt = done.attempts[0]
    assert attempt.status is AttemptStatus.SUCCEEDED and attempt.reason is None
    assert attempt.billed.output_seconds == pytest.approx(attempt.delivered.duration_s)
    assert world.artifacts.size(output_key("acme", job.id, attempt.id)) == done.output.bytes
    [row] = world.deps.ledger.for_job("acme", job.id)
    assert row.outcome is AttemptOutcome.SUCCEEDED and row.unit == "output_second"
    assert row.actual_usd == (row.unit_price_usd * Decimal(f"{attempt.delivered.duration_s:.3f}")).quantize(
        Decimal("0.0001")) == done.cost.actual_usd > 0
    assert [ended.status for ended in world.events.ended] == [JobStatus.SUCCEEDED]


def test_a_provider_failure_is_bad_luck_the_same_offer_is_tried_again() -> None:
    world, _, job = started(["crash", "ok"])
    world.run()
    done = world.jobs.get("acme", job.id)
    first, second = done.attempts
    assert done.status is JobStatus.SUCCEEDED and first.offer == second.offer
    assert first.reason is not None and first.reason.code is AttemptCode.PROVIDER_FAILED
    assert str(first.reason) == "provider_failed: INTERNAL: the render crashed"
    rows = world.deps.ledger.for_job("acme", job.id)
    assert [r.outcome for r in rows] == [AttemptOutcome.FAILED, AttemptOutcome.SUCCEEDED]
    assert done.cost.actual_usd == sum((r.actual_usd for r in rows), Decimal(0))


def test_an_output_of_the_wrong_size_rules_its_offer_out_for_the_job() -> None:
    world, _, job = started(["wrong_size", "ok"])
    world.run()
    done = world.jobs.get("acme", job.id)
    first, second = done.attempts
    assert first.reason is not None and first.reason.code is AttemptCode.OUTPUT_MISMATCH
    assert first.offer != second.offer and done.status is JobStatus.SUCCEEDED
    refused, delivered = world.deps.ledger.for_job("acme", job.id)
    assert (refused.outcome, delivered.outcome) == (AttemptOutcome.FAILED, AttemptOutcome.SUCCEEDED)
    # It rendered and the provider bills it, though we refused it: per-second prices count its seconds.
    assert refused.actual_usd == (refused.unit_price_usd * refused.billed_units["output_seconds"]).quantize(
        Decimal("0.0001")) > 0


def test_a_content_filter_bills_nothing_and_rules_out_every_offer_of_its_provider() -> None:
    world, _, job = started(["filtered"])
    world.run()
    done = world.jobs.get("acme", job.id)
    assert done.status is JobStatus.FAILED and done.error is not None and done.error.code == "content_filtered"
    assert done.error.message == "celebrity likeness"  # the code is said once, in `code`
    [attempt] = done.attempts
    assert attempt.reason is not None and attempt.reason.code is AttemptCode.CONTENT_FILTERED
    [row] = world.deps.ledger.for_job("acme", job.id)
    assert row.outcome is AttemptOutcome.CONTENT_FILTERED and row.actual_usd == 0


def test_a_budget_holds_the_estimate_while_it_runs_and_settles_to_the_ledger() -> None:
    world, _, job = started(["ok"])
    now = world.deps.clock()
    world.deps.budgets.put("tenant:acme", period_of(now), BudgetUpdate(limit_usd=Decimal(100)), now, by="test")
    world.run()
    [row] = world.deps.ledger.for_job("acme", job.id)
    budget = world.deps.budgets.get_many(["tenant:acme"], period_of(now))["tenant:acme"]
    assert budget.spent_usd == row.actual_usd and budget.reserved_usd == 0
    assert budget.remaining_usd == Decimal(100) - row.actual_usd


def test_a_budget_no_offer_fits_rejects_the_job_and_nothing_is_billed() -> None:
    veo = ScriptedVeo(["ok"])
    world = twins({ProviderKind.VEO: veo}, HVR_EXPLORATION_SHARE="0")
    now = world.deps.clock()
    world.deps.budgets.put("tenant:acme", period_of(now), BudgetUpdate(limit_usd=Decimal("0.01")), now, by="test")
    job = submit.accept(VideoRequest.parse_at_edge(REQUEST), "acme", world.deps)
    world.run()
    done = world.jobs.get("acme", job.id)
    assert done.status is JobStatus.REJECTED and done.error is not None and done.error.code == "budget_exhausted"
    assert not done.attempts and not veo.jobs and world.deps.ledger.for_job("acme", job.id) == []


def test_a_cancel_stops_the_render_at_the_provider_and_closes_the_attempt_with_its_reason() -> None:
    world, veo, job = started(["running"])
    while not veo.jobs:
        world.step()
    cancelled = cancel.cancel("acme", job.id, world.deps)
    assert cancelled.status is JobStatus.CANCELLED and veo.cancelled == list(veo.jobs)
    [attempt] = cancelled.attempts
    assert attempt.status is AttemptStatus.CANCELLED and attempt.reason is not None
    assert attempt.reason.code is AttemptCode.CANCELLED
    [row] = world.deps.ledger.for_job("acme", job.id)
    assert row.outcome is AttemptOutcome.CANCELLED and row.actual_usd == 0  # nothing delivered, per-second pricing


def test_a_job_past_its_deadline_expires_and_its_open_attempt_is_stopped() -> None:
    world, veo, job = started(["running"])
    while not veo.jobs:
        world.step()
    assert job.deadline is not None
    late = job.deadline + timedelta(seconds=1)
    world.deps.clock = lambda: late
    world.run()
    done = world.jobs.get("acme", job.id)
    assert done.status is JobStatus.EXPIRED and done.error is not None and done.error.code == "deadline_expired"
    assert done.updated_at == late  # the jobs store stamps the Deps' clock
    [attempt] = done.attempts
    assert attempt.reason is not None and attempt.reason.code is AttemptCode.EXPIRED
    assert [r.outcome for r in world.deps.ledger.for_job("acme", job.id)] == [AttemptOutcome.EXPIRED]
    assert utcnow() < late


class AnswerLost(ScriptedVeo):
    """Takes the job, and the answer never arrives: the attempt stays `submitting`."""

    def _submit(self, submission):
        from router.providers.errors import OutcomeUnknown

        super()._submit(submission)
        raise OutcomeUnknown("timed out after the request was sent")


@pytest.mark.parametrize("cut", [False, True], ids=["same-budget", "budget-cut"])
def test_a_second_route_copy_neither_submits_again_nor_ends_a_job_the_first_started(cut: bool) -> None:
    # Two copies of a route message (a redelivery) both decide on the same read. The first starts an attempt whose
    # submit answer is lost. The second named its attempt as the first had (the same read) and so submitted it
    # again; or, finding no budget, ended the job on its stale read: a failed job with an open attempt nothing would
    # ever close. Found by the lifecycle machine (tests/services/test_lifecycle_property.py).
    from router.services import money
    from router.services.route import route_next

    world = twins({ProviderKind.VEO: AnswerLost(["running"])}, HVR_EXPLORATION_SHARE="0")
    job = submit.accept(VideoRequest.parse_at_edge(REQUEST), "acme", world.deps)
    money.set_budget(world.deps, "global", BudgetUpdate(limit_usd=Decimal("0.50")), utcnow(), "api:ops")
    stale = world.jobs.get("acme", job.id)
    route_next(stale, world.deps)
    if cut:  # and meanwhile the budget was cut: the second copy can place nothing at all
        money.set_budget(world.deps, "global", BudgetUpdate(limit_usd=Decimal("0.01")), utcnow(), "api:ops")
    route_next(stale, world.deps)

    after = world.jobs.get("acme", job.id)
    assert not after.status.terminal and after.error is None, after.error
    [attempt] = after.attempts
    assert attempt.status is AttemptStatus.SUBMITTING
