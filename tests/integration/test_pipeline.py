"""The worker handler end to end: moto on loopback, the real GPU agent (sim engine), SQS redelivery."""

import sqlite3
from decimal import Decimal

import pytest

from router.media.probe import probe
from router.models.common import utcnow
from router.models.job import AttemptStatus, Job, JobStatus
from router.models.request import VideoRequest
from router.services.submit import accept
from router.store.errors import IllegalTransition, StaleWrite
from router.store.messages import MessageKind, WorkerMessage

TENANT = "acme"
DRAFT_512 = {"mode": "t2v", "prompt": "a paper boat", "resolution": "512x512", "aspect_ratio": "1:1",
             "duration_s": 2, "quality": "draft", "deadline_s": 86400}
WAN_480 = {"mode": "t2v", "prompt": "a mug on a turntable", "resolution": "480p", "duration_s": 2,
           "quality": "standard", "deadline_s": 86400, "providers": ["local"]}


def run(stack, deps, body: dict, timeout_s: float = 60) -> Job:
    job = accept(VideoRequest.parse_at_edge(body), TENANT, deps)
    return finish(stack, deps, job.id, timeout_s)


def finish(stack, deps, job_id: str, timeout_s: float = 60, tenant: str = TENANT) -> Job:
    assert stack.drain(lambda: deps.jobs.get(tenant, job_id).status.terminal, timeout_s=timeout_s)
    return deps.jobs.get(tenant, job_id)


def agent_rows(stack, job_id: str) -> int:
    with sqlite3.connect(stack.agent.db_path) as db:
        query = "SELECT COUNT(*) FROM jobs WHERE json_extract(request, '$.job_id') = ?"
        return db.execute(query, (job_id,)).fetchone()[0]


def test_job_succeeds_with_a_probed_mp4_in_s3_and_one_ledger_entry(stack, deps, spy) -> None:
    job = run(stack, deps, DRAFT_512)

    assert job.status is JobStatus.SUCCEEDED, job.error
    assert job.output is not None and job.progress == 1.0
    video = probe(deps.artifacts.download(job.output.s3_uri.split("/", 3)[3]))
    assert (video.width, video.height, video.frames, video.fps) == (512, 512, 16, 8.0)
    assert job.output.bytes > 1000
    [entry] = deps.ledger.for_job(TENANT, job.id)
    assert entry.outcome == "succeeded" and entry.actual_usd == job.cost.actual_usd > 0
    assert entry.mode is job.request.mode and entry.resolution == "512x512"
    assert entry.billed_units["gpu_seconds"] > 0 and entry.unit == "gpu_second"
    assert entry.actual_usd == (entry.unit_price_usd * entry.billed_units["gpu_seconds"]).quantize(Decimal("0.0001"))
    assert spy.submits == 1 and [a.status for a in job.attempts] == [AttemptStatus.SUCCEEDED]


def test_a_failing_render_ends_failed_with_the_reason(stack, deps) -> None:
    job = run(stack, deps, {**DRAFT_512, "prompt": "[sim:fail] a lighthouse"})

    assert job.status is JobStatus.FAILED
    assert job.error is not None and job.error.code == "provider_failed"
    assert "sim" in job.error.message
    # A crash is retried once on the same offer (the only one for a 512² draft); the second failure ends it.
    assert [a.status for a in job.attempts] == [AttemptStatus.FAILED, AttemptStatus.FAILED]
    assert job.attempts[0].offer == job.attempts[1].offer
    entries = deps.ledger.for_job(TENANT, job.id)
    assert [e.outcome for e in entries] == ["failed", "failed"]


def test_an_output_that_does_not_match_the_delivered_spec_fails_the_attempt(stack, deps) -> None:
    job = run(stack, deps, {**DRAFT_512, "prompt": "[sim:wrong-size] a lighthouse"})

    assert job.status is JobStatus.FAILED
    assert str(job.attempts[0].reason).startswith("output_mismatch: size 256x512")
    assert job.output is None


def test_a_duplicate_route_delivery_submits_once(stack, deps, spy) -> None:
    job = accept(VideoRequest.parse_at_edge(DRAFT_512), TENANT, deps)
    deps.queue.send(WorkerMessage(kind=MessageKind.ROUTE, tenant=TENANT, job_id=job.id))
    deps.queue.send(WorkerMessage(kind=MessageKind.ROUTE, tenant=TENANT, job_id=job.id))

    done = finish(stack, deps, job.id)
    assert done.status is JobStatus.SUCCEEDED
    assert spy.submits == 1 and len(done.attempts) == 1 and agent_rows(stack, job.id) == 1
    assert len(deps.ledger.for_job(TENANT, job.id)) == 1


