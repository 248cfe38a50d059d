"""A fleet of GPU boxes behind the one `local` provider (router.providers.fleet): the engine places each local job
on a box that can hold it and answers, the job's provider id names the box, and a dead box's work goes elsewhere."""

from __future__ import annotations

from datetime import timedelta

import pytest

from router.models.agent import AgentRegistration
from router.models.common import ProviderKind, utcnow
from router.models.job import JobStatus
from router.models.outcome import AttemptOutcome
from router.models.request import VideoRequest
from router.policy.engine import route
from router.providers.base import TargetHealth
from router.providers.errors import Rejected
from router.providers.fleet import FleetProvider
from router.services import submit
from router.services.context import routing_context
from tests.twins import ScriptedGpu, Twins, twins

GB = 1024
ASK = {"mode": "t2v", "prompt": "a kite over the harbour", "resolution": "720p", "duration_s": 2,
       "model": "local/wan22-14b"}


def fleet(*boxes: ScriptedGpu) -> Twins:
    return twins({ProviderKind.LOCAL: FleetProvider({box.name: box for box in boxes})}, HVR_EXPLORATION_SHARE="0")


def test_a_job_goes_to_the_box_that_can_hold_it_and_its_provider_id_names_that_box() -> None:
    small = ScriptedGpu(["ok"], "3080", vram_mb=10 * GB, ram_mb=32 * GB)
    big = ScriptedGpu(["ok"], "5090", vram_mb=32 * GB, ram_mb=64 * GB)
    world = fleet(small, big)
    job = submit.accept(VideoRequest.parse_at_edge(ASK), "acme", world.deps)
    world.run()
    done = world.jobs.get("acme", job.id)
    assert done.status is JobStatus.SUCCEEDED, done.error
    [attempt] = done.attempts
    assert attempt.target == "5090" and attempt.provider_job_id is not None
    assert attempt.provider_job_id.startswith("5090/") and not small.jobs and len(big.jobs) == 1
    [row] = world.deps.ledger.for_job("acme", job.id)
    assert row.outcome is AttemptOutcome.SUCCEEDED


def test_the_quote_names_each_box_that_cant_take_the_job_and_why() -> None:
    world = fleet(ScriptedGpu([], "3080", vram_mb=10 * GB, ram_mb=32 * GB),
                  ScriptedGpu([], "4090", vram_mb=24 * GB, ram_mb=32 * GB))
    context = routing_context(world.deps)
    assert [box.name for box in context.boxes[ProviderKind.LOCAL]] == ["3080", "4090"]
    decision = route(VideoRequest.parse_at_edge(ASK), world.deps.catalog.offers, context, utcnow())
    [row] = [c for c in decision.candidates if c.offer == "local/wan22-14b"]
    assert not row.feasible and decision.chosen is None
    assert [str(r) for r in row.reasons] == [
        "vram: 3080: 10 GB card, needs 32 GB for wan22-14b 720p (24 GB offloading to 64 GB of RAM; the box has 32 GB)",
        "vram: 4090: 24 GB card, needs 32 GB for wan22-14b 720p (24 GB offloading to 64 GB of RAM; the box has 32 GB)"]


def test_a_box_that_is_down_gets_nothing_and_the_job_runs_on_another() -> None:
    dead = ScriptedGpu(["ok"], "5090", up=False, vram_mb=32 * GB, ram_mb=64 * GB)
    alive = ScriptedGpu(["ok"], "4090", vram_mb=24 * GB, ram_mb=64 * GB)
    world = fleet(dead, alive)
    job = submit.accept(VideoRequest.parse_at_edge(ASK), "acme", world.deps)
    world.run()
    done = world.jobs.get("acme", job.id)
    assert done.status is JobStatus.SUCCEEDED and [a.target for a in done.attempts] == ["4090"]
    assert not dead.jobs


