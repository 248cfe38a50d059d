"""Learning in the loop: the agent's sim engine renders 20 times faster than the catalog says (an RTX 5090 against
the studio's minutes per frame), jobs go through the real worker and agent, finalize learns, and the quote moves.

The old calibration could at best halve the catalog's time (its clamp at half); the last assertion shows that would
have left the quote in the cloud.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import httpx
import pytest
import yaml

from agent.config import DEFAULT_MODELS_FILE
from hvr.local.embedded import EmbeddedStack
from router.models.common import ProviderKind
from router.models.job import Job, JobStatus
from router.models.request import VideoRequest
from router.policy.engine import route
from router.policy.learning import Learned, Observation, read
from router.services.context import routing_context
from router.services.submit import accept
from router.store.learned import LearnedRepository

FASTER = 20.0
TIME_SCALE = 5000.0
TENANT = "acme"
LOCAL = "local/wan21-1.3b"
# Short renders pinned to the local offer: what a week of small local jobs (or `hvr calibrate`) would send it.
LEARN = {"mode": "t2v", "prompt": "a lighthouse at dusk", "resolution": "480p", "duration_s": 1,
         "quality": "standard", "deadline_s": 86400, "model": LOCAL}
# A request the local GPU can render: at the catalog's 5.4 h it can't make the hour, at a twentieth it can.
ASK = {"mode": "t2v", "prompt": "a paper boat on a pond", "resolution": "480p", "duration_s": 5,
       "quality": "standard", "deadline_s": 3600}


@pytest.fixture(scope="module")
def fast_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedStack]:
    workdir = Path(tmp_path_factory.mktemp("learning"))
    models = yaml.safe_load(DEFAULT_MODELS_FILE.read_text(encoding="utf-8"))
    for model in models["sim"]["models"].values():
        model["overhead_s"] /= FASTER
        model["seconds_per_frame"] /= FASTER
    fast = workdir / "models-fast.yaml"
    fast.write_text(yaml.safe_dump(models), encoding="utf-8")
    saved = os.environ.get("HVR_AGENT_MODELS_FILE")
    os.environ["HVR_AGENT_MODELS_FILE"] = str(fast)  # the agent process reads it at start
    try:
        with EmbeddedStack(workdir / "stack", time_scale=TIME_SCALE, background=False) as stack:
            yield stack
    finally:
        if saved is None:
            os.environ.pop("HVR_AGENT_MODELS_FILE", None)
        else:
            os.environ["HVR_AGENT_MODELS_FILE"] = saved


def run(stack: EmbeddedStack, body: dict) -> Job:
    deps = stack.deps
    job = accept(VideoRequest.parse_at_edge(body), TENANT, deps)
    assert stack.drain(lambda: deps.jobs.get(TENANT, job.id).status.terminal, timeout_s=60)
    return deps.jobs.get(TENANT, job.id)


def quote(stack: EmbeddedStack) -> dict:
    response = httpx.post(f"{stack.url}/v1/quotes", json=ASK, timeout=30,
                          headers={"Authorization": f"Bearer {stack.admin_key}"})
    assert response.status_code == 200, response.text
    return dict(response.json())


def test_a_gpu_20x_faster_than_the_catalog_wins_the_quote_after_a_handful_of_jobs(fast_stack: EmbeddedStack) -> None:
    deps = fast_stack.deps
    before = quote(fast_stack)
    assert before["chosen"]["provider"] != "local"
    assert before["learned"][LOCAL]["summary"].endswith("catalog (no runs yet)")

    for i in range(5):
        done = run(fast_stack, {**LEARN, "prompt": f"{LEARN['prompt']}, take {i}"})
        assert done.status is JobStatus.SUCCEEDED, done.error

    learned = read(deps.learned.all()[LOCAL])
    assert learned.runs == 5 and 0.5 < learned.time_p50 * FASTER < 2.0

    after = quote(fast_stack)
    assert after["chosen"]["offer"] == LOCAL, after["chosen"]
    figures = after["learned"][LOCAL]
    assert figures["runs"] == 5 and "learned from 5 runs; catalog 5.4 h" in figures["summary"]
    assert figures["p50_s"] < figures["catalog_p50_s"] / 10

    view = httpx.get(f"{fast_stack.url}/v1/providers", timeout=30,
                     headers={"Authorization": f"Bearer {fast_stack.admin_key}"}).json()
    offer = next(o for o in view["offers"] if o["id"] == LOCAL)
    assert offer["learned"]["runs"] == 5 and "learned from 5 runs" in offer["learned"]["summary"]
    # The same GPU's other offers, never run, start from what this one measured (halfway, one sibling).
    sibling = next(o for o in view["offers"] if o["id"].startswith("local/") and o["id"] != LOCAL)["learned"]
    assert sibling["runs"] == 0 and sibling["group_runs"] == 5
    assert "from 5 runs of other local offers (none of its own)" in sibling["summary"]
    assert sibling["p50_s"] < sibling["catalog_p50_s"] / 3

    # The old calibration, told the same, could only have halved the catalog's time: still the cloud.
    context = routing_context(deps)
    clamped = replace(context, learned={LOCAL: Learned(time_p50=0.5, runs=5)})
    decision = route(VideoRequest.parse_at_edge(ASK), deps.catalog.offers, clamped, deps.clock())
    assert decision.chosen is not None and decision.chosen.provider is not ProviderKind.LOCAL


def test_a_failed_attempt_feeds_the_failure_rate_once(fast_stack: EmbeddedStack) -> None:
    deps = fast_stack.deps
    offer = "local/animatediff-sd15"
    body = {"mode": "t2v", "prompt": "[sim:fail] a lighthouse", "resolution": "512x512", "aspect_ratio": "1:1",
            "duration_s": 2, "quality": "draft", "deadline_s": 86400}
    job = run(fast_stack, body)
    assert job.status is JobStatus.FAILED
    stats = deps.learned.all()[offer]
    assert stats.attempts == 2 and stats.runs == 0  # both attempts failed: no time learned from a partial render
    assert read(stats).failure_rate > 0.3
    # A redelivered finalize or failure for an attempt already learned changes nothing.
    again = Observation(ok=True, render_s=1.0, catalog_render_s=100.0)
    assert deps.learned.observe(offer, again, f"att_{job.id.removeprefix('job_')}_1") is None
    assert deps.learned.all()[offer] == stats


def test_concurrent_updates_both_land(fast_stack: EmbeddedStack) -> None:
    """Two finalizes of the same offer at once: the second write finds the version moved and reads again."""
    deps = fast_stack.deps
    ddb, table = deps.learned._ddb, deps.learned._table

    class Racing:
        """Lets another finalize write between this one's read and its conditional put, once."""

        raced = False

        def __getattr__(self, name: str) -> object:
            return getattr(ddb, name)

        def put_item(self, **kwargs: object) -> object:
            if not Racing.raced:
                Racing.raced = True
                LearnedRepository(ddb, table).observe("race/offer", Observation(ok=True, render_s=2.0,
                                                                                catalog_render_s=1.0), "att_b")
            return ddb.put_item(**kwargs)

    LearnedRepository(Racing(), table).observe("race/offer", Observation(ok=True, render_s=4.0, catalog_render_s=1.0),
                                               "att_a")
    stats = deps.learned.all()["race/offer"]
    assert stats.runs == 2 and sorted(stats.times) == [0.6931, 1.3863]
