"""Seen-once values (webhook nonces, delivery ids), kept in the idempotency table until they expire."""

from __future__ import annotations

from typing import Any

from router.store.aws import put_new
from router.store.errors import aws_errors


@aws_errors
class NonceStore:
    def __init__(self, dynamodb: Any, table: str) -> None:
        self._ddb = dynamodb
        self._table = table

    def first_seen(self, scope: str, value: str, expires_at: int) -> bool:
        """Record `value` atomically; False if it was already recorded (a replay or a duplicate)."""
        item = {"id": {"S": f"seen#{scope}#{value}"}, "expiration": {"N": str(expires_at)}}
        return put_new(self._ddb, self._table, item, "id")
