"""Errors the stores raise instead of botocore's (router/errors.py has the tree they belong to)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from botocore.exceptions import ClientError

from router.errors import HvrError, InvalidRequest
from router.errors import NotFound as Missing


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
