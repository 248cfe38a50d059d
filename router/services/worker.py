"""The jobs-queue consumer: each message moves one job one step — route (services.route), poll (services.poll) or
finalize (services.finalize) — or delivers its callback. Every step is safe to run twice."""

from __future__ import annotations

import logging
from datetime import datetime

from router.models.job import Job, JobError, JobStatus
from router.models.outcome import AttemptCode, AttemptOutcome, AttemptReason
from router.services import callbacks, lifecycle, settle
from router.services.deps import Deps
from router.services.finalize import on_finalize
from router.services.poll import on_poll
from router.services.route import on_route
from router.store.errors import NotFound
from router.store.messages import MessageKind, WorkerMessage

logger = logging.getLogger(__name__)
def handle(message: WorkerMessage, deps: Deps, receive_count: int = 1) -> None:
    try:
        job = deps.jobs.get(message.tenant, message.job_id)
    except NotFound:
        logger.warning("message for unknown job %s/%s dropped", message.tenant, message.job_id)
        return  # nothing to act on, and retrying can't make the job appear
    if message.kind is MessageKind.CALLBACK:
        callbacks.deliver(job, message, deps)
        return
    if job.status.terminal:
        if message.kind is MessageKind.POLL and _awaits_settling(job, message.attempt_id):
            settle.settle_late(job, message, deps)
        return
    now = deps.clock()
    if job.deadline is not None and now > job.deadline:
        expire(job, deps, now)
        return
    if message.kind is MessageKind.ROUTE:
        on_route(job, message, deps, redelivered=receive_count > 1)
    elif message.kind is MessageKind.POLL:
        on_poll(job, message, deps)
    else:
        on_finalize(job, message, deps)


def expire(job: Job, deps: Deps, now: datetime) -> None:
    """End the job `expired`; its open attempt is stopped at the provider and billed what it ran, or, where the
    provider can't say yet, kept open to be settled late (router.services.settle)."""
    attempt = job.current_attempt
    open_id = attempt.id if attempt is not None and not attempt.status.ended else None
    stopped = settle.stop(job, attempt, deps, AttemptOutcome.EXPIRED) if attempt is not None and open_id else None
    late = (now - job.deadline).total_seconds() if job.deadline else 0

    def change(draft: Job) -> JobStatus | None:
        settle.close_or_hold_current(draft, open_id, stopped, deps.clock(), AttemptOutcome.EXPIRED,
                                     AttemptReason(AttemptCode.EXPIRED, "the deadline passed; stopped at the provider"))
        draft.cost.actual_usd = draft.total_actual()
        draft.error = JobError(code="deadline_expired", message=f"the deadline passed {late:.0f} s ago with no result")
        return JobStatus.EXPIRED

    lifecycle.update(deps, job.tenant, job.id, change)


def _awaits_settling(job: Job, attempt_id: str | None) -> bool:
    attempt = job.attempt(attempt_id) if attempt_id else None
    return attempt is not None and attempt.awaits_settling
