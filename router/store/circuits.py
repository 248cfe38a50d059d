"""Circuit breaker state per target, in DynamoDB so every Lambda sees the same circuits.

Items live in the ledger table under `pk = CIRCUIT`, one per target: consecutive failures and, once they reach
the threshold, the time the circuit stays open until. After that time the next call is the half-open probe: a
success closes the circuit, a failure (the count is still over the threshold) opens it again.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from router.models.common import iso
from router.policy.context import Circuit


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
            until = datetime.fromtimestamp(now.timestamp() + cooldown_s, tz=now.tzinfo)
            self._ddb.update_item(TableName=self._table, Key=self._key(target),
                                  UpdateExpression="SET opened_until = :u",
                                  ExpressionAttributeValues={":u": {"S": iso(until)}})
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
            until = item.get("opened_until", {}).get("S")
            if until and until > iso(now):
                states[target] = Circuit.OPEN
            elif failures >= self.threshold:
                states[target] = Circuit.HALF_OPEN
            else:
                states[target] = Circuit.CLOSED
        return states
