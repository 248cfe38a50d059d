"""Circuit breaker state per target, in DynamoDB so every Lambda sees the same circuits.

Items live in the ledger table under `pk = CIRCUIT`, one per target: consecutive failures and, once they reach
the threshold, the time the circuit stays open until. After that time the next call is the half-open probe: a
success closes the circuit, a failure (the count is still over the threshold) opens it again.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from router.models.common import Circuit, iso
from router.store.errors import aws_errors


@aws_errors
class CircuitRepository:
    def __init__(self, dynamodb: Any, table: str, threshold: int = 5, cooldown_s: float = 60.0) -> None:
        self._ddb = dynamodb
        self._table = table
        self.threshold = threshold
        self.cooldown_s = cooldown_s

    def _key(self, target: str) -> dict[str, Any]:
        return {"pk": {"S": "CIRCUIT"}, "sk": {"S": f"T#{target}"}}

    def failure(self, target: str, now: datetime, cooldown_s: float) -> int:
        item = self._ddb.update_item(TableName=self._table, Key=self._key(target), UpdateExpression="ADD failures :one",
                                     ExpressionAttributeValues={":one": {"N": "1"}}, ReturnValues="ALL_NEW")
        failures = int(item["Attributes"]["failures"]["N"])
        if failures >= self.threshold:
            self._ddb.update_item(TableName=self._table, Key=self._key(target),
                                  UpdateExpression="SET opened_until = :u",
                                  ExpressionAttributeValues={":u": {"S": open_until(now, cooldown_s)}})
        return failures

    def success(self, target: str) -> None:
        self._ddb.update_item(TableName=self._table, Key=self._key(target),
                              UpdateExpression="SET failures = :zero REMOVE opened_until",
                              ExpressionAttributeValues={":zero": {"N": "0"}})

    def states(self, now: datetime) -> dict[str, Circuit]:
        page = self._ddb.query(TableName=self._table, KeyConditionExpression="pk = :p",
                               ExpressionAttributeValues={":p": {"S": "CIRCUIT"}})
        states = {}
        for item in page.get("Items", []):
            target = item["sk"]["S"].removeprefix("T#")
            failures = int(item.get("failures", {}).get("N", "0"))
            states[target] = circuit_state(failures, item.get("opened_until", {}).get("S"), now, self.threshold)
        return states


def open_until(now: datetime, cooldown_s: float) -> str:
    """When a circuit that opens at `now` lets its half-open probe through (stored as an ISO string)."""
    return iso(datetime.fromtimestamp(now.timestamp() + cooldown_s, tz=now.tzinfo))


def circuit_state(failures: int, opened_until: str | None, now: datetime, threshold: int) -> Circuit:
    """Past its cooldown a circuit still over the threshold is half-open: the next call probes it."""
    if opened_until and opened_until > iso(now):
        return Circuit.OPEN
    return Circuit.HALF_OPEN if failures >= threshold else Circuit.CLOSED
