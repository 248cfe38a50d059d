"""Accepting a request: a job written `accepted` and a `route` message queued. Nothing else happens inline."""

from __future__ import annotations

from datetime import datetime

from router.models.common import new_id
from router.models.job import Job, JobStatus
from router.models.request import VideoRequest
from router.services.deps import Deps
from router.store.messages import MessageKind, WorkerMessage


def accept(request: VideoRequest, tenant: str, deps: Deps, now: datetime | None = None) -> Job:
    now = now or deps.clock()
    job = Job(
        id=new_id("job"),
        tenant=tenant,
        status=JobStatus.ACCEPTED,
        created_at=now,
        updated_at=now,
        deadline=request.resolved_deadline(now),
        request=request,
    )
    deps.jobs.create(job)
    # If this send is lost the job stays `accepted`; the sweeper re-queues accepted jobs older than a minute.
    deps.queue.send(WorkerMessage(kind=MessageKind.ROUTE, tenant=tenant, job_id=job.id))
    return job


class InvalidInput(ValueError):
    """Input that validated as a shape but fails a check against stored state; `errors` name the fields."""

    def __init__(self, errors: list[dict[str, str]]) -> None:
        super().__init__("; ".join(f"{e['field']}: {e['message']}" for e in errors))
        self.errors = errors


def submit_checked(request: VideoRequest, tenant: str, deps: Deps) -> Job:
    """Accept a client's request after checking its uploaded inputs exist, are the tenant's, and fit their caps."""
    from router.services.uploads import check_input_refs

    errors = check_input_refs(request, tenant, deps)
    if errors:
        raise InvalidInput(errors)
    return accept(request, tenant, deps)
