"""Cancelling a job: stop the provider's work, record what it cost, end the job `cancelled`.

What the provider ran is billed from what it reports. Where it can't say yet (the submit's answer was lost, the
target is down, the render can't be stopped), the job still ends `cancelled` at once, `cancel.billed` is true (it
may charge), and the attempt is settled when the provider answers (router.services.settle).
"""

from __future__ import annotations

from router.errors import Conflict
from router.models.job import Job, JobCancel, JobStatus
from router.models.outcome import AttemptCode, AttemptOutcome, AttemptReason
from router.services import lifecycle, settle
from router.services.deps import Deps


class CannotCancel(Conflict):
    """The job has ended: nothing is left to cancel."""


def cancel(tenant: str, job_id: str, deps: Deps) -> Job:
    job = deps.jobs.get(tenant, job_id)
    if job.status is JobStatus.CANCELLED:
        return job
    if job.status.terminal:
        raise CannotCancel(f"job is already {job.status.value}")
    attempt = job.current_attempt
    open_id = attempt.id if attempt is not None and not attempt.status.ended else None
    stopped = settle.stop(job, attempt, deps, AttemptOutcome.CANCELLED) if attempt is not None and open_id else None
    now = deps.clock()

    def change(draft: Job) -> JobStatus | None:
        settle.close_or_hold_current(draft, open_id, stopped, now, AttemptOutcome.CANCELLED,
                                     AttemptReason(AttemptCode.CANCELLED, "by the client"))
        current = draft.current_attempt
        held = current is not None and current.awaits_settling
        draft.cancel = JobCancel(requested_at=now, billed=held or (stopped is not None and stopped.actual > 0))
        draft.cost.actual_usd = draft.total_actual()
        return JobStatus.CANCELLED

    return lifecycle.update(deps, tenant, job_id, change)
