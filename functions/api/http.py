"""What every route shares: the caller's principal, problem+json answers, the one body parser, the documented
statuses, and the public view of a job."""

from __future__ import annotations

import base64
import binascii
import json
import re
from typing import Annotated, Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.middlewares.openapi_validation import OpenAPIRequestValidationMiddleware
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestUnsupportedContentType
from aws_lambda_powertools.event_handler.openapi.params import Path
from aws_lambda_powertools.event_handler.openapi.types import OpenAPIResponse
from pydantic import BaseModel

from router.errors import CONTRACT, FieldError, Forbidden, HvrError, InvalidRequest, Unauthorized
from router.models.api import Problem
from router.models.job import Job, JobView
from router.services.deps import Deps
from router.store.artifacts import key_of
from router.store.errors import BadCursor
from router.store.keys import Principal

PROBLEM_TYPE = "application/problem+json"
MAX_JSON_DEPTH = 64  # far deeper than any body of ours; keeps json, pydantic and hashing well off the stack limit
# Every route but /v1/health: `Authorization: Bearer <api key>`, checked by the authorizer before the function.
BEARER: list[dict[str, list[str]]] = [{"apiKey": []}]
# Job and campaign ids are `job_…`/`cmp_…` ULIDs; anything else can't name one, so it never reaches DynamoDB.
ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_\-]{0,127}$"
JobId = Annotated[str, Path(pattern=ID_PATTERN, description="the id POST /v1/jobs returned")]
# A campaign is (tenant, name), so its name names it too: the id's pattern with the dots a name may have.
CAMPAIGN_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._\-]{0,127}$"
CampaignId = Annotated[str, Path(pattern=CAMPAIGN_PATTERN,
                                 description="the id POST /v1/campaigns returned, or the campaign's name")]


class HttpProblem(HvrError):
    """A problem named by its status and title alone (`type` is the title's slug), for an answer no class of the
    error tree (router/errors.py) stands for."""

    def __init__(self, status: int, title: str, detail: str = "", errors: list[FieldError] | None = None) -> None:
        super().__init__(detail or title, detail=detail, errors=errors or ())
        self.status, self.title, self.problem = status, title, title.lower().replace(" ", "-")


def problem_of(exc: HvrError) -> Problem:
    """The one mapping from the error tree to problem+json: the class's status, type and title. `detail` and
    `errors` only below 500: a 5xx's message is for our logs (it names tables, keys and hosts), not for clients."""
    public = exc.status < 500
    return Problem.model_validate({
        "type": f"urn:hvr:problem:{exc.problem}", "title": exc.title, "status": exc.status,
        "detail": exc.detail if public else "", "errors": exc.errors if public else []})


def problem_response(problem: Problem, headers: dict[str, str] | None = None) -> Response[Any]:
    return Response(status_code=problem.status, content_type=PROBLEM_TYPE, body=problem.model_dump_json(),
                    headers=headers)


def error_response(exc: HvrError, headers: dict[str, str] | None = None) -> Response[Any]:
    return problem_response(problem_of(exc), headers)


_DAY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def iso_day(value: Any) -> Any:
    """A day query parameter as the schema says (`format: date`, YYYY-MM-DD) and nothing else: pydantic alone would
    also read `to=0` as 1970-01-01 and a midnight datetime as its day. A BeforeValidator."""
    if value is not None and not (isinstance(value, str) and _DAY.fullmatch(value)):
        raise ValueError("must be a day, YYYY-MM-DD")
    return value


