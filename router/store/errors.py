"""Errors the stores raise instead of botocore's (router/errors.py has the tree they belong to)."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Generator, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from botocore.exceptions import ClientError

from router.errors import HvrError, InvalidRequest
from router.errors import NotFound as Missing

Store = TypeVar("Store", bound=type)


class StoreError(HvrError):
    pass


class NotFound(Missing, StoreError):
    pass


class StaleWrite(StoreError):
    """Someone else moved the job first (version changed): reload and decide again, or no-op."""


class IllegalTransition(StoreError):
    pass


class BadCursor(InvalidRequest, StoreError):
    """A listing's cursor that this store never handed out (forged, or from another listing or tenant)."""

    def __init__(self, message: str) -> None:
        # `errors` names the field; the answer has never had a `detail` besides
        super().__init__(message, detail="", errors=[{"field": "cursor", "message": message}])


def cursor_key(cursor: dict[str, Any], name: str) -> str | None:
    """A string key attribute of a listing's cursor, as DynamoDB would take it back; None if it isn't one."""
    value = cursor.get(name)
    if not isinstance(value, dict) or set(value) != {"S"} or not isinstance(value["S"], str):
        return None
    try:  # DynamoDB's key limits (2048 bytes for a partition key, 1024 for a sort key)
        fits = 0 < len(value["S"].encode("utf-8")) <= 1024
    except UnicodeEncodeError:
        return None
    return value["S"] if fits else None


class StoreUnavailable(StoreError):
    """An AWS call failed in a way no caller handles (throttled past the SDK's retries, access denied, a table
    missing); its message, botocore's, names the operation and AWS's error code, for the logs only."""


@contextmanager
def translate_aws_errors() -> Iterator[None]:
    """A ClientError the code inside leaves unhandled, as StoreUnavailable: the layers above the stores know the
    error tree, not botocore."""
    try:
        yield
    except ClientError as exc:
        raise StoreUnavailable(str(exc)) from exc


def aws_errors(cls: Store) -> Store:
    """Class decorator: every public method of a store runs under translate_aws_errors (a generator's for as long
    as it is iterated), so no ClientError leaves the store, whatever method a later change adds."""
    for name, member in list(vars(cls).items()):
        if not name.startswith("_") and inspect.isfunction(member):
            setattr(cls, name, _translating(member))
    return cls


def _translating(method: Callable[..., Any]) -> Callable[..., Any]:
    if inspect.isgeneratorfunction(method):
        @functools.wraps(method)
        def iterate(*args: Any, **kwargs: Any) -> Generator[Any, Any, Any]:
            with translate_aws_errors():
                return (yield from method(*args, **kwargs))

        return iterate

    @functools.wraps(method)
    def call(*args: Any, **kwargs: Any) -> Any:
        with translate_aws_errors():
            return method(*args, **kwargs)

    return call
