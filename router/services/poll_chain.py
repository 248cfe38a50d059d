"""An attempt's one poll chain: the delayed `poll` messages that follow a submitted attempt until it ends.

Starting a chain bumps `Attempt.poll_chain`, and every message carries the number it belongs to, so an older chain
stops at its next message; `poll_due_at` says when the chain's next message is due, so the sweeper (and a
redelivered route) start a new chain only where none can be alive. Writes are made only when worth one.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import Enum

from router.backoff import SQS_MAX_DELAY_S, backoff
from router.models.job import Attempt, AttemptStatus, Job, JobStatus
from router.providers.base import ProviderState, ProviderStatus
from router.services import circuits, lifecycle
from router.services.deps import Deps
from router.store.messages import MessageKind, WorkerMessage

POLL_BASE_S = 5.0


MIN_POLL_DELAY_S = 1.0


# A queued attempt is polled again after this share of the time its target expects it to wait.
QUEUED_POLL_SHARE = 0.5


# How far ahead a poll chain records when it is next due: the chain rewrites the job about this often rather than
# at every poll, and the sweeper can tell a live chain from a lost one (sweeper.CHAIN_GRACE_S).
HEARTBEAT_S = 600.0


# A target that answers nothing about an attempt (status, lookup) for this long has lost it: the attempt ends
# `agent_lost` / `provider_unreachable` and the job falls back. Never less than a real-time floor: an agent restarts
# and a queue lags in wall seconds, whatever the embedded stack's time scale.
UNREACHABLE_AFTER_S = 300.0


UNREACHABLE_FLOOR_S = 5.0


# A cloud attempt its provider has not started after this long is cancelled there and falls back (poll.on_status):
# a RunPod endpoint with no worker to take it, a Replicate model that never boots, would otherwise hold the job until
# its deadline. Not the GPU agent's queue: that wait is planned (policy.localqueue), and a box gone quiet is found by
# its heartbeats.
QUEUE_STALL_S = 1800.0


# A cloud render still not done this long after its submit is taken for hung (poll.on_status): stopped where the
# provider can stop it, and the job falls back. The queue's own allowance plus a multiple of the catalog's p50 render
# time (a default where the attempt has none), so only a render several times slower than expected is cut.
RENDER_STALL_FACTOR = 4.0
RENDER_STALL_DEFAULT_S = 600.0
# Never less than this many wall seconds, whatever the time scale: a sandbox encodes its real MP4 in wall time, and
# on a loaded machine a 720p render takes several seconds of it.
RENDER_STALL_FLOOR_S = 30.0


def render_stall_s(attempt: Attempt) -> float:
    """Modelled seconds after its submit past which a cloud attempt that is running, not done, is taken for hung."""
    return QUEUE_STALL_S + RENDER_STALL_FACTOR * (attempt.estimated_render_s or RENDER_STALL_DEFAULT_S)


# A due chain message that failed once comes back after the jobs queue's visibility timeout (infra/template.yaml):
# only past due plus this is a chain taken for lost.
CHAIN_GRACE_S = 720.0


class Chain(Enum):
    """What a poll does about the attempt's one poll chain."""

    CONTINUE = "continue"  # the message is the chain's own: queue its next one
    START = "start"  # no chain is alive (or this one takes over): start one, which supersedes any older
    NONE = "none"  # a webhook's hint while a chain is alive: record what it learned, queue nothing


def hint_chain(attempt: Attempt, deps: Deps) -> Chain:
    """A message outside the chain (a webhook's hint, the sweeper's nudge) starts one only where none is alive."""
    return Chain.NONE if chain_alive(attempt, deps.clock(), deps.time_scale) else Chain.START


def chain_alive(attempt: Attempt, now: datetime, time_scale: float) -> bool:
    """Whether the attempt's chain has a message due that can't have been lost yet: due, plus a visibility
    timeout for a failed delivery to come back (scaled, never under the real-time floor)."""
    grace = max(UNREACHABLE_FLOOR_S, CHAIN_GRACE_S / time_scale)
    return attempt.poll_due_at is not None and now <= attempt.poll_due_at + timedelta(seconds=grace)


