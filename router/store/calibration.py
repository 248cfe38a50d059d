"""Latency and cost calibration per offer: a bounded EWMA of observed / estimated, learned from finished attempts.

Kept in the ledger table under `pk = CAL`, one item per offer. Concurrent updates are optimistic on `samples`;
one that keeps losing drops its sample, which an average over many can afford.
"""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError

from router.policy.context import Calibration

ALPHA = 0.2
FACTOR_BOUNDS = (0.5, 2.0)  # never trust calibration to more than halve or double the catalog's figures
RATIO_BOUNDS = (0.25, 4.0)  # one wild observation moves the average only so far


def _clamp(value: float, bounds: tuple[float, float]) -> float:
    return max(bounds[0], min(bounds[1], value))


def blend(current: Calibration, time_ratio: float, cost_ratio: float) -> Calibration:
    def step(old: float, ratio: float) -> float:
        return round(_clamp(old * (1 - ALPHA) + _clamp(ratio, RATIO_BOUNDS) * ALPHA, FACTOR_BOUNDS), 4)

    return Calibration(time_factor=step(current.time_factor, time_ratio),
                       cost_factor=step(current.cost_factor, cost_ratio), samples=current.samples + 1)


class CalibrationRepository:
    def __init__(self, dynamodb: Any, table: str) -> None:
        self._ddb = dynamodb
        self._table = table

    def all(self) -> dict[str, Calibration]:
        page = self._ddb.query(TableName=self._table, KeyConditionExpression="pk = :p",
                               ExpressionAttributeValues={":p": {"S": "CAL"}})
        return {item["sk"]["S"].removeprefix("O#"): _from_item(item) for item in page.get("Items", [])}

    def observe(self, offer_id: str, time_ratio: float, cost_ratio: float, tries: int = 3) -> Calibration | None:
        key = {"pk": {"S": "CAL"}, "sk": {"S": f"O#{offer_id}"}}
        for _ in range(tries):
            item = self._ddb.get_item(TableName=self._table, Key=key, ConsistentRead=True).get("Item")
            current = _from_item(item) if item else Calibration()
            updated = blend(current, time_ratio, cost_ratio)
            try:
                self._ddb.put_item(
                    TableName=self._table,
                    Item={**key, "time_factor": {"N": str(updated.time_factor)},
                          "cost_factor": {"N": str(updated.cost_factor)}, "samples": {"N": str(updated.samples)}},
                    ConditionExpression="attribute_not_exists(pk) OR samples = :seen",
                    ExpressionAttributeValues={":seen": {"N": str(current.samples)}},
                )
            except ClientError as exc:
                if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
                    continue
                raise
            return updated
        return None


def _from_item(item: dict[str, Any]) -> Calibration:
    return Calibration(time_factor=float(item["time_factor"]["N"]), cost_factor=float(item["cost_factor"]["N"]),
                       samples=int(item["samples"]["N"]))
