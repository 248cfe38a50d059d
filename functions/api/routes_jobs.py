"""Jobs and quotes: submit (with Idempotency-Key), get, list, cancel, quote."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Body, Header, Query
from pydantic import BeforeValidator

from functions.api.http import (
    JobId,
    decode_cursor,
    documented,
    encode_cursor,
    iso_day,
    job_view,
    json_response,
    principal,
    request_body,
    unstated,
)
from router.errors import CONTRACT, InvalidRequest
from router.models.api import JobList, Quote
from router.models.common import ProviderKind
from router.models.job import JobStatus, JobView
from router.models.request import VideoRequest
from router.services import idempotency
from router.services.cancel import cancel
from router.services.deps import default_deps
from router.services.quote import explained_quote
from router.services.submit import submit_checked
from router.store.jobs import JobFilter

router = Router()

# What JSON Schema can't say about a VideoRequest: it can't see the clock, the tenant's uploads or DNS.
REQUEST_RULES = {
    "deadline": "must be in the future and at most 31 days ahead (the clock at submission)",
    "image": "an s3:// ref must be an upload of this tenant that exists and fits its size cap; https must be public",
    "audio": "as image",
    "mask": "as image",
    "last_image": "as image",
    "video": "as image",
    **{f"reference_images[{index}]": "as image" for index in range(4)},
    "callback_url": "https on a public DNS name: IP literals and localhost are refused",
    "resolution": "480p, 720p, 1080p or WxH with even sides of 128-3840 pixels",
    "metadata": "at most 4096 bytes as compact JSON",
    "campaign_id": "must name a campaign of this tenant",
    "max_cost_usd": "at most 4 decimal places, also as a JSON number (multipleOf can't say it of binary floats)",
}


def _edge_request(body: dict[str, Any]) -> VideoRequest:
    """Revalidate with the clock (a deadline must be in the future): the OpenAPI layer can't know `now`."""
    return idempotency.parse_request(body, default_deps().clock())


@router.post("/v1/jobs", summary="Submit a video request",
             **unstated({**REQUEST_RULES, "Idempotency-Key": "used again with a different body is a 422"}),
             responses=documented(
                 {202: "accepted", 200: "the job this Idempotency-Key already made (the same body again)"},
                 {409: "the first request with this Idempotency-Key is still being processed",
                  422: "this Idempotency-Key was used with a different body"}, body=True))
def submit_job(
    request: Annotated[VideoRequest, Body(embed=False)],
    idempotency_key: Annotated[str | None, Header(alias="idempotency-key", max_length=255)] = None,
) -> Response[JobView]:
    deps = default_deps()
    caller = principal(router)
    body = request_body(router)
    job, replayed = idempotency.submit(
        caller.tenant, idempotency_key, body, lambda: submit_checked(_edge_request(body), caller.tenant, deps),
        deps, router.lambda_context)
    return json_response(job_view(job, deps), status=200 if replayed else 202)


@router.get("/v1/jobs/<job_id>", summary="Get a job",
            responses=documented({200: "the job"}, {400: None, 404: None}))
def get_job(job_id: JobId) -> Response[JobView]:
    deps = default_deps()
    return json_response(job_view(deps.jobs.get(principal(router).tenant, job_id), deps))


@router.get("/v1/jobs", summary="List jobs, newest first",
            **unstated({"cursor": "must be a next_cursor of this same listing (its filters too)",
                        "to": "must not be before from",
                        "offer": "must be an offer id of the catalog (GET /v1/providers), which the server holds"}),
            responses=documented({200: "a page of jobs"}, {400: None}))
def list_jobs(
    status: Annotated[JobStatus | None, Query()] = None,
    campaign_id: Annotated[str | None, Query(max_length=128)] = None,
    provider: Annotated[ProviderKind | None, Query(description="routed to or attempted on this provider")] = None,
    offer: Annotated[str | None, Query(max_length=128, description="routed to or attempted on this offer "
                                                                    "(an id of GET /v1/providers)")] = None,
    start: Annotated[date | None, BeforeValidator(iso_day),
                     Query(alias="from", description="created on or after this day, UTC")] = None,
    end: Annotated[date | None, BeforeValidator(iso_day),
                   Query(alias="to", description="created on or before this day, UTC")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: Annotated[str | None, Query(max_length=2048, description="next_cursor of the previous page")] = None,
) -> Response[JobList]:
    deps = default_deps()
    if offer is not None and offer not in {o.id for o in deps.catalog.offers}:
        raise InvalidRequest(detail=CONTRACT, errors=[{"field": "offer", "message": "is no offer of the catalog"}])
    if start and end and end < start:
        raise InvalidRequest(detail=CONTRACT, errors=[{"field": "to", "message": "must not be before from"}])
    where = JobFilter(first_day=start.isoformat() if start else None, last_day=end.isoformat() if end else None,
                      provider=provider.value if provider else None, offer=offer)
    # A cursor resumes inside one window: the filters are part of the listing it belongs to, as status is.
    jobs, last = deps.jobs.list(principal(router).tenant, status=status, campaign_id=campaign_id, where=where,
                                limit=limit, cursor=decode_cursor(cursor) if cursor else None)
    next_cursor = encode_cursor(last) if last else None
    return json_response(JobList(items=[job_view(j, deps) for j in jobs], next_cursor=next_cursor))


@router.post("/v1/jobs/<job_id>/cancel", summary="Cancel a job",
             responses=documented({200: "the job, cancelled"},
                                  {400: None, 404: None, 409: "the job can no longer be cancelled"}))
def cancel_job(job_id: JobId) -> Response[JobView]:
    deps = default_deps()
    return json_response(job_view(cancel(principal(router).tenant, job_id, deps), deps))


@router.post("/v1/quotes", summary="Where a request would go, without creating a job", **unstated(REQUEST_RULES),
             responses=documented({200: "the routing decision"}, body=True))
def post_quote(request: Annotated[VideoRequest, Body(embed=False)]) -> Response[Quote]:
    deps = default_deps()
    caller = principal(router)
    decision, learned = explained_quote(_edge_request(request_body(router)), deps, tenant=caller.tenant)
    return json_response(Quote(chosen=decision.chosen, fallbacks=decision.fallbacks,
                               candidates=decision.candidates, reasons=decision.reasons, learned=learned))

