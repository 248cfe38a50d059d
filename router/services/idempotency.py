"""`Idempotency-Key` on job submission (IETF httpapi draft), on Powertools idempotency with DynamoDB.

Same key and body → the same job (replayed, 200); same key, different body → 422; same key while the first
request is still running → 409. Keys are scoped to the tenant, so one tenant can't replay another's response.
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable
from datetime import datetime
from functools import cache
from typing import Any

from pydantic import ValidationError

from router.errors import Conflict, HvrError, field_errors
from router.models.job import Job
from router.models.request import VideoRequest
from router.services.deps import Deps
from router.services.submit import InvalidInput

EXPIRES_AFTER_S = 24 * 3600
_ran = contextvars.ContextVar("idempotent_submit_ran", default=False)


class KeyReused(HvrError):
    """Same key, different body."""

    status, problem, title = 422, "idempotency-key-reused", "Idempotency key reused"

    def __init__(self, message: str) -> None:
        super().__init__(message, errors=[{"field": "Idempotency-Key", "message": message}])


class KeyInFlight(Conflict):
    """Same key while the first request is still being processed."""


def parse_request(body: Any, now: datetime) -> VideoRequest:
    try:
        return VideoRequest.parse_at_edge(body, now)
    except ValidationError as exc:
        raise InvalidInput(field_errors(exc)) from exc


@cache
def _idempotent(table: str, endpoint: str | None) -> tuple[Any, Any]:
    from aws_lambda_powertools.utilities.idempotency import (
        DynamoDBPersistenceLayer,
        IdempotencyConfig,
        idempotent_function,
    )

    from router.store.aws import client

    persistence = DynamoDBPersistenceLayer(table_name=table, boto3_client=client("dynamodb", endpoint))
    config = IdempotencyConfig(
        event_key_jmespath="[tenant, key]",
        payload_validation_jmespath="body",
        raise_on_no_idempotency_key=True,
        expires_after_seconds=EXPIRES_AFTER_S,
    )

    @idempotent_function(data_keyword_argument="call", persistence_store=persistence, config=config)
    def run(call: dict[str, Any], create: Callable[[], Job]) -> dict[str, Any]:
        _ran.set(True)
        job = create()
        return {"job_id": job.id}

    return run, config


def submit(tenant: str, key: str | None, body: Any, create: Callable[[], Job], deps: Deps,
           lambda_context: Any = None) -> tuple[Job, bool]:
    """Run `create` at most once per (tenant, key); returns the job and whether this call was a replay."""
    if key is None:
        return create(), False
    from aws_lambda_powertools.utilities.idempotency.exceptions import (
        IdempotencyAlreadyInProgressError,
        IdempotencyValidationError,
    )

    run, config = _idempotent(deps.settings.idempotency_table, deps.settings.aws_endpoint_url)
    if lambda_context is not None:
        config.register_lambda_context(lambda_context)
    _ran.set(False)
    try:
        stored = run(call={"tenant": tenant, "key": key, "body": body}, create=create)
    except IdempotencyValidationError as exc:
        raise KeyReused("this Idempotency-Key was used with a different body") from exc
    except IdempotencyAlreadyInProgressError as exc:
        raise KeyInFlight("a request with this Idempotency-Key is still being processed") from exc
    return deps.jobs.get(tenant, stored["job_id"]), not _ran.get()
