"""Cancelling a job: stop the provider's work, record what it cost, end the job `cancelled`."""

from __future__ import annotations

from decimal import Decimal

from router.models.job import AttemptStatus, Job, JobCancel, JobStatus
from router.providers.errors import ProviderError
from router.services import lifecycle
from router.services.deps import Deps
from router.services.worker import close_attempt, record_ledger, total_actual


class CannotCancel(Exception):
    pass


def cancel(tenant: str, job_id: str, deps: Deps) -> Job:
    job = deps.jobs.get(tenant, job_id)
    if job.status is JobStatus.CANCELLED:
        return job
    if job.status.terminal:
        raise CannotCancel(f"job is already {job.status.value}")
    attempt = job.current_attempt
    billed: dict[str, float] = {}
    if attempt is not None and not attempt.status.ended:
        provider = deps.providers.get(attempt.provider)
        provider_job = attempt.provider_job_id
        if provider is not None:
            try:
                if provider_job is None:  # submission in flight or crashed: find it by our attempt id
                    found = provider.lookup(attempt.id)
                    provider_job = found.provider_job_id if found else None
                if provider_job is not None:
                    billed = provider.cancel(provider_job).billed
            except ProviderError:
                billed = {}  # unreachable: what it ran is unknown; the attempt's estimate stays on record
    actual = record_ledger(job, attempt, deps, "cancelled", billed, None) if attempt else Decimal(0)
    now = deps.clock()

    def change(draft: Job) -> JobStatus | None:
        current = draft.current_attempt
        if current is not None and not current.status.ended:
            close_attempt(current, now, AttemptStatus.CANCELLED, "cancelled by the client", billed, actual)
        draft.cancel = JobCancel(requested_at=now, billed=actual > 0)
        draft.cost.actual_usd = total_actual(draft)
        return JobStatus.CANCELLED

    return lifecycle.update(deps, tenant, job_id, change)
