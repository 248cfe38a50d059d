"""Jobs and quotes: submit (with Idempotency-Key), get, list, cancel, quote."""

from __future__ import annotations

import base64
import json
from typing import Annotated, Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Body, Header, Query
from botocore.exceptions import ClientError

from functions.api.http import HttpProblem, job_view, json_response, principal
from router.models.api import JobList, Quote
from router.models.job import JobStatus, JobView
from router.models.request import VideoRequest
from router.services import idempotency
from router.services.cancel import CannotCancel, cancel
from router.services.deps import default_deps
from router.services.quote import quote
from router.services.submit import submit_checked

router = Router()


def _edge_request(body: dict[str, Any]) -> VideoRequest:
    """Revalidate with the clock (a deadline must be in the future): the OpenAPI layer can't know `now`."""
    return idempotency.parse_request(body, default_deps().clock())


@router.post("/v1/jobs", summary="Submit a video request", responses={202: {"description": "accepted"}})
def submit_job(
    request: Annotated[VideoRequest, Body(embed=False)],
    idempotency_key: Annotated[str | None, Header(alias="idempotency-key", max_length=255)] = None,
) -> Response[JobView]:
    deps = default_deps()
    caller = principal(router)
    body = router.current_event.json_body
    job, replayed = idempotency.submit(
        caller.tenant, idempotency_key, body, lambda: submit_checked(_edge_request(body), caller.tenant, deps),
        deps, router.lambda_context)
    return json_response(job_view(job, deps), status=200 if replayed else 202)


@router.get("/v1/jobs/<job_id>", summary="Get a job")
def get_job(job_id: str) -> Response[JobView]:
    deps = default_deps()
    return json_response(job_view(deps.jobs.get(principal(router).tenant, job_id), deps))


@router.get("/v1/jobs", summary="List jobs, newest first")
def list_jobs(
    status: Annotated[JobStatus | None, Query()] = None,
    campaign_id: Annotated[str | None, Query(max_length=128)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: Annotated[str | None, Query(max_length=2048)] = None,
) -> Response[JobList]:
    deps = default_deps()
    start = _decode_cursor(cursor) if cursor else None
    try:
        jobs, last = deps.jobs.list(principal(router).tenant, status=status, campaign_id=campaign_id, limit=limit,
                                    cursor=start)
    except ClientError as exc:  # a cursor from another list (or forged) is a bad starting key
        if exc.response["Error"]["Code"] != "ValidationException" or start is None:
            raise
        raise HttpProblem(400, "Invalid request", errors=[{"field": "cursor", "message": "not a cursor"}]) from exc
    next_cursor = base64.urlsafe_b64encode(json.dumps(last).encode()).decode() if last else None
    return json_response(JobList(items=[job_view(j, deps) for j in jobs], next_cursor=next_cursor))


@router.post("/v1/jobs/<job_id>/cancel", summary="Cancel a job")
def cancel_job(job_id: str) -> Response[JobView]:
    deps = default_deps()
    try:
        return json_response(job_view(cancel(principal(router).tenant, job_id, deps), deps))
    except CannotCancel as exc:
        raise HttpProblem(409, "Conflict", str(exc)) from exc


@router.post("/v1/quotes", summary="Where a request would go, without creating a job")
def post_quote(request: Annotated[VideoRequest, Body(embed=False)]) -> Response[Quote]:
    deps = default_deps()
    caller = principal(router)
    decision = quote(_edge_request(router.current_event.json_body), deps, tenant=caller.tenant)
    return json_response(Quote(chosen=decision.chosen, fallbacks=decision.fallbacks,
                               candidates=decision.candidates, reasons=decision.reasons))


def _decode_cursor(cursor: str) -> dict[str, Any]:
    try:
        value = json.loads(base64.urlsafe_b64decode(cursor.encode()))
    except ValueError as exc:
        raise HttpProblem(400, "Invalid request", errors=[{"field": "cursor", "message": "not a cursor"}]) from exc
    if not isinstance(value, dict):
        raise HttpProblem(400, "Invalid request", errors=[{"field": "cursor", "message": "not a cursor"}])
    return value
