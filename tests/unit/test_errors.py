"""The error tree (router/errors.py): every exception the runtime defines is an HvrError or a ProviderError, each
HvrError's status is an HTTP error status, and the API answers each with that status and its problem type."""

from __future__ import annotations

import ast
import importlib
import json
import re
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

import pytest

from functions.api import handler
from functions.api.http import BodyError, HttpProblem, problem_of
from functions.webhooks.handler import _refusal
from router.errors import HvrError, WebhookRefused, field_errors
from router.providers.download import UnsafeDownload
from router.providers.errors import ProviderError
from router.services.costs import WindowError
from router.services.idempotency import KeyInFlight, KeyReused
from router.services.submit import InvalidInput
from router.store.budgets import BudgetRefused
from router.store.errors import BadCursor, NotFound, StoreUnavailable

ROOT = Path(__file__).resolve().parents[2]
SOURCES = sorted([*(ROOT / "router").rglob("*.py"), *(ROOT / "functions").rglob("*.py")])

# Exceptions outside both trees on purpose, each with why. Their files are being rewritten by other changes; each
# belongs under HvrError (the status in brackets) once its file is free.
OUTSIDE: dict[str, str] = {}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def defined_exceptions() -> dict[str, type[BaseException]]:
    """Every exception class a module of router/ or functions/ defines at its top level, by dotted name."""
    found: dict[str, type[BaseException]] = {}
    for path in SOURCES:
        names = [node.name for node in ast.parse(path.read_text(encoding="utf-8")).body
                 if isinstance(node, ast.ClassDef)]
        if not names:
            continue
        module = importlib.import_module(module_name(path))
        for name in names:
            cls = getattr(module, name)
            if isinstance(cls, type) and issubclass(cls, BaseException):
                found[f"{module.__name__}.{name}"] = cls
    return found


EXCEPTIONS = defined_exceptions()
# By qualified name and module: two classes share a name (router.errors.NotFound, router.store.errors.NotFound), and
# a tie left in set order would collect the tests in a different order in each `make test` worker.
HVR_ERRORS = sorted({cls for cls in EXCEPTIONS.values() if issubclass(cls, HvrError)},
                    key=lambda c: (c.__qualname__, c.__module__))

# An instance of each HvrError whose __init__ is its own, with what that __init__ takes.
SAMPLES: dict[type[HvrError], Callable[[], HvrError]] = {
    InvalidInput: lambda: InvalidInput([{"field": "image", "message": "is not an upload of this tenant"}]),
    WindowError: lambda: WindowError("to", "the window may span at most 366 days"),
    KeyReused: lambda: KeyReused("this Idempotency-Key was used with a different body"),
    BodyError: lambda: BodyError("is not JSON"),
    BadCursor: lambda: BadCursor("not a cursor of this listing"),
    WebhookRefused: lambda: WebhookRefused(401, "bad webhook token"),
    HttpProblem: lambda: HttpProblem(418, "Not a teapot", "short and stout"),
    UnsafeDownload: lambda: UnsafeDownload("HTTP 404 fetching example.com", 404),
    BudgetRefused: lambda: BudgetRefused("tenant:acme", Decimal("0.10"), Decimal("0.96")),
}


def sample(cls: type[HvrError]) -> HvrError:
    if cls.__init__ is HvrError.__init__:
        return cls("why it was refused")
    assert cls in SAMPLES, f"{cls.__qualname__} has an __init__ of its own: give it a sample in SAMPLES"
    return SAMPLES[cls]()


def test_the_walk_finds_the_runtime_exceptions() -> None:
    assert {"router.errors.HvrError", "router.store.errors.NotFound", "router.providers.errors.NotFound",
            "functions.api.http.BodyError", "router.signing.SignatureError"} <= set(EXCEPTIONS)


@pytest.mark.parametrize("name", sorted(EXCEPTIONS))
def test_every_exception_is_in_a_tree(name: str) -> None:
    if name in OUTSIDE:
        pytest.skip(OUTSIDE[name])
    assert issubclass(EXCEPTIONS[name], HvrError | ProviderError), (
        f"{name} derives from neither router.errors.HvrError nor router.providers.errors.ProviderError")


@pytest.mark.parametrize("name", sorted(OUTSIDE))
def test_the_list_of_exceptions_outside_is_current(name: str) -> None:
    assert name in EXCEPTIONS, f"{name} is gone: take it off OUTSIDE"
    assert not issubclass(EXCEPTIONS[name], HvrError | ProviderError), f"{name} is in a tree now: take it off OUTSIDE"


@pytest.mark.parametrize("cls", HVR_ERRORS, ids=lambda c: f"{c.__module__}.{c.__qualname__}")
def test_each_class_names_an_error_status_and_a_problem_type(cls: type[HvrError]) -> None:
    assert 400 <= cls.status <= 599
    assert re.fullmatch(r"[a-z]+(-[a-z]+)*", cls.problem), cls.problem
    assert cls.title