def test_a_box_that_crashes_a_render_falls_back_to_another_box() -> None:
    flaky = ScriptedGpu(["crash", "crash"], "5090", vram_mb=32 * GB, ram_mb=64 * GB)
    steady = ScriptedGpu(["ok"], "4090", vram_mb=24 * GB, ram_mb=64 * GB)
    world = fleet(flaky, steady)
    job = submit.accept(VideoRequest.parse_at_edge(ASK), "acme", world.deps)
    world.run()
    done = world.jobs.get("acme", job.id)
    assert done.status is JobStatus.SUCCEEDED, done.error
    assert done.attempts[-1].target == "4090" and len(steady.jobs) == 1


def test_a_lookup_asks_every_box_and_a_job_id_naming_no_box_is_refused() -> None:
    first, second = ScriptedGpu(["running"], "5090"), ScriptedGpu(["running"], "4090")
    world = fleet(first, second)
    job = submit.accept(VideoRequest.parse_at_edge({**ASK, "model": "local/wan21-1.3b", "resolution": "480p"}),
                        "acme", world.deps)
    while not (first.jobs or second.jobs):
        world.step()
    provider = world.deps.providers[ProviderKind.LOCAL]
    attempt = world.jobs.get("acme", job.id).attempts[0]
    found = provider.lookup(attempt.id)
    assert found is not None and found.provider_job_id == attempt.provider_job_id
    assert provider.lookup("att_nobody_1") is None
    with pytest.raises(Rejected, match="names no box"):
        provider.status("ghost/operations/1")


def heard_from(world: Twins, name: str, *, minutes_ago: float = 0.0, draining: bool = False) -> None:
    registration = AgentRegistration(tunnel_url=f"https://{name}.gpu.example.com", gpu="RTX", vram_mb=32 * GB,
                                     ram_mb=64 * GB, slots=1, models=["wan22-14b"])
    world.deps.agents.heartbeat(name, registration, "key_1", utcnow() - timedelta(minutes=minutes_ago))
    if draining:
        world.deps.agents.set_draining(name, True, utcnow())


@pytest.mark.parametrize(("minutes_ago", "draining"), [(0.0, True), (5.0, False)], ids=["drained", "silent"])
def test_a_box_the_registry_says_is_drained_or_silent_takes_no_new_job(minutes_ago: float, draining: bool) -> None:
    # Two boxes alike: placement would take box-a (ties go by name) but for what the registry says of it.
    first = ScriptedGpu(["ok"], "box-a", vram_mb=32 * GB, ram_mb=64 * GB)
    second = ScriptedGpu(["ok"], "box-b", vram_mb=32 * GB, ram_mb=64 * GB)
    world = fleet(first, second)
    heard_from(world, "box-a", minutes_ago=minutes_ago, draining=draining)
    heard_from(world, "box-b")
    job = submit.accept(VideoRequest.parse_at_edge(ASK), "acme", world.deps)
    world.run()
    done = world.jobs.get("acme", job.id)
    assert done.status is JobStatus.SUCCEEDED and [a.target for a in done.attempts] == ["box-b"] and not first.jobs


def test_a_box_that_never_registered_is_judged_by_its_health_alone() -> None:
    box = ScriptedGpu(["ok"], "5090", vram_mb=32 * GB, ram_mb=64 * GB)
    world = fleet(box)
    heard_from(world, "some-other-box", draining=True)
    job = submit.accept(VideoRequest.parse_at_edge(ASK), "acme", world.deps)
    world.run()
    assert world.jobs.get("acme", job.id).status is JobStatus.SUCCEEDED and len(box.jobs) == 1


def test_a_box_that_failed_its_health_check_is_not_asked_again_until_the_recheck_time() -> None:
    class Counting(ScriptedGpu):
        asked = 0

        def _health(self) -> TargetHealth:
            Counting.asked += 1
            return super()._health()

    now = [0.0]
    dead = Counting([], "dead", up=False)
    fleet_provider = FleetProvider({"dead": dead, "alive": ScriptedGpu([], "alive")}, down_recheck_s=10.0,
                                   clock=lambda: now[0])
    for moment in (0.0, 1.0, 9.9):
        now[0] = moment
        boxes = {box.name: box.up for box in fleet_provider.health().boxes}
        assert boxes == {"dead": False, "alive": True}
    assert Counting.asked == 1  # asked once, then taken as down for 10 s
    now[0] = 10.0
    fleet_provider.health()
    assert Counting.asked == 2
