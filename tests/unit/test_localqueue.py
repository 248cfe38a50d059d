"""The local GPU's queue (router.policy.localqueue): priced in learned figures, run earliest deadline first, and
weighed that way by the engine, the services' context and the simulator."""

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from hvr.sim.simulator import simulate
from hvr.sim.truth import Truth, TruthConfig
from hvr.sim.workload import Arrival
from router.models.common import ProviderKind
from router.models.decision import DeliveredSpec
from router.models.request import VideoRequest
from router.policy import localqueue
from router.policy.catalog import load_catalog
from router.policy.context import RoutingContext, TargetState
from router.policy.engine import route
from router.policy.learning import Learned
from router.policy.localqueue import Work
from router.providers.agent import AgentProvider
from router.providers.base import QueuedRender, Submission, TargetHealth
from router.services.context import priced_queue

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
CATALOG = load_catalog()
OFFERS = CATALOG.offers
WAN = next(o for o in OFFERS if o.id == "local/wan21-14b")
FAST = Learned(runs=12, time_p50=0.05)  # a GPU 20x faster than the catalog's minutes per frame


def later(seconds: float) -> datetime:
    return NOW + timedelta(seconds=seconds)


def draft(**fields: object) -> VideoRequest:
    """A 512x512 draft: only AnimateDiff, on the local GPU, renders it (2 s: 48 min at the catalog's p90)."""
    body = {"mode": "t2v", "prompt": "a paper boat", "resolution": "512x512", "aspect_ratio": "1:1",
            "duration_s": 2, "quality": "draft", **fields}
    return VideoRequest.parse_at_edge(body, NOW)


def with_gpu(queue: tuple[Work, ...]) -> RoutingContext:
    targets = {kind: TargetState(name=kind.value) for kind in ProviderKind}
    ordered = localqueue.run_order(queue)
    targets[ProviderKind.LOCAL] = TargetState(name="agent-1", queue=ordered,
                                              queue_wait_s=localqueue.wait_s(ordered, None, 1))
    return RoutingContext(targets=targets, configured=frozenset(ProviderKind))


def test_work_left_is_the_learned_p50_less_the_share_done() -> None:
    catalog_p50 = WAN.latency.compute_seconds(832, 480, 81, p90=False)

    assert localqueue.work_left(WAN, 832, 480, 81, 0.0, None) == catalog_p50
    assert localqueue.work_left(WAN, 832, 480, 81, 0.5, FAST) == catalog_p50 * 0.05 * 0.5
    assert localqueue.work_left(WAN, 832, 480, 81, 1.0, FAST) == 0.0


def test_a_newcomer_waits_for_what_runs_and_what_is_due_before_it() -> None:
    queue = localqueue.run_order((Work(900, later(86400)), Work(300, later(600), running=True),
                                  Work(600, later(3600)), Work(400, None)))

    assert [w.left_s for w in queue] == [300, 600, 900, 400]  # running, then by deadline, no deadline last
    assert localqueue.wait_s(queue, later(3600), slots=1) == 300 + 600  # ties go to the job already there
    assert localqueue.wait_s(queue, later(60), slots=1) == 300  # what runs is never interrupted
    assert localqueue.wait_s(queue, None, slots=2) == (300 + 600 + 900 + 400) / 2


def test_a_newcomer_displaces_only_a_job_it_turns_late() -> None:
    queue = localqueue.run_order((Work(300, None, running=True), Work(1000, later(2000)), Work(500, later(9000))))

    assert not localqueue.displaces(queue, later(1000), 600, 1, NOW)  # 300 + 1000 + 600 <= 2000
    assert localqueue.displaces(queue, later(1000), 800, 1, NOW)  # 300 + 1000 + 800 > 2000
    assert not localqueue.displaces(queue, later(3000), 5000, 1, NOW)  # due after the first; 1800 + 5000 <= 9000
    assert not localqueue.displaces(queue, None, 50_000, 1, NOW)  # no deadline: it goes last
    late = localqueue.run_order((Work(3000, None, running=True), Work(1000, later(2000))))
    assert not localqueue.displaces(late, later(1000), 800, 1, NOW)  # already late: no promise to break