def poll_on(job: Job, attempt: Attempt, deps: Deps, status: ProviderStatus | None, chain: Chain,
             message: WorkerMessage | None, kind: MessageKind = MessageKind.POLL, unanswered: bool = False) -> None:
    """Record what the poll learned and queue the chain's next message, in one write made only when it is worth
    one: the attempt started running, progress moved, the target stopped (`unanswered`) or started answering
    again, a chain starts, or the chain's recorded due time (HEARTBEAT_S ahead) would run out."""
    now = deps.clock()
    running = status is not None and status.state is ProviderState.RUNNING
    # The backoff counts from the render's start, not from the submit: a job that queued long is then polled as
    # often as one that started at once.
    started = running and attempt.status is not AttemptStatus.RUNNING
    poll_n = 0 if chain is Chain.START or message is None or started else message.poll_n + 1
    delay = max(MIN_POLL_DELAY_S, backoff(poll_n, POLL_BASE_S) / deps.time_scale)
    if status is not None and status.state is ProviderState.QUEUED and status.starts_in_s:
        # Nothing moves before the target starts the job, so a deep queue isn't polled at the backoff's pace: the
        # next poll is about halfway to the target's own estimate (which may be pessimistic: the finish comes by
        # callback anyway), never past SQS's longest delay. A box that dies meanwhile is found by its heartbeats.
        delay = max(delay, min(SQS_MAX_DELAY_S, status.starts_in_s * QUEUED_POLL_SHARE / deps.time_scale))
    if attempt.explore_until is not None and attempt.explore_until > now:
        # An exploring attempt's abandon point gets a poll of its own; past it (the target not answering), the
        # backoff stands.
        delay = min(delay, max(MIN_POLL_DELAY_S, (attempt.explore_until - now).total_seconds()))
    due = now + timedelta(seconds=delay)
    numbers: list[int] = []

    def change(draft: Job) -> JobStatus | None:
        numbers.clear()  # the last try is the one that counts
        current = draft.attempt(attempt.id)
        if current is None or current.status.ended:
            return None
        if chain is Chain.CONTINUE and message is not None and current.poll_chain != message.chain:
            return None  # taken over meanwhile
        worth = chain is Chain.START
        if chain is Chain.START:
            current.poll_chain += 1
        if worth or (chain is Chain.CONTINUE and (current.poll_due_at is None or current.poll_due_at < due)):
            current.poll_due_at = due + timedelta(seconds=HEARTBEAT_S / deps.time_scale)
            worth = True
        if unanswered and current.unreachable_since is None:
            current.unreachable_since = now
            worth = True
        elif status is not None and current.unreachable_since is not None:
            current.unreachable_since = None  # it answers again: the next silence counts from zero
            worth = True
        if running and current.status is not AttemptStatus.RUNNING:
            current.status = AttemptStatus.RUNNING
            worth = True
        if status is not None:
            progress = draft.overall_progress(status.progress)
            worth = worth or progress - draft.progress >= 0.05
            draft.progress = round(max(draft.progress, progress), 3)
        numbers.append(current.poll_chain)
        if not worth:
            return None
        return JobStatus.RUNNING if running else draft.status

    job = lifecycle.update(deps, job.tenant, job.id, change)
    current = job.attempt(attempt.id)
    if chain is Chain.NONE or current is None or current.status.ended or not numbers:
        return
    if current.poll_chain != numbers[-1]:
        return  # another chain started meanwhile: it goes on, this one stops
    deps.queue.send(WorkerMessage(kind=kind, tenant=job.tenant, job_id=job.id, attempt_id=attempt.id, poll_n=poll_n,
                                  chain=current.poll_chain), delay_s=delay)


def silent(exc: Exception) -> bool:
    """Whether a failed call starts the target's silence clock: an open circuit (no call made) only lets it run on,
    or other jobs' failed renders could end this attempt while its target answers."""
    return not isinstance(exc, circuits.CircuitOpen)


def mark_submitted(job: Job, attempt_id: str, status: ProviderStatus, deps: Deps, schedule: bool = True) -> Job:
    """`submitted`, with the provider's id; with `schedule`, the attempt's poll chain starts in the same write."""
    delay = max(MIN_POLL_DELAY_S, backoff(0, POLL_BASE_S) / deps.time_scale)
    marked: list[bool] = []

    def change(draft: Job) -> JobStatus | None:
        marked.clear()  # the last try is the one that counts
        attempt = draft.attempt(attempt_id)
        if attempt is None or attempt.status is not AttemptStatus.SUBMITTING:
            return None
        attempt.status = AttemptStatus.SUBMITTED
        attempt.provider_job_id = status.provider_job_id
        attempt.reason, attempt.unsent, attempt.unreachable_since = None, False, None  # retries are history now
        if schedule:
            attempt.poll_chain += 1
            attempt.poll_due_at = deps.clock() + timedelta(seconds=delay + HEARTBEAT_S / deps.time_scale)
        marked.append(True)
        return JobStatus.SUBMITTED

    job = lifecycle.update(deps, job.tenant, job.id, change)
    attempt = job.attempt(attempt_id)
    if schedule and marked and attempt is not None and attempt.status is AttemptStatus.SUBMITTED:
        deps.queue.send(WorkerMessage(kind=MessageKind.POLL, tenant=job.tenant, job_id=job.id, attempt_id=attempt_id,
                                      chain=attempt.poll_chain), delay_s=delay)
    return job