@pytest.mark.parametrize("cls", HVR_ERRORS, ids=lambda c: f"{c.__module__}.{c.__qualname__}")
def test_the_api_answers_each_class_with_its_status_and_type(cls: type[HvrError]) -> None:
    exc = sample(cls)
    answer = handler.app.exception_handler_manager.lookup_exception_handler(cls)
    assert answer is not None, f"no API mapper for {cls.__qualname__}"
    response = answer(exc)
    body = json.loads(response.body)
    assert response.status_code == body["status"] == exc.status
    assert response.content_type == "application/problem+json"
    assert body["type"] == f"urn:hvr:problem:{exc.problem}"
    if exc.status >= 500:  # a 5xx says nothing of ours
        assert (body["detail"], body["errors"]) == ("", [])


# The exact answers the API gave before the tree, for the cases whose class took over from an except clause.
@pytest.mark.parametrize(("exc", "expected"), [
    (InvalidInput([{"field": "campaign_id", "message": "is not a campaign of this tenant"}]),
     '{"type":"urn:hvr:problem:invalid-request","title":"Invalid request","status":400,"detail":"the request does '
     'not match the API contract","errors":[{"field":"campaign_id","message":"is not a campaign of this tenant"}],'
     '"reasons":[]}'),
    (WindowError("to", "2025-01-01 is before from 2025-02-01"),
     '{"type":"urn:hvr:problem:invalid-request","title":"Invalid request","status":400,"detail":"the request does '
     'not match the API contract","errors":[{"field":"to","message":"2025-01-01 is before from 2025-02-01"}],'
     '"reasons":[]}'),
    (BadCursor("not a cursor of this listing"),
     '{"type":"urn:hvr:problem:invalid-request","title":"Invalid request","status":400,"detail":"","errors":'
     '[{"field":"cursor","message":"not a cursor of this listing"}],"reasons":[]}'),
    (BodyError("NaN is not JSON"),
     '{"type":"urn:hvr:problem:invalid-request","title":"Invalid request","status":400,"detail":"the request does '
     'not match the API contract","errors":[{"field":"body","message":"NaN is not JSON"}],"reasons":[]}'),
    (NotFound("job job_x not found"),
     '{"type":"urn:hvr:problem:not-found","title":"Not found","status":404,"detail":"job job_x not found",'
     '"errors":[],"reasons":[]}'),
    (KeyReused("this Idempotency-Key was used with a different body"),
     '{"type":"urn:hvr:problem:idempotency-key-reused","title":"Idempotency key reused","status":422,"detail":'
     '"this Idempotency-Key was used with a different body","errors":[{"field":"Idempotency-Key","message":'
     '"this Idempotency-Key was used with a different body"}],"reasons":[]}'),
    (KeyInFlight("a request with this Idempotency-Key is still being processed"),
     '{"type":"urn:hvr:problem:conflict","title":"Conflict","status":409,"detail":"a request with this '
     'Idempotency-Key is still being processed","errors":[],"reasons":[]}'),
    (StoreUnavailable("An error occurred (AccessDenied) when calling the GetItem operation: no"),
     '{"type":"urn:hvr:problem:internal","title":"Internal error","status":500,"detail":"","errors":[],'
     '"reasons":[]}'),
], ids=lambda value: type(value).__name__ if isinstance(value, HvrError) else "")
def test_answers_stay_what_they_were(exc: HvrError, expected: str) -> None:
    assert problem_of(exc).model_dump_json() == expected


def test_a_webhook_refusal_is_answered_with_its_own_status() -> None:
    assert _refusal(WebhookRefused(401, "bad webhook token")) == {
        "statusCode": 401, "headers": {"content-type": "application/problem+json"},
        "body": '{"type": "urn:hvr:problem:webhook", "title": "Webhook refused", "status": 401, '
                '"detail": "bad webhook token"}'}


def test_field_errors_name_the_field_as_the_api_does() -> None:
    class Failed(Exception):
        def errors(self) -> list[dict[str, object]]:
            return [{"loc": ("body", "deadline"), "type": "value_error", "msg": "Value error, must be in the future"},
                    {"loc": ("body",), "type": "json_invalid", "msg": "is not JSON"},
                    {"loc": ("body", "bogus"), "type": "extra_forbidden", "msg": "Extra inputs are not permitted"},
                    {"loc": (), "type": "value_error", "msg": "Value error, give deadline or deadline_s"}]

    assert field_errors(Failed(), request=True) == [
        {"field": "deadline", "message": "must be in the future"}, {"field": "body", "message": "is not JSON"},
        {"field": "bogus", "message": "unknown field"}, {"field": "body", "message": "give deadline or deadline_s"}]
    assert field_errors(Failed())[0] == {"field": "body.deadline", "message": "must be in the future"}
    assert field_errors(ValueError("plain")) == [{"field": "", "message": "plain"}]


@pytest.mark.parametrize("name", ["router.services.submit.InvalidInput", "router.services.costs.WindowError",
                                  "functions.api.http.BodyError", "router.hosts.HostRefused",
                                  "router.workflows.common.WorkflowError", "router.workflows.models.ModelFilesError"])
def test_what_was_a_value_error_still_is(name: str) -> None:
    assert issubclass(EXCEPTIONS[name], ValueError)  # callers (and pydantic validators) catch them as one
