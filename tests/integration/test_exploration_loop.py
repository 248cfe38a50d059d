"""Exploration through the embedded stack: the real worker, agent and cloud sandboxes, every job drawn to explore.

The agent's sim engine renders WAN 2.1 14B twenty times faster than the catalog says (an RTX 5090 against the
studio's minutes per frame) and WAN 2.2 14B twice as slow. A request whose deadline the local GPU can't make at the
catalog's figures is tried there anyway while the GPU is idle, with a cloud fallback kept: the fast model finishes
early and its learned figure moves; the slow one is stopped at its abandon point and the job still succeeds in the
cloud before its deadline.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
import yaml

from agent.config import DEFAULT_MODELS_FILE
from hvr.local.embedded import DEV_TENANT, EmbeddedStack
from router.models.common import ProviderKind, utcnow
from router.models.job import AttemptStatus, Job, JobStatus
from router.models.request import VideoRequest
from router.policy.engine import route
from router.policy.learning import Observation, read
from router.services.context import routing_context
from router.services.submit import accept
from router.store.learned import PK

TIME_SCALE = 5000.0
TENANT = DEV_TENANT  # the admin key's tenant: its jobs are readable over the API
FAST, SLOW = "local/wan21-14b", "local/wan22-14b"
SPEED = {"wan21-14b": 20.0, "wan22-14b": 0.5}  # how much faster than the catalog the agent renders each
# 480p, 5 s: at the catalog's 5.9 h (p50) the GPU can't make three hours; a twentieth of that, it can.
ASK = {"mode": "t2v", "prompt": "a paper boat on a pond", "resolution": "480p", "duration_s": 5,
       "quality": "standard", "deadline_s": 3 * 3600}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedStack]:
    workdir = Path(tmp_path_factory.mktemp("exploring"))
    models = yaml.safe_load(DEFAULT_MODELS_FILE.read_text(encoding="utf-8"))
    for name, faster in SPEED.items():
        model = models["sim"]["models"][name]
        model["overhead_s"] /= faster
        model["seconds_per_frame"] /= faster
    models_file = workdir / "models.yaml"
    models_file.write_text(yaml.safe_dump(models), encoding="utf-8")
    env = {"HVR_AGENT_MODELS_FILE": str(models_file), "HVR_EXPLORATION_SHARE": "1"}
    saved = {name: os.environ.get(name) for name in env}
    os.environ.update(env)
    try:
        with EmbeddedStack(workdir / "stack", time_scale=TIME_SCALE, background=False) as local:
            yield local
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@pytest.fixture
def deps(stack: EmbeddedStack) -> Iterator:
    """The stack's deps, with nothing learned yet (each test sets up its own evidence) and the real clock after."""
    deps = stack.deps
    ddb, table = deps.learned._ddb, deps.learned._table
    for item in ddb.query(TableName=table, KeyConditionExpression="pk = :p",
                          ExpressionAttributeValues={":p": {"S": PK}})["Items"]:
        ddb.delete_item(TableName=table, Key={"pk": item["pk"], "sk": item["sk"]})
    clock = deps.clock
    yield deps
    deps.clock = clock


def job_of(stack: EmbeddedStack, job_id: str) -> Job:
    return stack.deps.jobs.get(TENANT, job_id)


