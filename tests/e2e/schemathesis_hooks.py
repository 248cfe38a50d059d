"""Schemathesis hooks for test_schemathesis.py, loaded by its CLI through SCHEMATHESIS_HOOKS."""

from __future__ import annotations

from typing import Any

import schemathesis
from schemathesis.specs.openapi.checks import positive_data_acceptance


@schemathesis.check
def positive_data_acceptance_stated(ctx: Any, response: Any, case: Any) -> bool | None:
    """positive_data_acceptance, less the 400s the schema owns up to: a schema-valid request may still be refused
    by a rule JSON Schema can't state (a deadline in the past, an upload that doesn't exist, a stale cursor, an
    Idempotency-Key reused), and each operation lists those under `x-hvr-unstated-rules`. A 400 or 422 naming only
    such fields passes; any other refusal of schema-valid data fails as the built-in check would fail it."""
    if response.status_code in (400, 422):
        rules = case.operation.definition.raw.get("x-hvr-unstated-rules") or {}
        try:
            fields = {error["field"] for error in response.json()["errors"]}
        except (ValueError, KeyError, TypeError):
            fields = set()
        # A rule of a list holds for its items: `arms` covers `arms.0`.
        if fields and all(field.split(".")[0] in rules or field in rules for field in fields):
            return None
    return positive_data_acceptance(ctx, response, case)
