"""A target that stops answering: the GPU agent killed, a provider whose status calls fail, a submit whose answer
was lost and then a cancel. Each attempt ends within its bound and the job falls back (or fails with the reason);
polling backs off instead of multiplying; what the provider ran is billed even when we learn it late."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
import time
from decimal import Decimal

import pytest

from hvr.sandbox.base import Fault
from router.models.common import ProviderKind
from router.models.job import AttemptStatus, JobStatus
from router.models.request import VideoRequest
from router.providers.errors import Unavailable
from router.services import poll_chain, route, settle, sweeper
from router.services.cancel import cancel
from router.services.submit import accept
from router.store.messages import MessageKind

TENANT = "dead"
LOCAL_OR_REPLICATE = {"mode": "t2v", "prompt": "a kite over dunes", "resolution": "480p", "duration_s": 5,
                      "quality": "standard", "providers": ["local", "replicate"], "deadline_s": 86400}
LOCAL_ONLY = {"mode": "t2v", "prompt": "a mug on a turntable", "resolution": "480p", "duration_s": 2,
              "quality": "standard", "providers": ["local"]}  # no deadline: only the bound ends it
DRAFT_512 = {"mode": "t2v", "prompt": "a paper boat", "resolution": "512x512", "aspect_ratio": "1:1",
             "duration_s": 2, "quality": "draft", "deadline_s": 86400}
RUNPOD_720 = {"mode": "t2v", "prompt": "waves on black sand", "resolution": "720p", "duration_s": 5,
              "quality": "premium", "providers": ["runpod"], "deadline_s": 3600}
BOUND_S = 1.0  # the unreachable bound's real-time floor, shortened so each dead attempt ends in about a second


@pytest.fixture
def short_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    # Where the worker read it before the split into route/poll/finalize: the give-up bound and the chain's grace.
    monkeypatch.setattr(route, "UNREACHABLE_FLOOR_S", BOUND_S)
    monkeypatch.setattr(poll_chain, "UNREACHABLE_FLOOR_S", BOUND_S)


class Sent(list):
    """Every message queued, in order; `here`: those queued by the test's own thread (its sweeps), not by the
    webhook handlers serving the agent's and the sandboxes' callbacks."""

    def __init__(self) -> None:
        super().__init__()
        self.here: list = []


@pytest.fixture
def sent(deps, monkeypatch: pytest.MonkeyPatch) -> Sent:
    messages = Sent()
    real = deps.queue.send

    def spy(message, delay_s: float = 0) -> None:
        messages.append(message)
        if threading.current_thread() is threading.main_thread():
            messages.here.append(message)
        real(message, delay_s=delay_s)

    monkeypatch.setattr(deps.queue, "send", spy)
    return messages


def queued(stack) -> int:
    """Messages in the jobs queue, visible, in flight and delayed."""
    attrs = stack.deps.queue._sqs.get_queue_attributes(
        QueueUrl=stack.stack.queue_urls["JobsQueue"],
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible",
                        "ApproximateNumberOfMessagesDelayed"])["Attributes"]
    return sum(int(v) for v in attrs.values())


def submitted_to(stack, deps, body: dict):
    job = accept(VideoRequest.parse_at_edge(body), TENANT, deps)
    assert stack.drain(lambda: deps.jobs.get(TENANT, job.id).status in (JobStatus.SUBMITTED, JobStatus.RUNNING),
                       timeout_s=30)
    return deps.jobs.get(TENANT, job.id)


def finish(stack, deps, job_id: str, timeout_s: float = 60):
    assert stack.drain(lambda: deps.jobs.get(TENANT, job_id).status.terminal, timeout_s=timeout_s)
    return deps.jobs.get(TENANT, job_id)


def test_a_killed_agent_ends_its_attempt_agent_lost_and_the_job_falls_back_to_the_cloud(
        stack, deps, sent, short_bound, capsys) -> None:
    # Replicate's circuit held open for the first decision only, so the local GPU gets the job. Closed by hand once
    # it has: a cooldown that lapses on its own would reopen Replicate mid-decision on a slow machine.
    for _ in range(deps.circuits.threshold):
        deps.circuits.failure("replicate", deps.clock(), cooldown_s=3600.0)
    try:
        job = submitted_to(stack, deps, LOCAL_OR_REPLICATE)
    finally:
        deps.circuits.success("replicate")
    assert job.attempts[0].provider is ProviderKind.LOCAL
    stack.agent.kill()
    killed, depth = deps.clock(), queued(stack)
    done = finish(stack, deps, job.id)
    fallback_s = (done.attempts[1].started_at - killed).total_seconds()
    first, last = done.attempts[0], done.attempts[-1]
    assert first.status is AttemptStatus.FAILED and str(first.reason or "").startswith("agent_lost: agent-1")
    assert last.provider is ProviderKind.REPLICATE and done.status is JobStatus.SUCCEEDED, done.error
    polls = [m for m in sent if m.kind is MessageKind.POLL and m.attempt_id == first.id]
    # One chain, backing off: a poll a second or more apart until the bound, never a second chain beside it.
    assert len({m.chain for m in polls}) == 1 and len(polls) <= 6, polls
    done_s = (deps.clock() - killed).total_seconds()
    with capsys.disabled():
        print(f"\n  dead agent: fallback {fallback_s:.1f} s after the kill, done {done_s:.1f} s, {len(polls)} polls of"
              f" the dead attempt, jobs queue {depth} -> {queued(stack)} messages")


def test_a_local_only_job_without_deadline_fails_agent_lost_when_the_agent_is_gone(
        stack, deps, short_bound) -> None:
    job = submitted_to(stack, deps, LOCAL_ONLY)
    stack.agent.kill()
    done = finish(stack, deps, job.id)
    assert done.status is JobStatus.FAILED and done.error is not None and done.error.code == "agent_lost"
    assert all(str(a.reason or "").startswith("agent_lost") for a in done.attempts)
    assert [row.outcome for row in deps.ledger.for_job(TENANT, job.id)] == ["failed"]


class _StatusDown:
    """A provider whose jobs are accepted but whose status calls never connect."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.asked = 0

    def status(self, provider_job_id: str):
        self.asked += 1
        raise Unavailable("connect failed: [Errno 111] Connection refused")

    def __getattr__(self, name):
        return getattr(self.inner, name)