def json_response(model: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response[Any]:
    return Response(status_code=status, content_type="application/json", body=model.model_dump(mode="json"),
                    headers=headers)


# --- request bodies --------------------------------------------------------------------------------------------


class BodyError(InvalidRequest, ValueError):
    """A body that isn't one JSON document we will read; the message says why, and is the `body` field's."""

    def __init__(self, message: str) -> None:
        super().__init__(message, detail=CONTRACT, errors=[{"field": "body", "message": message}])


def is_json_media(content_type: str) -> bool:
    mime = content_type.split(";", 1)[0].strip().lower()
    return mime == "application/json" or mime.endswith("+json")


def _refuse_constant(name: str) -> Any:
    raise BodyError(f"{name} is not JSON")  # json.loads would take NaN and Infinity; RFC 8259 doesn't


def parse_body(body: str | None, base64_encoded: bool) -> Any:
    """The one place a request body becomes JSON. Every way a body can be unreadable (not base64, not UTF-8, not
    JSON, nested past MAX_JSON_DEPTH, strings that aren't Unicode) is a BodyError, never a 500."""
    if not body:
        return None
    if base64_encoded:
        try:
            body = base64.b64decode(body, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError) as exc:
            raise BodyError("is not UTF-8 text") from exc
    try:
        value = json.loads(body, parse_constant=_refuse_constant)
    except RecursionError as exc:  # the C scanner recurses once per level and gives up near the stack limit
        raise BodyError(f"is nested deeper than {MAX_JSON_DEPTH} levels") from exc
    except json.JSONDecodeError as exc:
        raise BodyError(f"is not JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from exc
    _check_tree(value)
    return value


def _check_tree(value: Any) -> None:
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            if depth > MAX_JSON_DEPTH:
                raise BodyError(f"is nested deeper than {MAX_JSON_DEPTH} levels")
            children = [*item.keys(), *item.values()] if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children)
        elif isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError as exc:  # a lone \ud800 escape: DynamoDB and S3 can't store it
                raise BodyError("has a string that is not Unicode (a lone surrogate escape)") from exc


def request_body(router: Router) -> Any:
    """The current request's body, parsed as the validation layer parsed it (handlers that need the raw dict)."""
    event = router.current_event
    return parse_body(event.body, bool(event.is_base64_encoded))


class JsonBodies(OpenAPIRequestValidationMiddleware):
    """Powertools' request validation, with the body read by parse_body and JSON the only media type: its own
    reader lets RecursionError and UnicodeDecodeError through (500s) and takes form and multipart bodies. A
    BodyError goes up as it is: it is an InvalidRequest naming `body`."""

    def _get_body(self, app: Any) -> Any:
        event = app.current_event
        content_type = event.headers.get("content-type", "")
        if event.body and content_type and not is_json_media(content_type):
            raise RequestUnsupportedContentType("Unsupported content type", errors=[
                {"type": "unsupported_content_type", "loc": ("header", "Content-Type"),
                 "msg": f"must be application/json, not {content_type}", "input": {}, "ctx": {}}])
        return parse_body(event.body, bool(event.is_base64_encoded))


# --- the statuses each route documents -------------------------------------------------------------------------


class GatewayMessage(BaseModel):
    """API Gateway's own answer, given before any function runs (no key, a refused key, a body over 10 MiB)."""

    message: str


_PROBLEMS = {
    400: "Invalid request: `errors[]` names each field (`body` for a body that isn't one JSON document)",
    401: "No API key: API Gateway answers `{\"message\": \"Unauthorized\"}` before the function runs",
    403: "The key is refused (API Gateway's `{\"message\": \"Forbidden\"}`) or lacks the role the route needs",
    404: "Not found, or another tenant's",
    413: "Body over 10 MiB: API Gateway answers `{\"message\": \"Request Entity Too Large\"}`",
    415: "The body is not `application/json`",
}
_GATEWAY_ONLY = {413}
_GATEWAY_TOO = {401, 403}  # API Gateway's authorizer answers these; the function can too


def documented(success: dict[int, str], problems: dict[int, str | None] | None = None, *, auth: bool = True,
               body: bool = False) -> dict[int, OpenAPIResponse]:
    """`responses=` for a route: its success statuses (the schema comes from the return type) and every problem
    it can answer, each with a Problem body (and API Gateway's own body where the gateway answers). `auth` adds
    401 and 403, `body` adds 400, 413 and 415; a description of None takes the common one."""
    wanted: dict[int, str | None] = {}
    if auth:
        wanted.update({401: None, 403: None})
    if body:
        wanted.update({400: None, 413: None, 415: None})
    wanted.update(problems or {})
    out: dict[int, OpenAPIResponse] = {status: {"description": text} for status, text in success.items()}
    for status, text in sorted(wanted.items()):
        content: dict[str, Any] = {}
        if status not in _GATEWAY_ONLY:
            content[PROBLEM_TYPE] = {"model": Problem}
        if status in _GATEWAY_ONLY | _GATEWAY_TOO:
            content["application/json"] = {"model": GatewayMessage}
        out[status] = {"description": text or _PROBLEMS[status], "content": content}
    return out


def unstated(rules: dict[str, str], note: str = "") -> dict[str, Any]:
    """A route's rules that JSON Schema can't state (the clock, stored state, DNS), as keyword arguments for its
    decorator: prose in the description, and `x-hvr-unstated-rules` ({field: rule}) so that a contract test knows
    which fields a schema-valid request may still be refused for."""
    text = "; ".join(f"`{field}` {rule}" for field, rule in rules.items())
    return {"description": f"Rules the schema can't state, each a problem (400 unless said) naming its field: "
                           f"{text}.{note}",
            "openapi_extensions": {"x-hvr-unstated-rules": rules}}


def principal(router: Router, admin: bool = False) -> Principal:
    context: dict[str, Any] = router.current_event.request_context.authorizer.get_lambda or {}  # type: ignore[attr-defined]
    if not context.get("tenant"):
        raise Unauthorized("no API key context: call through the API with Authorization: Bearer")
    found = Principal(tenant=str(context["tenant"]), role=str(context.get("role", "member")))
    if admin and not found.admin:
        raise Forbidden("this route needs an admin key")
    return found


def job_view(job: Job, deps: Deps) -> JobView:
    view = job.view()
    if view.output is not None:
        view.output.url = deps.artifacts.presign_get(key_of(view.output.s3_uri))
    return view


def encode_cursor(last_key: dict[str, Any]) -> str:
    """A listing's `next_cursor`: the store's last key, opaque to the client."""
    return base64.urlsafe_b64encode(json.dumps(last_key).encode()).decode()


def decode_cursor(cursor: str) -> dict[str, Any]:
    """A `cursor` back into the store's key (the store itself checks it is one of its own: BadCursor)."""
    try:
        value = json.loads(base64.urlsafe_b64decode(cursor.encode()))
    except (ValueError, RecursionError) as exc:  # RecursionError: a cursor of 1,500 '['s
        raise BadCursor("not a cursor") from exc
    if not isinstance(value, dict):
        raise BadCursor("not a cursor")
    return value
