"""One error tree for everything but the providers (router/providers/errors.py has theirs). Each class says what a
client is answered: `status`, and `problem`, the slug of its problem+json `type` (`urn:hvr:problem:<problem>`).
An entry point maps an HvrError by these attributes, never by its class. Subclasses live with the code that raises
them and change only the base they take their answer from.

    HvrError                  500 a fault of ours, or a refusal no client sees; a 5xx tells the client nothing more
    ├── InvalidRequest        400 the request as sent; `errors` name the fields
    ├── Unauthorized          401 no credentials, or a signature that fails
    ├── Forbidden             403 the key may not do this
    ├── NotFound              404 no such thing, or another tenant's
    ├── MethodNotAllowed      405
    ├── Conflict              409 the thing's state forbids it now
    ├── UnsupportedMediaType  415
    └── WebhookRefused        each refusal carries its own status

Standard library only: every layer imports it, the Lambdas' cold start included.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

FieldError = dict[str, str]  # {"field", "message"}: one entry of a problem's `errors[]`

CONTRACT = "the request does not match the API contract"  # the `detail` of a request that fails a field rule

# Where Powertools' request validation puts a field; the API's errors name the field without it.
_REQUEST_PARTS = frozenset({"body", "query", "path", "header"})


class HvrError(Exception):
    status: int = 500
    problem: str = "internal"
    title: str = "Internal error"

    def __init__(self, message: str = "", *, detail: str | None = None, errors: Iterable[FieldError] = ()) -> None:
        """`message` is for logs and callers; `detail` (the message unless given) and `errors` are what a client
        reads, when the status is one a client may be told the reason of."""
        super().__init__(message)
        self.detail = message if detail is None else detail
        self.errors: list[FieldError] = list(errors)


class InvalidRequest(HvrError):
    status, problem, title = 400, "invalid-request", "Invalid request"


class Unauthorized(HvrError):
    status, problem, title = 401, "unauthorized", "Unauthorized"


class Forbidden(HvrError):
    status, problem, title = 403, "forbidden", "Forbidden"


class NotFound(HvrError):
    status, problem, title = 404, "not-found", "Not found"


class MethodNotAllowed(HvrError):
    status, problem, title = 405, "method-not-allowed", "Method not allowed"


class Conflict(HvrError):
    status, problem, title = 409, "conflict", "Conflict"


class UnsupportedMediaType(HvrError):
    status, problem, title = 415, "unsupported-media-type", "Unsupported media type"


class WebhookRefused(HvrError):
    """A callback we refuse, with the status to answer it (400 malformed, 401 unauthenticated, 404 unknown, 500 our
    own configuration): the provider only retries, so the status is all it needs to know."""

    problem, title = "webhook", "Webhook refused"

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status


def field_errors(exc: Exception, *, request: bool = False) -> list[FieldError]:
    """`[{"field", "message"}]` for a pydantic ValidationError, naming the field even for cross-field rules; also
    for Powertools' RequestValidationError, whose `errors()` has the same shape. `request`: each location starts
    with the part of the request (body, query, path, header), which is left out, and an error of the whole body
    is named `body`. Read by duck type so that this module needs no pydantic."""
    errors = getattr(exc, "errors", None)
    if not callable(errors):
        return [{"field": "", "message": str(exc)}]
    return [_field_error(err, request) for err in errors()]


def _field_error(err: Mapping[str, Any], request: bool) -> FieldError:
    loc = [str(part) for part in err.get("loc", ())]
    if request and loc and loc[0] in _REQUEST_PARTS:
        # A body that isn't JSON has no field to name: it stays `body`.
        loc = loc[1:] if len(loc) > 1 and err.get("type") != "json_invalid" else loc[:1]
    message = "unknown field" if err.get("type") == "extra_forbidden" else str(err.get("msg", "invalid"))
    return {"field": ".".join(loc) or ("body" if request else ""), "message": message.removeprefix("Value error, ")}
