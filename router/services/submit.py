"""Accepting a request: a job written `accepted` and a `route` message queued. Nothing else happens inline."""

from __future__ import annotations

from datetime import datetime

from router.errors import CONTRACT, FieldError, InvalidRequest
from router.models.job import Job, JobStatus
from router.models.request import VideoRequest
from router.services.deps import Deps
from router.store.messages import MessageKind, WorkerMessage


def accept(request: VideoRequest, tenant: str, deps: Deps, now: datetime | None = None) -> Job:
    now = now or deps.clock()
    job = Job(
        id=deps.new_id("job"),
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


class InvalidInput(InvalidRequest, ValueError):
    """Input that validated as a shape but fails a check against stored state; `errors` name the fields."""

    def __init__(self, errors: list[FieldError]) -> None:
        super().__init__("; ".join(f"{e['field']}: {e['message']}" for e in errors), detail=CONTRACT, errors=errors)


def admission_errors(request: VideoRequest, tenant: str, deps: Deps,
                     own_campaign: str | None = None) -> list[dict[str, str]]:
    """Why a request may not become a job of `tenant` (field errors; none when it may). Every path that creates a
    job runs this before the job exists: `POST /v1/jobs` on its request, campaign intake on each line.

    The request is stored with its job and never changes, so what is checked here holds for every later use of
    it: the budgets a reservation holds (`campaign:<id>`), the presigned inputs, the ledger's campaign column.
    `own_campaign` is the tenant's campaign doing the intake, already read under the tenant's key."""
    from router.services.uploads import check_input_refs

    return check_input_refs(request, tenant, deps) + campaign_errors(request, tenant, deps, own_campaign)


def campaign_errors(request: VideoRequest, tenant: str, deps: Deps,
                    own_campaign: str | None = None) -> list[dict[str, str]]:
    """A `campaign_id` must name a campaign of the caller's own tenant: it selects a budget to spend (or, in a
    quote, to read). Another tenant's id and an unknown one get the same answer, so ids can't be probed."""
    cid = request.campaign_id
    if cid is None or cid == own_campaign:
        return []
    if deps.campaigns.exists(tenant, cid):
        return []
    return [{"field": "campaign_id", "message": "is not a campaign of this tenant"}]


def submit_checked(request: VideoRequest, tenant: str, deps: Deps) -> Job:
    """Accept a client's request once admission finds nothing wrong with it (nothing is written otherwise)."""
    errors = admission_errors(request, tenant, deps)
    if errors:
        raise InvalidInput(errors)
    return accept(request, tenant, deps)
