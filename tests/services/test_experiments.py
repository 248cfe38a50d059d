"""Experiments through the route step, on the stores' twins: assignment recorded on the job and with the experiment,
a paired request rendered on both arms, the spend cap and the end date honoured, definitions checked, and results
read from the jobs and their ratings."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest

from router.errors import Conflict, InvalidRequest
from router.models.common import ProviderKind
from router.models.experiment import ExperimentSpec
from router.models.job import Job, JobStatus
from router.models.rating import RatingCreate
from router.models.request import VideoRequest
from router.policy.experiments import draw
from router.services import experiments, submit
from router.services.ratings import rate
from tests.twins import ScriptedGpu, ScriptedVeo, Twins, twins

ARMS = ["local/wan21-1.3b", "veo"]
REQUEST = {"mode": "t2v", "prompt": "a kite over the dunes", "resolution": "720p", "duration_s": 4,
           "quality": "standard", "deadline_s": 7 * 86400}


def world(jobs: int = 40) -> Twins:
    return twins({ProviderKind.LOCAL: ScriptedGpu(["ok"] * jobs), ProviderKind.VEO: ScriptedVeo(["ok"] * jobs)},
                 HVR_EXPLORATION_SHARE="0")


def spec(**fields: Any) -> ExperimentSpec:
    body = {"arms": ARMS, "share": 1.0, "stickiness": "request", "spend_cap_usd": "100",
            "ends_at": "2099-01-01T00:00:00Z", **fields}
    return ExperimentSpec.model_validate(body)


def run_job(w: Twins, tenant: str = "acme", **fields: Any) -> Job:
    accepted = submit.accept(VideoRequest.parse_at_edge({**REQUEST, **fields}), tenant, w.deps)
    w.run()
    return w.jobs.get(tenant, accepted.id)


def test_a_taken_job_renders_on_its_drawn_arm_and_says_so() -> None:
    w = world()
    experiments.define("wan-vs-veo", spec(), w.deps, by="api:ops")
    done = [run_job(w) for _ in range(8)]
    for job in done:
        assert job.status is JobStatus.SUCCEEDED and job.experiment is not None
        arm = draw("wan-vs-veo", f"job:acme:{job.id}", 1.0)
        assert job.experiment.arm == arm and job.experiment.unit == f"job:acme:{job.id}"
        offer = job.attempts[0].offer
        assert offer == "local/wan21-1.3b" if arm == "a" else offer.startswith("veo/")
        assert job.routing is not None and job.routing.chosen is not None
        assert job.routing.chosen.reason.startswith(f"experiment wan-vs-veo, arm {arm}")
    assert {job.experiment.arm for job in done if job.experiment} == {"a", "b"}
    state = w.deps.experiments.get("wan-vs-veo")
    assert state is not None and state.assigned == 8
    assert state.committed_usd == sum((j.routing.chosen.estimated_cost_p90_usd for j in done  # type: ignore[union-attr]
                                       ), Decimal(0))


def test_a_campaign_sticks_to_one_arm() -> None:
    w = world()
    experiments.define("wan-vs-veo", spec(stickiness="campaign"), w.deps, by="api:ops")
    jobs = [run_job(w, campaign_id="spring") for _ in range(5)]
    assert len({job.experiment.arm for job in jobs if job.experiment}) == 1
    assert all(job.experiment and job.experiment.unit == "campaign:acme:spring" for job in jobs)


def test_a_paired_request_is_rendered_on_both_arms_and_the_twin_never_calls_back() -> None:
    w = world()
    experiments.define("wan-vs-veo", spec(paired=True), w.deps, by="api:ops")
    job = run_job(w, callback_url="https://example.com/hook", metadata={"shot": 7})
    assert job.experiment is not None and job.experiment.paired_with == f"{job.id}-pair"
    twin = w.jobs.get("acme", job.experiment.paired_with)
    assert twin.status is JobStatus.SUCCEEDED and twin.experiment is not None and twin.experiment.twin
    assert {job.experiment.arm, twin.experiment.arm} == {"a", "b"} and twin.experiment.paired_with == job.id
    assert twin.request.callback_url is None and twin.request.prompt == job.request.prompt
    assert twin.deadline == job.deadline
    offers = {job.attempts[0].offer, twin.attempts[0].offer}
    assert "local/wan21-1.3b" in offers and any(o.startswith("veo/") for o in offers)
    state = w.deps.experiments.get("wan-vs-veo")
    assert state is not None and state.assigned == 2
    assert state.committed_usd == job.routing.chosen.estimated_cost_p90_usd + (  # type: ignore[union-attr]
        twin.routing.chosen.estimated_cost_p90_usd)  # type: ignore[union-attr]


def test_the_spend_cap_and_the_end_date_stop_assigning() -> None:
    w = world()
    experiments.define("wan-vs-veo", spec(spend_cap_usd="0.01"), w.deps, by="api:ops")
    assert run_job(w).experiment is None  # one render's p90 is over the whole cap
    experiments.define("ended", spec(ends_at=(w.deps.clock() - timedelta(seconds=1)).isoformat()), w.deps,
                       by="api:ops")
    job = run_job(w)
    assert job.experiment is None and job.status is JobStatus.SUCCEEDED
    assert experiments.listing(w.deps).experiments[0].status == "ended"


def test_a_request_an_arm_cant_serve_routes_as_ever() -> None:
    w = world()
    experiments.define("wan-vs-veo", spec(), w.deps, by="api:ops")
    job = run_job(w, resolution="480p", aspect_ratio="1:1")  # Veo renders 16:9 and 9:16 only
    assert job.experiment is None and job.status is JobStatus.SUCCEEDED


def test_definitions_are_checked() -> None:
    w = world()
    with pytest.raises(InvalidRequest) as bad:
        experiments.define("x", spec(arms=["sora", "veo"]), w.deps, by="api:ops")
    assert bad.value.errors[0]["field"] == "arms.0"
    assert w.deps.experiments.all() == []
    experiments.define("wan-vs-veo", spec(), w.deps, by="api:ops")
    run_job(w)
    with pytest.raises(Conflict):
        experiments.define("wan-vs-veo", spec(arms=["local/wan21-1.3b", "animatediff"]), w.deps, by="api:ops")
    view, created = experiments.define("wan-vs-veo", spec(share=0.5), w.deps, by="api:ops")
    assert not created and view.experiment.share == 0.5 and view.assigned == 1


def test_results_count_each_arm_and_the_pairs_preferences() -> None:
    w = world(80)
    experiments.define("wan-vs-veo", spec(paired=True), w.deps, by="api:ops")
    for n in range(12):
        job = run_job(w)
        assert job.experiment is not None and job.experiment.paired_with is not None
        twin = w.jobs.get("acme", job.experiment.paired_with)
        wan, veo = (job, twin) if job.experiment.arm == "a" else (twin, job)
        rate("acme", veo.id, "k1", RatingCreate(score=5, preferred_over=wan.id), w.deps)
        rate("acme", wan.id, "k1", RatingCreate(score=3 if n % 3 else 4), w.deps)
    found = experiments.view("wan-vs-veo", w.deps)
    assert found.results is not None
    a, b = found.results.arms
    assert (a.assigned, b.assigned, a.delivered, b.delivered, a.failed) == (12, 12, 12, 12, 0)
    assert (a.ratings, b.ratings) == (12, 12)
    assert found.results.preference.pairs == 12 and found.results.preference.b_won == 12
    assert found.results.verdict.outcome == "b_better" and found.results.verdict.basis == "preference"