def test_a_cloud_provider_unreachable_on_status_ends_provider_unreachable(stack, deps, short_bound) -> None:
    down = _StatusDown(deps.providers[ProviderKind.RUNPOD])
    deps.providers[ProviderKind.RUNPOD] = down
    try:
        job = accept(VideoRequest.parse_at_edge(RUNPOD_720), TENANT, deps)
        done = finish(stack, deps, job.id)
    finally:
        deps.circuits.success("runpod")
    assert done.status is JobStatus.FAILED and done.error is not None
    assert done.error.code == "provider_unreachable"
    assert done.attempts and all(str(a.reason or "").startswith("provider_unreachable: runpod") for a in done.attempts)
    # Backed off per attempt (about one call a second until the bound), not a storm of redeliveries.
    assert down.asked <= 6 * len(done.attempts)


def test_sweeps_over_a_running_job_with_a_live_poll_chain_send_no_extra_poll(stack, deps, sent) -> None:
    job = submitted_to(stack, deps, DRAFT_512)
    sent.here.clear()
    for _ in range(3):
        time.sleep(0.5)  # quieter than POLL_TIMEOUT_S at this time scale, well within the chain's due time
        sweeper.sweep(deps)
    assert [m for m in sent.here if m.job_id == job.id] == []
    assert finish(stack, deps, job.id).status is JobStatus.SUCCEEDED


