"""HTTP API v1: one Lambda for every route (Powertools resolver with validation and a generated OpenAPI)."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError
from aws_lambda_powertools.utilities.typing import LambdaContext
from botocore.exceptions import ClientError

from functions.api import routes_campaigns, routes_costs, routes_jobs, routes_misc
from functions.api.http import HttpProblem, json_response, problem_response
from router.models.api import Health, Problem
from router.models.common import iso, utcnow
from router.observability import metrics
from router.services.idempotency import KeyInFlight, KeyReused
from router.services.submit import InvalidInput
from router.store.errors import NotFound

logger = Logger(service="hvr-api")
app = APIGatewayHttpResolver(enable_validation=True)
app.include_router(routes_jobs.router)
app.include_router(routes_misc.router)
app.include_router(routes_campaigns.router)
app.include_router(routes_costs.router)


@app.get("/v1/health", summary="Liveness (no auth)")
def health() -> Response[Health]:
    return json_response(Health(status="ok", time=iso(utcnow())))


@app.get("/v1/openapi.json", summary="This API's OpenAPI document (no auth)", include_in_schema=False)
def openapi() -> Response[Any]:
    return Response(status_code=200, content_type="application/json",
                    body=app.get_openapi_json_schema(title="hvr API", version="1.0.0"))


def _problem(status: int, title: str, detail: str = "", errors: list[dict[str, str]] | None = None) -> Response[Any]:
    return problem_response(HttpProblem(status, title, detail, errors).problem)


@app.exception_handler(RequestValidationError)
def _invalid(exc: RequestValidationError) -> Response[Any]:
    errors = []
    for err in exc.errors():
        loc = [str(part) for part in err.get("loc", ())]
        if loc and loc[0] in ("body", "query", "path", "header"):
            loc = loc[1:] if len(loc) > 1 and err.get("type") != "json_invalid" else loc[:1]
        message = "unknown field" if err.get("type") == "extra_forbidden" else str(err.get("msg", "invalid"))
        errors.append({"field": ".".join(loc) or "body", "message": message.removeprefix("Value error, ")})
    return _problem(400, "Invalid request", "the request does not match the API contract", errors)


@app.exception_handler(InvalidInput)
def _invalid_input(exc: InvalidInput) -> Response[Any]:
    return _problem(400, "Invalid request", "the request does not match the API contract", exc.errors)


@app.exception_handler(HttpProblem)
def _http_problem(exc: HttpProblem) -> Response[Any]:
    return problem_response(exc.problem)


@app.exception_handler(NotFound)
def _not_found(exc: NotFound) -> Response[Any]:
    return _problem(404, "Not found", str(exc))


@app.exception_handler(KeyReused)
def _key_reused(exc: KeyReused) -> Response[Any]:
    return _problem(422, "Idempotency key reused", str(exc), [{"field": "Idempotency-Key", "message": str(exc)}])


@app.exception_handler(KeyInFlight)
def _key_in_flight(exc: KeyInFlight) -> Response[Any]:
    return _problem(409, "Conflict", str(exc))


@app.exception_handler(ClientError)
def _client_error(exc: ClientError) -> Response[Any]:
    logger.exception("AWS call failed")
    return problem_response(Problem(type="urn:hvr:problem:internal", title="Internal error", status=500))


@app.not_found
def _no_route(exc: Exception) -> Response[Any]:
    return _problem(404, "Not found", f"no route {app.current_event.http_method} {app.current_event.path}")


@logger.inject_lambda_context
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
