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

from functions.api import (
    routes_agents,
    routes_alerts,
    routes_campaigns,
    routes_costs,
    routes_experiments,
    routes_jobs,
    routes_misc,
    routes_ratings,
    routes_reconciliation,
)
from functions.api.http import BEARER, JsonBodies, documented, error_response, json_response
from router.errors import (
    CONTRACT,
    HvrError,
    InvalidRequest,
    MethodNotAllowed,
    NotFound,
    UnsupportedMediaType,
    field_errors,
)
from router.models.api import Health
from router.models.common import iso, utcnow
from router.observability import metrics

logger = Logger(service="hvr-api")
app = APIGatewayHttpResolver(enable_validation=True)
app._request_validation_middleware = JsonBodies()  # bodies are read in one place, JSON only (see JsonBodies)

app.include_router(routes_jobs.router)
app.include_router(routes_misc.router)
app.include_router(routes_campaigns.router)
app.include_router(routes_costs.router)
app.include_router(routes_alerts.router)
app.include_router(routes_reconciliation.router)
app.include_router(routes_agents.router)
app.include_router(routes_ratings.router)
app.include_router(routes_experiments.router)


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
    _add_signed_bodies(document)
    return json.dumps(document)


def _add_signed_bodies(document: dict[str, Any]) -> None:
    """The bodies routes read only after a signature check (routes_agents.SIGNED_BODIES), which Powertools
    therefore doesn't know of: each as the operation's requestBody, its schemas beside the others."""
    schemas = document["components"]["schemas"]
    for (path, method), model in routes_agents.SIGNED_BODIES.items():
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        for name, definition in schema.pop("$defs", {}).items():
            schemas.setdefault(name, definition)
        schemas.setdefault(model.__name__, schema)
        document["paths"][path][method]["requestBody"] = {"required": True, "content": {
            "application/json": {"schema": {"$ref": f"#/components/schemas/{model.__name__}"}}}}


@app.exception_handler(HvrError)
def _hvr_error(exc: HvrError) -> Response[Any]:
    if exc.status >= 500:
        logger.exception("internal error")  # the client is told nothing more: the traceback is only here
    return error_response(exc)


# Powertools' own two: what its validation of the path, query, headers and body against the route's types found.
@app.exception_handler(RequestValidationError)
def _invalid(exc: RequestValidationError) -> Response[Any]:
    return error_response(InvalidRequest(detail=CONTRACT, errors=field_errors(exc, request=True)))


@app.exception_handler(RequestUnsupportedContentType)
def _unsupported_media(exc: RequestUnsupportedContentType) -> Response[Any]:
    errors = [{"field": "Content-Type", "message": str(err.get("msg", "must be application/json"))}
              for err in exc.errors()]
    return error_response(UnsupportedMediaType(detail="request bodies are application/json", errors=errors))


@app.not_found
def _no_route(exc: Exception) -> Response[Any]:
    method, path = app.current_event.http_method, app.current_event.path
    matches = _routes_at(path)
    params = next((found for route_method, found in matches if route_method == method), None)
    if params is not None:  # a route is there, but Powertools' matcher takes fewer characters than a URL carries
        return error_response(InvalidRequest(detail=CONTRACT, errors=[
            {"field": name, "message": "has characters no value of it can have"} for name in params]))
    if matches:  # the path exists, the method doesn't (TRACE, DELETE, …): RFC 9110 says 405 with Allow
        allowed = ", ".join(sorted({route_method for route_method, _ in matches}))
        return error_response(MethodNotAllowed(f"{path} answers {allowed}, not {method}"), headers={"Allow": allowed})
    return error_response(NotFound(f"no route {method} {path}"))


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