def test_a_lost_poll_chain_is_restarted_once_and_the_old_one_stops(stack, deps, sent) -> None:
    job = submitted_to(stack, deps, {**LOCAL_ONLY, "deadline_s": 86400})
    attempt = job.attempts[0]

    def lose(draft):
        draft.attempts[0].poll_due_at = deps.clock().replace(year=2000)  # as if its message died long ago
        return draft.status

    deps.jobs.update(TENANT, job.id, lose)
    sent.here.clear()
    time.sleep(0.1)
    first = sweeper.sweep(deps).nudged
    give_up = time.monotonic() + 30
    while first == {"held_for_backlog": 1} and time.monotonic() < give_up:
        time.sleep(0.1)  # a live message not yet taken (a slow machine's consumer lags): rescues wait for it
        first = sweeper.sweep(deps).nudged
    assert first == {"poll": 1}
    # The first nudge still waits in the queue: a second would only queue behind it (sweeper.RESCUES).
    assert sweeper.sweep(deps).nudged == {"held_for_backlog": 1}
    nudges = [m for m in sent.here if m.job_id == job.id]
    assert [m.kind for m in nudges] == [MessageKind.POLL]
    done = finish(stack, deps, job.id)
    assert done.status is JobStatus.SUCCEEDED
    # One nudge, at most one new chain (none if the render ended first); once it runs, the old one is silent.
    chains = [m.chain for m in sent if m.attempt_id == attempt.id and m.chain is not None]
    assert set(chains) <= {attempt.poll_chain, attempt.poll_chain + 1}, chains
    assert done.attempts[0].poll_chain <= attempt.poll_chain + 1
    if attempt.poll_chain + 1 in chains:
        assert attempt.poll_chain not in chains[chains.index(attempt.poll_chain + 1):], chains


def test_cancelling_an_accepted_but_unanswered_runpod_job_bills_what_runpod_reports(stack, deps) -> None:
    runpod = stack.sandboxes.servers["runpod"]
    before = runpod.created
    runpod.plan.queue("create", Fault.ACCEPT_THEN_DROP)
    job = accept(VideoRequest.parse_at_edge(RUNPOD_720), TENANT, deps)
    assert stack.drain(lambda: deps.jobs.get(TENANT, job.id).attempts
                       and deps.jobs.get(TENANT, job.id).attempts[0].submit_tries >= 1, timeout_s=30)

    cancelled = cancel(TENANT, job.id, deps)
    assert cancelled.status is JobStatus.CANCELLED and cancelled.cancel is not None and cancelled.cancel.billed
    assert cancelled.attempts[0].settle_as == "cancelled" and not cancelled.attempts[0].status.ended
    assert deps.ledger.for_job(TENANT, job.id) == []  # nothing billed on a guess

    # RunPod's completion webhook names the attempt: the worker stops (here: finds finished) and bills it.
    assert stack.drain(lambda: deps.jobs.get(TENANT, job.id).attempts[0].status.ended, timeout_s=30)
    settled = deps.jobs.get(TENANT, job.id)
    [row] = deps.ledger.for_job(TENANT, job.id)
    runpod_job = runpod.job_state(row.provider_job_id.split("/", 1)[1])
    assert runpod_job is not None and runpod_job["status"] == "COMPLETED"
    assert row.outcome == "cancelled" and row.actual_usd == Decimal(str(runpod_job["output"]["cost"])) > 0
    assert settled.status is JobStatus.CANCELLED and settled.cancel is not None and settled.cancel.billed
    assert settled.cost.actual_usd == row.actual_usd == settled.attempts[0].actual_cost_usd
    assert settled.attempts[0].status is AttemptStatus.CANCELLED and settled.attempts[0].provider_job_id
    assert runpod.created - before == 1


