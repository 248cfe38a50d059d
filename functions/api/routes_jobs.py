"""Jobs and quotes: submit (with Idempotency-Key), get, list, cancel, quote."""

from __future__ import annotations

from typing import Annotated, Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Body, Header, Query

from functions.api.http import (
    JobId,
    decode_cursor,
    documented,
    encode_cursor,
    job_view,
    json_response,
    principal,
    request_body,
    unstated,
)
from router.models.api import JobList, Quote
from router.models.job import JobStatus, JobView
from router.models.request import VideoRequest
from router.services import idempotency
from router.services.cancel import cancel
from router.services.deps import default_deps
from router.services.quote import explained_quote
from router.services.submit import submit_checked

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
            **unstated({"cursor": "must be a next_cursor of this same listing (tenant, status, campaign_id)"}),
            responses=documented({200: "a page of jobs"}, {400: None}))
def list_jobs(
    status: Annotated[JobStatus | None, Query()] = None,
    campaign_id: Annotated[str | None, Query(max_length=128)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: Annotated[str | None, Query(max_length=2048, description="next_cursor of the previous page")] = None,
) -> Response[JobList]:
    deps = default_deps()
    start = decode_cursor(cursor) if cursor else None
    jobs, last = deps.jobs.list(principal(router).tenant, status=status, campaign_id=campaign_id, limit=limit,
                                cursor=start)
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

