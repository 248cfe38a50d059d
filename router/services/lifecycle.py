"""Every job change goes through `update`, so a terminal transition always announces itself.

Announcing (SNS job event, client callback) happens after the write. A crash in between leaves the job
`notified = false`, which keeps it in the sweeper's open-jobs index until `announce` has run: an outbox kept in
the job's own item, so no second table or transaction is needed.
"""

from __future__ import annotations

from collections.abc import Callable

from router.models.job import Job, JobStatus
from router.services.deps import Deps
from router.store.messages import MessageKind, WorkerMessage


def update(deps: Deps, tenant: str, job_id: str, change: Callable[[Job], JobStatus | None]) -> Job:
    decided: list[JobStatus | None] = []

    def tracked(draft: Job) -> JobStatus | None:
        target = change(draft)
        decided.append(target)
        return target

    job = deps.jobs.update(tenant, job_id, tracked)
    if decided and decided[-1] is not None and decided[-1].terminal and job.status is decided[-1]:
        announce(job, deps)
    return job


def announce(job: Job, deps: Deps) -> None:
    """Publish the job event and queue the callback; then clear the outbox flag. Safe to repeat."""
    from aws_lambda_powertools.metrics import MetricUnit

    from router.observability import metrics

    # The job-failure-rate alarm reads these: JobsFailed against JobsSucceeded per period.
    metrics.add_metric(name=f"Jobs{job.status.value.capitalize()}", unit=MetricUnit.Count, value=1)
    deps.events.job_ended(job)
    if job.request.callback_url:
        deps.queue.send(WorkerMessage(kind=MessageKind.CALLBACK, tenant=job.tenant, job_id=job.id))
    deps.jobs.mark_notified(job)