def test_a_gpu_only_draft_goes_ahead_of_long_jobs_due_later() -> None:
    # A WAN render running and three queued, each with a day to spare: first come, first served, the draft would
    # wait 2 h 10 min and miss its 90 minutes.
    long_jobs = (Work(600, later(86400), running=True), *(Work(2400, later(86400 + n)) for n in range(3)))
    request = draft(deadline_s=5400)

    decision = route(request, OFFERS, with_gpu(long_jobs), NOW)
    context = with_gpu(())
    first_come = replace(context, targets={**context.targets,
                                           ProviderKind.LOCAL: TargetState(name="agent-1", queue_wait_s=600 + 7200)})

    assert decision.chosen is not None and decision.chosen.offer == "local/animatediff-sd15"
    assert decision.chosen.estimated_ready_at <= later(5400)
    assert route(request, OFFERS, first_come, NOW).chosen is None


def test_a_draft_that_would_make_a_queued_job_late_is_refused() -> None:
    # The queued job is due at +5,500 s and finishes at +3,000 s; the draft (due +5,400 s, 48 min at p90) would go
    # first and push it to +5,900 s.
    queue = (Work(600, None, running=True), Work(2400, later(5500)))

    decision = route(draft(deadline_s=5400), OFFERS, with_gpu(queue), NOW)

    assert decision.chosen is None
    row = next(c for c in decision.candidates if c.offer == "local/animatediff-sd15")
    assert [r.code for r in row.reasons] == ["displaces"]


def test_the_agents_queue_is_priced_in_learned_figures() -> None:
    # The agent says 2 h of WAN 14B work is left (its own catalog figures); the router has learned that this GPU
    # renders WAN 14B 20x faster than that, so it is 6 min.
    catalog_left = WAN.latency.compute_seconds(832, 480, 81, p90=False) * 0.5
    health = TargetHealth(name="agent-1", up=True, queue_wait_s=catalog_left + 50, slots=1, queue=(
        QueuedRender(model="wan21-14b", width=832, height=480, frames=81, running=True, progress=0.5, deadline=None,
                     left_s=catalog_left),
        QueuedRender(model="not-in-the-catalog", width=64, height=64, frames=8, running=False, progress=0.0,
                     deadline=later(600), left_s=50.0),
    ))

    target = priced_queue(TargetState(name="agent-1", queue_wait_s=health.queue_wait_s), health, OFFERS,
                          {"local/wan21-14b": FAST}, NOW)

    assert target.queue == (Work(catalog_left * 0.05, None, running=True), Work(50.0, later(600)))
    assert target.queue_wait_s == catalog_left * 0.05 + 50.0  # a model it doesn't know keeps the agent's figure
    assert priced_queue(TargetState(name="agent-1"), health, OFFERS, {}, NOW).queue_wait_s == catalog_left + 50


def test_an_exploring_try_holds_the_gpu_until_its_stop_at_most() -> None:
    # A try of WAN 14B, untried, is priced at the catalog's hours; the router stops it in 30 min if unfinished, so
    # a newcomer due after it waits 30 min for it, not hours (a GPU-only draft is not refused for a try's sake).
    catalog_left = WAN.latency.compute_seconds(832, 480, 81, p90=False)
    try_ = QueuedRender(model="wan21-14b", width=832, height=480, frames=81, running=True, progress=0.0,
                        deadline=later(7200), left_s=catalog_left, stop_at=later(1800))
    health = TargetHealth(name="agent-1", up=True, queue_wait_s=catalog_left, slots=1, queue=(try_,))

    assert priced_queue(TargetState(name="agent-1"), health, OFFERS, {}, NOW).queue_wait_s == 1800.0
    assert priced_queue(TargetState(name="agent-1"), health, OFFERS, {}, later(2000)).queue_wait_s == 0.0
    fast = priced_queue(TargetState(name="agent-1"), health, OFFERS, {"local/wan21-14b": FAST}, NOW)
    assert fast.queue_wait_s == catalog_left * 0.05  # done before its stop: its own time
    decision = route(draft(deadline_s=3 * 3600), OFFERS, RoutingContext(
        targets={ProviderKind.LOCAL: priced_queue(TargetState(name="agent-1"), health, OFFERS, {}, NOW)}), NOW)
    assert decision.chosen is not None and decision.chosen.offer == "local/animatediff-sd15"


