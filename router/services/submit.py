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
