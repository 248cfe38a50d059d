"""Reconciliation through the embedded stack: 40 jobs render on the RunPod sandbox's worker-comfyui endpoint, which
revises the bill of ~5 % of them a minute after they end (`plan.overbill`). Reconciling right after the jobs finds
nothing; once the revisions show, it finds exactly the attempts the sandbox over-billed, and nothing else. The
Replicate sandbox revises `predict_time` the same way.

Run with -s to see the figures."""

from datetime import timedelta
from decimal import Decimal

import httpx
import pytest

from hvr.sandbox.base import FaultPlan
from hvr.sandbox.replicate import ReplicateSandbox
from router.models.job import JobStatus
from router.models.reconciliation import FindingKind
from router.models.request import VideoRequest
from router.providers.replicate import ReplicateProvider
from router.services.reconcile import reconcile
from router.services.submit import accept

TENANT = "recon"
JOBS = 40
OVERBILL = {"rate": 0.05, "factor": 1.3, "after_s": 60.0}
BODY = {"mode": "t2v", "prompt": "a paper plane over the bay", "resolution": "480p", "duration_s": 2,
        "quality": "standard", "model": "runpod/wan21-14b-comfy", "deadline_s": 86400}


@pytest.fixture
def runpod(stack):
    sandbox = stack.sandboxes.servers["runpod"]
    clock, plan = sandbox.clock, dict(sandbox.plan.overbill)
    sandbox.plan.overbill.update(OVERBILL)
    yield sandbox
    sandbox.clock = clock
    sandbox.plan.overbill.clear()
    sandbox.plan.overbill.update(plan)


def test_reconcile_finds_exactly_the_attempts_the_sandbox_over_billed(stack, deps, runpod) -> None:
    start = deps.clock()
    ids = [accept(VideoRequest.parse_at_edge(BODY), TENANT, deps).id for _ in range(JOBS)]
    assert stack.drain(lambda: all(deps.jobs.get(TENANT, i).status.terminal for i in ids), timeout_s=120)
    jobs = [deps.jobs.get(TENANT, i) for i in ids]
    assert [job.status for job in jobs] == [JobStatus.SUCCEEDED] * JOBS, [job.error for job in jobs]
    end = deps.clock() + timedelta(seconds=1)
    refs = {job.attempts[-1].provider_job_id for job in jobs}
    planted = {ref for ref in refs if ref and ref.split("/", 1)[1] in runpod.overbilled}

    early = reconcile(deps, start, end)  # the bills are as reported at the end: nothing to find yet
    assert early.findings == [] and early.counts.rows == early.counts.matched == JOBS

    runpod.advance(2 * OVERBILL["after_s"])  # a couple of minutes on: the revised records show
    report = reconcile(deps, start, end)
    found = {f.provider_job_id for f in report.findings}
    print(f"\nreconcile over {report.counts.rows} RunPod attempts: found {len(found)}/planted {len(planted)} "
          f"over-billed ({len(planted) / JOBS:.1%} of {JOBS}); counts {report.counts.model_dump()}")
    assert planted and found == planted
    assert all(f.kind is FindingKind.MISMATCH and f.tenant == TENANT for f in report.findings)
    for finding in report.findings:
        assert finding.provider_units is not None and finding.provider_usd is not None
        assert finding.provider_units == pytest.approx(finding.ledger_units * Decimal("1.3"), rel=Decimal("0.001"))
        assert finding.provider_usd > finding.ledger_usd
    assert report.counts.mismatch == len(planted) and report.counts.matched == JOBS - len(planted)
    assert report.new_findings == len(planted) and report.complete
    stored = deps.findings.between(start.date(), end.date())
    assert {f.provider_job_id for f in stored if f.tenant == TENANT} == planted


def test_the_replicate_sandbox_revises_a_drawn_prediction_s_predict_time_later() -> None:
    plan = FaultPlan(overbill={"rate": 1.0, "factor": 1.5, "after_s": 30.0})
    with ReplicateSandbox(plan=plan) as sandbox:
        created = httpx.post(f"{sandbox.url}/v1/models/wavespeedai/wan-2.1-t2v-480p/predictions",
                             json={"input": {"prompt": "a paper plane"}},
                             headers={"Authorization": "Bearer r8_sandbox", "Prefer": "wait=10"}, timeout=15)
        assert created.status_code == 201 and created.json()["status"] == "succeeded", created.text
        prediction = created.json()["id"]
        adapter = ReplicateProvider("r8_sandbox", sandbox.url)
        reported = adapter.status(prediction).billed.gpu_seconds
        assert reported and sandbox.overbilled == {prediction: 1.5}
        sandbox.advance(31)
        assert adapter.status(prediction).billed.gpu_seconds == pytest.approx(reported * 1.5, rel=1e-4)
