"""Ratings of delivered jobs, and the studio's scorecard."""

from __future__ import annotations

from typing import Annotated

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.params import Body

from functions.api.http import JobId, documented, json_response, principal, unstated
from functions.api.routes_costs import REPORT_RESPONSES, WINDOW_RULES, From, Tenant, To, report_scope
from router.errors import Unauthorized
from router.models.rating import RatingCreate, RatingList, RatingView
from router.services.costs import report_window
from router.services.deps import default_deps
from router.services.ratings import rate, rater_of, ratings_of
from router.services.scorecard import Scorecard, scorecard

router = Router()


def _rater() -> str:
    """Who rates: the caller's key, by its hash (the authorizer has checked it; its context names only the tenant)."""
    header = router.current_event.headers.get("authorization") or ""
    scheme, _, key = header.partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        raise Unauthorized("no API key to rate with: call through the API with Authorization: Bearer")
    return rater_of(key.strip())


@router.post("/v1/jobs/<job_id>/rating", summary="Rate a delivered video, 1-5 (again: replaces this key's rating)",
             **unstated({"preferred_over": "must name another succeeded job of this tenant with the same prompt, "
                                           "mode and inputs"},
                        " A job that hasn't succeeded can't be rated: a 409 naming `job_id`."),
             responses=documented({200: "the rating as stored"},
                                  {404: None, 409: "the job has not succeeded: only a delivered video is rated"},
                                  body=True))
def post_rating(job_id: JobId, body: Annotated[RatingCreate, Body(embed=False)]) -> Response[RatingView]:
    caller = principal(router)
    deps = default_deps()
    return json_response(rate(caller.tenant, job_id, _rater(), body, deps).view())


@router.get("/v1/jobs/<job_id>/ratings", summary="A job's ratings, one per rater key",
            responses=documented({200: "the job's ratings (none before it succeeded)"}, {400: None, 404: None}))
def get_ratings(job_id: JobId) -> Response[RatingList]:
    deps = default_deps()
    return json_response(ratings_of(principal(router).tenant, job_id, deps))


@router.get("/v1/scorecard", summary="The studio's success metrics over a window, each held, missed or not enough "
                                     "data", **unstated(WINDOW_RULES), responses=REPORT_RESPONSES)
def get_scorecard(start: From = None, end: To = None, tenant: Tenant = None) -> Response[Scorecard]:
    scope = report_scope(principal(router), tenant)
    deps = default_deps()
    first, last = report_window(start, end, deps.clock().date())
    return json_response(scorecard(deps, first, last, scope))