@pytest.mark.parametrize("crash", ["before", "after"])
def test_a_worker_killed_between_submitting_and_submitted_is_reconciled(stack, deps, spy, crash) -> None:
    spy.crash = crash
    job = accept(VideoRequest.parse_at_edge(DRAFT_512), TENANT, deps)
    # The first delivery dies with the attempt written `submitting`; SQS redelivers after the visibility timeout.
    assert stack.drain(lambda: bool(deps.jobs.get(TENANT, job.id).attempts), timeout_s=10)
    assert deps.jobs.get(TENANT, job.id).attempts[0].status is AttemptStatus.SUBMITTING

    done = finish(stack, deps, job.id)
    assert done.status is JobStatus.SUCCEEDED
    assert spy.submits == 1, "reconcile must find the agent's job, not submit a second one"
    assert len(done.attempts) == 1 and agent_rows(stack, job.id) == 1


def test_a_worker_killed_after_a_retried_submit_reached_the_provider_is_reconciled_not_resubmitted(
        stack, deps, spy) -> None:
    # The first try is refused (the record says nothing was sent); the retry reaches the agent and the worker dies
    # before recording it. The storm soak found the second job this used to make (tests/integration/test_storm.py).
    spy.refuse, spy.crash = 1, "after"
    job = accept(VideoRequest.parse_at_edge(DRAFT_512), TENANT, deps)

    done = finish(stack, deps, job.id)
    assert done.status is JobStatus.SUCCEEDED, done.error
    assert spy.submits == 1, "the retry reached the agent: reconcile must find its job, not submit another"
    assert len(done.attempts) == 1 and agent_rows(stack, job.id) == 1


def test_an_agent_restarted_mid_job_finishes_it(stack, deps) -> None:
    job = accept(VideoRequest.parse_at_edge(WAN_480), TENANT, deps)
    assert stack.drain(lambda: deps.jobs.get(TENANT, job.id).status in (JobStatus.SUBMITTED, JobStatus.RUNNING),
                       timeout_s=20)
    stack.agent.kill()
    stack.agent.start()

    done = finish(stack, deps, job.id, timeout_s=90)
    assert done.status is JobStatus.SUCCEEDED, done.error
    assert len(done.attempts) == 1 and agent_rows(stack, job.id) == 1


def test_stale_and_illegal_transitions_are_refused(stack, deps) -> None:
    job = accept(VideoRequest.parse_at_edge({**DRAFT_512, "max_cost_usd": "0.01"}), TENANT, deps)
    first, second = deps.jobs.get(TENANT, job.id), deps.jobs.get(TENANT, job.id)
    deps.jobs.save(first, JobStatus.ROUTED)
    with pytest.raises(StaleWrite):
        deps.jobs.save(second, JobStatus.REJECTED)
    current = deps.jobs.get(TENANT, job.id)
    with pytest.raises(IllegalTransition):
        deps.jobs.save(current, JobStatus.ACCEPTED)
    ended = deps.jobs.save(current, JobStatus.CANCELLED)
    with pytest.raises(IllegalTransition):
        deps.jobs.save(ended, JobStatus.RUNNING)
    # The queued route message finds a terminal job and leaves it alone.
    finish(stack, deps, job.id)
    assert deps.jobs.get(TENANT, job.id).status is JobStatus.CANCELLED


def test_jobs_are_listed_per_tenant_newest_first_and_by_status(stack, deps) -> None:
    ids = [accept(VideoRequest.parse_at_edge({**DRAFT_512, "max_cost_usd": "0.01"}), "lister", deps).id
           for _ in range(3)]
    page, cursor = deps.jobs.list("lister", limit=2)
    assert [j.id for j in page] == ids[::-1][:2] and cursor is not None
    rest, _ = deps.jobs.list("lister", limit=2, cursor=cursor)
    assert [j.id for j in rest] == [ids[0]]
    assert deps.jobs.list("someone-else")[0] == []
    for job_id in ids:
        finish(stack, deps, job_id, tenant="lister")
    rejected, _ = deps.jobs.list("lister", status=JobStatus.REJECTED)
    assert sorted(j.id for j in rejected) == sorted(ids)
    assert utcnow() > rejected[0].created_at