def test_cancelling_a_veo_render_that_cannot_be_stopped_bills_it_when_it_renders(stack, deps, monkeypatch) -> None:
    # The sandbox renders in real CPU time, which the time scale doesn't shorten: on a loaded machine an 8 s 720p
    # render outlasts the late-settle bound's 5 s floor and the attempt closes unbilled (the give-up path, tested on
    # its own). This test is about the render that does finish, so the bound waits for it.
    monkeypatch.setattr(settle, "UNREACHABLE_FLOOR_S", 300.0)
    veo = {"mode": "t2v", "prompt": "a perfume bottle", "resolution": "720p", "duration_s": 8, "quality": "premium",
           "providers": ["veo"], "deadline_s": 3600}
    job = submitted_to(stack, deps, veo)
    cancelled = cancel(TENANT, job.id, deps)  # Veo has no cancel and the operation isn't done yet
    assert cancelled.status is JobStatus.CANCELLED and cancelled.cancel is not None and cancelled.cancel.billed
    assert cancelled.attempts[0].settle_as == "cancelled" and deps.ledger.for_job(TENANT, job.id) == []

    def ended() -> bool:
        return deps.jobs.get(TENANT, job.id).attempts[0].status.ended

    nudges = 0
    give_up = time.monotonic() + 120
    while time.monotonic() < give_up:  # the sweeper's period: it asks again until the render is done
        time.sleep(0.1)
        nudges += sweeper.sweep(deps).nudged.get("settle", 0)
        if stack.drain(ended, timeout_s=1):
            break
    assert ended() and nudges >= 1
    settled = deps.jobs.get(TENANT, job.id)
    [row] = deps.ledger.for_job(TENANT, job.id)
    assert row.outcome == "cancelled" and row.unit == "output_second" and row.actual_usd > 0
    assert settled.cost.actual_usd == row.actual_usd and settled.cancel is not None and settled.cancel.billed
    assert sweeper.sweep(deps).nudged.get("settle") is None  # settled: out of the sweeper's index


def test_the_embedded_stack_restarts_a_dead_agent_and_says_so(stack, deps, monkeypatch) -> None:
    said: list[str] = []
    monkeypatch.setattr(stack, "notify", said.append)
    old = stack.agent.pid
    stack.agent.kill()
    assert stack.restart_dead_agent()
    assert stack.agent.running and stack.agent.pid != old
    assert said and "restarted" in said[0] and str(stack.agent.pid) in said[0]
    assert not stack.restart_dead_agent()  # alive: nothing to do
    job = accept(VideoRequest.parse_at_edge(DRAFT_512), TENANT, deps)
    assert finish(stack, deps, job.id).status is JobStatus.SUCCEEDED


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as stat:  # a zombie is gone too, waiting only for its parent to reap it
        return stat.read().split(")")[-1].split()[0] != "Z"


def _run(script: str) -> str:
    result = subprocess.run([sys.executable, "-c", textwrap.dedent(script)], capture_output=True, text=True,
                            timeout=120, cwd=os.getcwd())
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def _wait_gone(pid: int, timeout_s: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not _alive(pid):
            return True
        time.sleep(0.1)
    return False


def test_a_failed_embedded_start_leaves_no_agent_process(tmp_path) -> None:
    # In a process of its own: a second stack here would share (and wipe) the module stack's moto state.
    out = _run(f"""
        import socket
        from pathlib import Path
        from hvr.local.embedded import EmbeddedStack
        taken = socket.socket(); taken.bind(("127.0.0.1", 0)); taken.listen()
        stack = EmbeddedStack(Path({str(tmp_path)!r}), time_scale=5000.0, port=taken.getsockname()[1],
                              with_sandboxes=False)
        try:
            stack.start()
        except OSError:
            print("failed", stack.agent.pid if stack.agent and stack.agent.running else "-",
                  stack.agent._process.pid)
    """)
    word, running, pid = out.split()
    assert word == "failed" and running == "-"
    assert not _alive(int(pid))


def test_an_agent_stops_when_its_launcher_dies_unannounced(tmp_path) -> None:
    parent = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import time
        from agent.launcher import AgentProcess
        agent = AgentProcess({str(tmp_path / "agent.sqlite")!r}, secrets=["s"], time_scale=5000.0).start()
        print(agent._process.pid, flush=True)
        time.sleep(60)
    """)], stdout=subprocess.PIPE, text=True)
    assert parent.stdout is not None
    pid = int(parent.stdout.readline())
    assert _alive(pid)
    parent.kill()  # SIGKILL: no stop(), no atexit
    parent.wait()
    assert _wait_gone(pid), "the agent outlived its launcher"
