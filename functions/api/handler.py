"""HTTP API v1: one Lambda for every route (Powertools resolver with validation and a generated OpenAPI)."""

from __future__ import annotations

import json
import re
from functools import cache
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestUnsupportedContentType, RequestValidationError
from aws_lambda_powertools.utilities.typing import LambdaContext
from botocore.exceptions import ClientError

from functions.api import routes_campaigns, routes_costs, routes_jobs, routes_misc
from functions.api.http import BEARER, HttpProblem, JsonBodies, documented, json_response, problem_response
from router.models.api import Health, Problem
from router.models.common import iso, utcnow
from router.observability import metrics
from router.services.idempotency import KeyInFlight, KeyReused
from router.services.submit import InvalidInput
from router.store.errors import NotFound

logger = Logger(service="hvr-api")
app = APIGatewayHttpResolver(enable_validation=True)
app._request_validation_middleware = JsonBodies()  # bodies are read in one place, JSON only (see JsonBodies)
app.include_router(routes_jobs.router)
app.include_router(routes_misc.router)
app.include_router(routes_campaigns.router)
app.include_router(routes_costs.router)


@app.get("/v1/health", summary="Liveness (no auth)", security=[{}], responses=documented({200: "alive"}, auth=False))
def health() -> Response[Health]:
    return json_response(Health(status="ok", time=iso(utcnow())))


@app.get("/v1/openapi.json", summary="This API's OpenAPI document (no auth)", include_in_schema=False)
def openapi() -> Response[Any]:
    return Response(status_code=200, content_type="application/json", body=openapi_document())


@cache
def openapi_document() -> str:
    """Powertools' document less what it declares for answers this API never gives: its own 422 for a request
    that fails validation (ours is a 400 problem, declared per route) and the schemas only that 422 used.
    Configured here, not at import: Powertools' OpenAPI models cost a cold start ~0.1 s that only this route needs."""
    from aws_lambda_powertools.event_handler.openapi.models import HTTPBearer

    app.configure_openapi(title="hvr API", version="1.0.0", security=BEARER,
                          security_schemes={"apiKey": HTTPBearer(bearerFormat="an hvr_… API key")})
    document = json.loads(app.get_openapi_json_schema())
    for operations in document["paths"].values():
        for operation in operations.values():
            if "HTTPValidationError" in json.dumps(operation["responses"].get("422", {})):
                del operation["responses"]["422"]
    for name in ("HTTPValidationError", "ValidationError", "ResponseValidationError"):
        document["components"]["schemas"].pop(name, None)
    return json.dumps(document)


def _problem(status: int, title: str, detail: str = "", errors: list[dict[str, str]] | None = None,
             headers: dict[str, str] | None = None) -> Response[Any]:
    return problem_response(HttpProblem(status, title, detail, errors).problem, headers)


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


@app.exception_handler(RequestUnsupportedContentType)
def _unsupported_media(exc: RequestUnsupportedContentType) -> Response[Any]:
    errors = [{"field": "Content-Type", "message": str(err.get("msg", "must be application/json"))}
              for err in exc.errors()]
    return _problem(415, "Unsupported media type", "request bodies are application/json", errors)


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
    method, path = app.current_event.http_method, app.current_event.path
    matches = _routes_at(path)
    params = next((found for route_method, found in matches if route_method == method), None)
    if params is not None:  # a route is there, but Powertools' matcher takes fewer characters than a URL carries
        return _problem(400, "Invalid request", "the request does not match the API contract",
                        [{"field": name, "message": "has characters no value of it can have"} for name in params])
    if matches:  # the path exists, the method doesn't (TRACE, DELETE, …): RFC 9110 says 405 with Allow
        allowed = ", ".join(sorted({route_method for route_method, _ in matches}))
        return _problem(405, "Method not allowed", f"{path} answers {allowed}, not {method}",
                        headers={"Allow": allowed})
    return _problem(404, "Not found", f"no route {method} {path}")


def _routes_at(path: str) -> list[tuple[str, list[str]]]:
    """(method, path parameters) of every route at `path`, any characters but `/` standing for a parameter
    (Powertools keeps no index by path, so each route is asked)."""
    found = []
    for route in app._static_routes + app._dynamic_routes:
        parts = re.split(r"<(\w+)>", route.path)  # literal, name, literal, name, …, literal
        loose = "".join(f"(?P<{part}>[^/]+)" if i % 2 else re.escape(part) for i, part in enumerate(parts))
        match = re.fullmatch(loose, path)
        if match:
            found.append((route.method, list(match.groupdict())))
    return found


@logger.inject_lambda_context
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