def test_the_agent_adapter_sends_the_deadline_and_reads_the_queue() -> None:
    sent: list[dict[str, Any]] = []
    health = {"status": "ok", "slots": 2, "eta_s": 7200.0, "queue_depth": 1, "running": 1, "queue": [
        {"model": "wan21-14b", "spec": {"width": 832, "height": 480, "frames": 81, "fps": 16}, "status": "running",
         "progress": 0.25, "deadline": None, "left_s": 5400.0},
        {"model": "animatediff-sd15", "spec": {"width": 512, "height": 512, "frames": 16, "fps": 8},
         "status": "queued", "progress": 0.0, "deadline": "2026-11-25T13:30:00Z", "left_s": 2420.0,
         "stop_at": "2026-11-25T12:30:00Z"}]}

    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v1/health":
            return httpx.Response(200, json=health)
        sent.append(json.loads(request.content))
        return httpx.Response(201, json={"id": sent[-1]["attempt_id"], "status": "queued", "progress": 0.0})

    agent = AgentProvider("http://agent.test", "secret",
                          client=httpx.Client(base_url="http://agent.test", transport=httpx.MockTransport(answer)))
    offer = next(o for o in OFFERS if o.id == "local/animatediff-sd15")
    agent.submit(Submission(attempt_id="att_1", job_id="job_1", tenant="t", offer=offer, request=draft(),
                            delivered=DeliveredSpec(512, 512, 16, 8), output_put_url="https://s3/put",
                            deadline=later(5400), stop_at=later(1800)))
    seen = agent.health()

    assert sent[0]["deadline"] == "2026-11-25T13:30:00+00:00" and sent[0]["stop_at"] == "2026-11-25T12:30:00+00:00"
    assert seen.slots == 2 and seen.queue == (
        QueuedRender("wan21-14b", 832, 480, 81, running=True, progress=0.25, deadline=None, left_s=5400.0),
        QueuedRender("animatediff-sd15", 512, 512, 16, running=False, progress=0.0, deadline=later(5400),
                     left_s=2420.0, stop_at=later(1800)))


class _AllLocal:
    """Sends every request to one local offer, to watch the simulated GPU's order."""

    name = "all_local"
    learns = False

    def decide(self, request: VideoRequest, context: RoutingContext, now: datetime,
               deadline: datetime | None, planned: str | None = None) -> str | None:
        return "local/animatediff-sd15"

    def campaign_plan(self, *args: object) -> dict[int, str]:
        return {}  # no campaigns here

    def exploration(self, key: int, jobs_today: int, usd_today: object) -> None:
        return None  # it never explores: only the order on the GPU is under test


def test_the_simulated_gpu_runs_earliest_deadline_first() -> None:
    def job(minutes: float, duration_s: float, deadline_s: int) -> Arrival:
        at = NOW + timedelta(minutes=minutes)
        return Arrival(at, draft(duration_s=duration_s, deadline_s=deadline_s))

    arrivals = [job(0, 8, 86400), job(1, 8, 86400), job(2, 2, 6 * 3600)]  # the last is due first

    run = simulate(arrivals, OFFERS, _AllLocal(), Truth(TruthConfig(seed=1, failure_rate={})))

    started = [j.attempts[0].started_at or 0.0 for j in run.jobs]
    assert started[0] == run.jobs[0].arrival_t
    assert started[0] < started[2] < started[1]  # it overtook the queued job, not the running one
    assert all(j.delivered for j in run.jobs)
