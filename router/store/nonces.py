"""Seen-once values (webhook nonces, delivery ids), kept in the idempotency table until they expire."""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError

from router.store.errors import aws_errors


@aws_errors
class NonceStore:
    def __init__(self, dynamodb: Any, table: str) -> None:
        self._ddb = dynamodb
        self._table = table

    def first_seen(self, scope: str, value: str, expires_at: int) -> bool:
        """Record `value` atomically; False if it was already recorded (a replay or a duplicate)."""
        try:
            self._ddb.put_item(
                TableName=self._table,
                Item={"id": {"S": f"seen#{scope}#{value}"}, "expiration": {"N": str(expires_at)}},
                ConditionExpression="attribute_not_exists(id)",
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
                return False
            raise
        return True