def test_an_idle_gpu_is_tried_on_an_optimistic_estimate_finishes_early_and_is_learned(stack: EmbeddedStack,
                                                                                      deps) -> None:
    request = VideoRequest.parse_at_edge(ASK)
    plain = route(request, deps.catalog.offers, routing_context(deps), deps.clock())
    assert plain.chosen is not None and plain.chosen.provider is not ProviderKind.LOCAL
    local = next(c for c in plain.candidates if c.offer == FAST)
    assert any(r.code == "deadline" for r in local.reasons)  # at the catalog's speed it can't make it

    quote = httpx.post(f"{stack.url}/v1/quotes", json=ASK, timeout=30,
                       headers={"Authorization": f"Bearer {stack.admin_key}"}).json()
    assert quote["chosen"]["offer"] == FAST and "0 measured runs" in quote["chosen"]["explored"]

    job = accept(request, TENANT, deps)
    assert stack.drain(lambda: job_of(stack, job.id).status.terminal, timeout_s=60)
    done = job_of(stack, job.id)
    assert done.status is JobStatus.SUCCEEDED, done.error
    [attempt] = done.attempts
    assert attempt.offer == FAST and attempt.explore_until is not None
    assert attempt.ended_at is not None and attempt.ended_at < attempt.explore_until  # early, as hoped
    assert done.routing is not None and done.routing.chosen is not None and done.routing.chosen.explored
    view = httpx.get(f"{stack.url}/v1/jobs/{job.id}", timeout=30,
                     headers={"Authorization": f"Bearer {stack.admin_key}"}).json()
    assert view["routing"]["chosen"]["explored"] and view["routing"]["chosen"]["explore_until"]

    learned = read(deps.learned.all()[FAST])
    assert learned.runs == 1 and learned.time_p50 < 0.3  # one run meets the catalog halfway (in log space)
    assert deps.learned.explored(deps.clock().date())[0] >= 1  # counted against today's cap


def test_an_exploring_attempt_still_running_at_its_abandon_point_is_stopped_and_the_cloud_makes_the_deadline(
        stack: EmbeddedStack, deps) -> None:
    # WAN 2.1 14B has been measured at the catalog's speed three times: no longer explored, too slow to use.
    for n in range(3):
        deps.learned.observe(FAST, Observation(ok=True, render_s=21120.0, catalog_render_s=21120.0), f"att_seed_{n}")
    # Premium 720p: of the GPU's models only the two 14B ones, and of those only WAN 2.2 has little evidence.
    request = VideoRequest.parse_at_edge({**ASK, "quality": "premium", "resolution": "720p"})
    job = accept(request, TENANT, deps)
    assert stack.drain(lambda: job_of(stack, job.id).status is JobStatus.RUNNING, timeout_s=30)
    running = job_of(stack, job.id)
    attempt = running.attempts[0]
    assert attempt.offer == SLOW and attempt.explore_until is not None and running.deadline is not None
    explore_until, deadline = attempt.explore_until, running.deadline
    # The agent reports the try with its stop, and the router prices it no longer than that: hours at the catalog's
    # figures, but a GPU-only draft arriving now waits for the abandon point at most.
    [queued] = deps.providers[ProviderKind.LOCAL].health().queue
    assert queued.stop_at == explore_until
    before = deps.clock()
    gpu = routing_context(deps).targets[ProviderKind.LOCAL]
    assert 0 < gpu.queue_wait_s <= (explore_until - before).total_seconds() < queued.left_s

    # Hours pass (the render, at half the catalog's speed, is still far from done): the abandon point is reached.
    ahead = explore_until - utcnow() + timedelta(seconds=1)
    deps.clock = lambda: utcnow() + ahead
    assert stack.drain(lambda: job_of(stack, job.id).status.terminal, timeout_s=60)
    done = job_of(stack, job.id)
    assert done.status is JobStatus.SUCCEEDED, done.error
    stopped, fallback = done.attempts
    assert stopped.status is AttemptStatus.FAILED and stopped.reason is not None
    assert str(stopped.reason).startswith("exploration_abandoned:")
    assert fallback.provider is not ProviderKind.LOCAL and fallback.status is AttemptStatus.SUCCEEDED
    assert fallback.ended_at is not None and fallback.ended_at <= deadline
    assert fallback.explore_until is None  # a job explores once

    # Billed what the agent says it ran; learned as a lower bound, neither a run nor a failure.
    rows = {row.attempt_id: row for row in deps.ledger.for_job(TENANT, job.id)}
    assert rows[stopped.id].outcome == "abandoned"
    stats = deps.learned.all()[SLOW]
    assert stats.runs == 0 and stats.attempts == 0 and len(stats.floors) == 1
    assert read(stats).time_floor is not None
