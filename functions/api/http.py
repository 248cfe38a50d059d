"""What every route shares: the caller's principal, problem+json answers, and the public view of a job."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router

from router.models.api import Problem
from router.models.job import Job, JobView
from router.services.deps import Deps
from router.store.keys import Principal

PROBLEM_TYPE = "application/problem+json"


class HttpProblem(Exception):
    def __init__(self, status: int, title: str, detail: str = "", errors: list[dict[str, str]] | None = None,
                 reasons: list[str] | None = None) -> None:
        super().__init__(detail or title)
        self.problem = Problem.model_validate({
            "type": f"urn:hvr:problem:{title.lower().replace(' ', '-')}", "title": title, "status": status,
            "detail": detail, "errors": errors or [], "reasons": reasons or []})


def problem_response(problem: Problem) -> Response[Any]:
    return Response(status_code=problem.status, content_type=PROBLEM_TYPE, body=problem.model_dump_json())


def json_response(model: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response[Any]:
    return Response(status_code=status, content_type="application/json", body=model.model_dump(mode="json"),
                    headers=headers)


def principal(router: Router, admin: bool = False) -> Principal:
    context: dict[str, Any] = router.current_event.request_context.authorizer.get_lambda or {}  # type: ignore[attr-defined]
    if not context.get("tenant"):
        raise HttpProblem(401, "Unauthorized", "no API key context: call through the API with Authorization: Bearer")
    found = Principal(tenant=str(context["tenant"]), role=str(context.get("role", "member")))
    if admin and not found.admin:
        raise HttpProblem(403, "Forbidden", "this route needs an admin key")
    return found


def job_view(job: Job, deps: Deps) -> JobView:
    view = job.view()
    if view.output is not None:
        key = view.output.s3_uri.split("/", 3)[3]
        view.output.url = deps.artifacts.presign_get(key)
    return view
