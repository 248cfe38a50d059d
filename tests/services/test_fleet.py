"""A fleet of GPU boxes behind the one `local` provider (router.providers.fleet): the engine places each local job
on a box that can hold it and answers, the job's provider id names the box, and a dead box's work goes elsewhere."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from router.models.agent import AgentRegistration
from router.models.common import ProviderKind, utcnow
from router.models.job import AttemptStatus, JobStatus
from router.models.outcome import AttemptOutcome
from router.models.request import VideoRequest
from router.policy.engine import route
from router.policy.learning import Observation
from router.policy.plan import follow_plan
from router.providers.agent import AgentProvider
from router.providers.base import ProviderState, ProviderStatus, TargetHealth
from router.providers.errors import Rejected, Unavailable
from router.providers.fleet import FleetProvider
from router.services import agents, submit, sweeper
from router.services.context import routing_context
from router.services.fleet_registry import RegistryBoxes
from router.store.messages import MessageKind
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


def test_a_queued_attempt_is_polled_about_halfway_to_its_boxs_own_start_estimate() -> None:
    """A deep queue isn't polled at the backoff's pace (at 300 jobs the embedded stack's one consumer once fell
    behind, and every late chain drew a sweeper nudge); once the render starts the backoff starts again."""

    class Queued(ScriptedGpu):
        answers = [ProviderState.QUEUED, ProviderState.QUEUED, ProviderState.RUNNING]
        starts_in_s = [1200.0, 400.0]

        def _status(self, provider_job_id: str) -> ProviderStatus:
            if self.answers:
                state = self.answers.pop(0)
                starts = self.starts_in_s.pop(0) if state is ProviderState.QUEUED else None
                return ProviderStatus(provider_job_id, state, starts_in_s=starts)
            return super()._status(provider_job_id)

    world = fleet(Queued(["ok"], "box-a", vram_mb=32 * GB, ram_mb=64 * GB))
    job = submit.accept(VideoRequest.parse_at_edge(ASK), "acme", world.deps)
    world.run()
    assert world.jobs.get("acme", job.id).status is JobStatus.SUCCEEDED
    route_delay, first, after_1200, after_400, after_start, *_ = world.delays
    assert route_delay == 0 and 2.5 <= first <= 5  # the submit's first poll: the backoff's
    assert after_1200 == pytest.approx(600) and after_400 == pytest.approx(200)  # half the box's estimate
    assert 2.5 <= after_start <= 5  # running: the backoff from its first step


@pytest.mark.parametrize("routed_by_the_sweep", [True, False])
def test_a_box_that_missed_its_heartbeats_loses_its_attempts_at_the_next_sweep(
        routed_by_the_sweep: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    """Its attempts end `agent_lost` without waiting out their polls' silence bound (a deep queue's next poll may
    be far off), and the job finishes on a box that still beats: routed by the sweep itself while its budget lasts,
    by a route message after."""
    if not routed_by_the_sweep:
        monkeypatch.setattr(sweeper, "LOST_ROUTE_BUDGET_S", 0.0)

    class Dying(ScriptedGpu):
        dead, asked_dead = False, 0

        def _status(self, provider_job_id: str) -> ProviderStatus:
            if self.dead:
                self.asked_dead += 1
                raise Unavailable("connection refused")
            return super()._status(provider_job_id)

    now = [utcnow()]
    doomed = Dying(["running"], "box-a", vram_mb=32 * GB, ram_mb=64 * GB)
    world = twins({ProviderKind.LOCAL: FleetProvider({"box-a": doomed, "box-b": ScriptedGpu(
        ["ok"], "box-b", vram_mb=32 * GB, ram_mb=64 * GB)})}, clock=lambda: now[0], HVR_EXPLORATION_SHARE="0")
    registration = AgentRegistration(tunnel_url="https://box.gpu.example.com", gpu="RTX", vram_mb=32 * GB,
                                     ram_mb=64 * GB, slots=1, models=["wan22-14b"])
    for name in ("box-a", "box-b"):
        world.deps.agents.heartbeat(name, registration, "key_1", now[0])
    job = submit.accept(VideoRequest.parse_at_edge(ASK), "acme", world.deps)
    world.step()  # the route: placed on box-a (ties go by name); its poll chain's next message is far off
    assert [a.target for a in world.jobs.get("acme", job.id).attempts] == ["box-a"]

    doomed.dead = True
    now[0] += timedelta(seconds=2 * 60)  # past 3 x 30 s of box-a's silence; box-b beats on
    world.deps.agents.heartbeat("box-b", registration, "key_1", now[0])
    assert sweeper.sweep(world.deps).nudged == {"lost_box": 1}
    # Ended by the sweep itself, the box asked once: a message would wait behind whatever the queue holds.
    ended = world.jobs.get("acme", job.id)
    assert ended.attempts[0].status is AttemptStatus.FAILED and doomed.asked_dead == 1
    if routed_by_the_sweep:
        assert [a.target for a in ended.attempts] == ["box-a", "box-b"]
    else:
        assert ended.status is JobStatus.ROUTED and len(ended.attempts) == 1  # the worker routes the fallback
        assert [m.kind for m, _ in world.queue._messages][-1:] == [MessageKind.ROUTE]
    world.run()

    done = world.jobs.get("acme", job.id)
    assert done.status is JobStatus.SUCCEEDED and [a.target for a in done.attempts] == ["box-a", "box-b"]
    assert str(done.attempts[0].reason).startswith(
        "agent_lost: box-a answered nothing and missed its heartbeats (last heard 120 s ago)")
    assert [row.attempt_id for row in world.deps.ledger.for_job("acme", job.id)] == [a.id for a in done.attempts]


def test_each_box_learns_its_own_speed_and_placement_goes_by_it() -> None:
    first = ScriptedGpu(["ok", "ok"], "box-a", vram_mb=32 * GB, ram_mb=64 * GB)
    second = ScriptedGpu(["ok"], "box-b", vram_mb=32 * GB, ram_mb=64 * GB)
    world = fleet(first, second)
    job = submit.accept(VideoRequest.parse_at_edge(ASK), "acme", world.deps)
    world.run()
    offer = world.jobs.get("acme", job.id).attempts[0].offer
    assert {offer, f"{offer}@box-a"} <= set(world.deps.learned.all())  # the fleet's model, and the box's own
    # box-a turns out ten times slower than box-b on this offer: the next job goes to box-b, though ties go by name.
    for n, (box, factor) in enumerate([("box-a", 10.0)] * 3 + [("box-b", 1.0)] * 3):
        observation = Observation(ok=True, render_s=100.0 * factor, catalog_render_s=100.0)
        world.deps.learned.observe(offer, observation, f"att_{n}")
        world.deps.learned.observe(f"{offer}@{box}", observation, f"att_{n}")
    job = submit.accept(VideoRequest.parse_at_edge(ASK), "acme", world.deps)
    world.run()
    assert [a.target for a in world.jobs.get("acme", job.id).attempts] == ["box-b"]
    # `GET /v1/agents` (and `hvr agents`) show what each box taught the router.
    for name in ("box-a", "box-b"):
        heard_from(world, name)
    views = {view.name: view for view in agents.listing(world.deps).agents}
    assert views["box-a"].learned[offer].runs == 4 and views["box-b"].learned[offer].runs == 4
    assert views["box-a"].time_vs_fleet is not None and views["box-b"].time_vs_fleet is not None
    assert views["box-a"].time_vs_fleet > 1 and views["box-a"].time_vs_fleet > 5 * views["box-b"].time_vs_fleet


def test_a_box_that_draws_less_power_is_placed_and_billed_at_its_own_draw() -> None:
    """Energy per box: a GPU-second costs what the box that renders it draws (its registration's `power_w`),
    in the placement and on the ledger row alike."""
    world = fleet(ScriptedGpu(["ok"], "box-a", vram_mb=32 * GB, ram_mb=64 * GB),
                  ScriptedGpu(["ok"], "box-b", vram_mb=32 * GB, ram_mb=64 * GB))
    for name, watts in (("box-a", 900), ("box-b", 450)):
        registration = AgentRegistration(tunnel_url=f"https://{name}.gpu.example.com", gpu="RTX", vram_mb=32 * GB,
                                         ram_mb=64 * GB, slots=1, models=["wan22-14b"], power_w=watts)
        world.deps.agents.heartbeat(name, registration, "key_1", utcnow())
    job = submit.accept(VideoRequest.parse_at_edge(ASK), "acme", world.deps)
    world.run()
    done = world.jobs.get("acme", job.id)
    assert [a.target for a in done.attempts] == ["box-b"]  # ties would go to box-a, by name
    [row] = world.deps.ledger.for_job("acme", job.id)
    catalog = world.deps.catalog.get(done.attempts[0].offer)
    assert catalog is not None and catalog.pricing.kind == "local_energy"
    assert row.unit == "gpu_second" and row.unit_price_usd == (catalog.pricing.energy_usd_per_gpu_second / 2).quantize(
        row.unit_price_usd)


def test_a_registry_fleet_reaches_each_box_where_it_announced_itself_with_its_own_key() -> None:
    """HVR_AGENTS=registry (router.services.fleet_registry): read again every REFRESH_S; a client per box, made again
    only when its address or key changes; a box whose keys were revoked is left out."""
    world = twins({})
    ticks = [0.0]
    boxes = RegistryBoxes(world.deps.agents, world.deps.agent_keys, world.deps.clock, refresh_s=10.0,
                          monotonic=lambda: ticks[0])
    key = world.deps.agent_keys.issue("box-a", utcnow(), overlap_s=3600)

    def beat(url: str) -> None:
        registration = AgentRegistration(tunnel_url=url, gpu="RTX", vram_mb=32 * GB, ram_mb=64 * GB, slots=1,
                                         models=["wan22-14b"])
        world.deps.agents.heartbeat("box-a", registration, key.key_id, utcnow())

    assert boxes() == {}
    beat("https://box-a.gpu.example.com")
    assert boxes() == {}  # not read again before REFRESH_S
    ticks[0] = 10.0
    first = boxes()["box-a"]
    assert isinstance(first, AgentProvider) and first.base_url == "https://box-a.gpu.example.com"
    ticks[0] = 20.0
    assert boxes()["box-a"] is first  # same address, same key: the same client
    beat("https://box-a-new.gpu.example.com")
    ticks[0] = 30.0
    moved = boxes()["box-a"]
    assert isinstance(moved, AgentProvider) and moved.base_url == "https://box-a-new.gpu.example.com"
    world.deps.agent_keys.revoke("box-a", utcnow())
    ticks[0] = 40.0
    assert boxes() == {}


def test_a_campaigns_planned_local_offer_goes_to_the_box_the_engine_placed_it_on() -> None:
    """`follow_plan` swaps the engine's choice for the planned offer: the planned offer keeps the box its figures
    were made for, not the fleet's name."""
    world = fleet(ScriptedGpu([], "3080", vram_mb=10 * GB, ram_mb=32 * GB),
                  ScriptedGpu([], "5090", vram_mb=32 * GB, ram_mb=64 * GB))
    context = routing_context(world.deps)
    decision = route(VideoRequest.parse_at_edge(ASK), world.deps.catalog.offers, context, utcnow())
    assert decision.chosen is not None and decision.chosen.target == "5090"
    [row] = [c for c in decision.candidates if c.offer == "local/wan22-14b"]
    assert row.feasible and row.target == "5090"
    engine = replace(decision, chosen=replace(decision.chosen, offer="replicate/wan-2.2-t2v-fast",
                                              provider=ProviderKind.REPLICATE, target="replicate"))
    followed = follow_plan(engine, "local/wan22-14b", context)
    assert followed.chosen is not None and followed.chosen.offer == "local/wan22-14b"
    assert followed.chosen.target == "5090"
