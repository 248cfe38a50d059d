"""Learned offer models (router.policy.learning) in DynamoDB, one item per key.

Kept in the ledger table under `pk = LEARNED`. The clamped factors the old calibration kept under `pk = CAL` are not
carried over: bounded to 0.5-2 times the catalog, they can't seed an unbounded model. The stats are one compact JSON
string; `version` makes updates optimistic, and the ids of the last attempts learned make a redelivered finalize a
no-op. An update that keeps losing the race drops its observation, which a median over a dozen runs can afford.

Exploration's daily caps count here too: one item per UTC day (`pk = EXPLORED`), added to when an exploring attempt
starts and read with each exploring decision's context. Two routes at the same moment can both see the last slot
free: the cap is soft by the number of concurrent routes, which a share of jobs can afford.
"""

from __future__ import annotations

import json
from dataclasses import asdict, fields
from datetime import date
from decimal import Decimal
from typing import Any

from botocore.exceptions import ClientError

from router.policy.learning import Observation, OfferStats, observe
from router.store.errors import aws_errors

PK = "LEARNED"
EXPLORED_PK = "EXPLORED"
SEEN = 8  # attempt ids remembered per key: redeliveries come within minutes, not eight attempts later


@aws_errors
class LearnedRepository:
    def __init__(self, dynamodb: Any, table: str) -> None:
        self._ddb = dynamodb
        self._table = table

    def all(self) -> dict[str, OfferStats]:
        """Every key's stats: the snapshot a routing context is built from."""
        found: dict[str, OfferStats] = {}
        query: dict[str, Any] = {"TableName": self._table, "KeyConditionExpression": "pk = :p",
                                 "ExpressionAttributeValues": {":p": {"S": PK}}}
        while True:
            page = self._ddb.query(**query)
            for item in page.get("Items", []):
                found[item["sk"]["S"].removeprefix("K#")] = _stats(item)
            if "LastEvaluatedKey" not in page:
                return found
            query["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def observe(self, key: str, observation: Observation, attempt_id: str, tries: int = 5) -> OfferStats | None:
        """Learn one attempt; None when it was learned already or every try lost the race."""
        item_key = {"pk": {"S": PK}, "sk": {"S": f"K#{key}"}}
        for _ in range(tries):
            item = self._ddb.get_item(TableName=self._table, Key=item_key, ConsistentRead=True).get("Item")
            seen = [v["S"] for v in item.get("seen", {}).get("L", [])] if item else []
            learned = learn(_stats(item) if item else OfferStats(), seen, observation, attempt_id)
            if learned is None:
                return None
            updated, now_seen = learned
            version = int(item["version"]["N"]) if item else 0
            try:
                self._ddb.put_item(
                    TableName=self._table,
                    Item={**item_key, "stats": {"S": _dump(updated)}, "version": {"N": str(version + 1)},
                          "seen": {"L": [{"S": v} for v in now_seen]}},
                    ConditionExpression="attribute_not_exists(pk) OR version = :seen",
                    ExpressionAttributeValues={":seen": {"N": str(version)}},
                )
            except ClientError as exc:
                if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
                    continue
                raise
            return updated
        return None

    def explored(self, day: date) -> tuple[int, Decimal]:
        """Exploring attempts started on `day` (UTC), and their p90 cost."""
        item = self._ddb.get_item(TableName=self._table, Key=_day_key(day)).get("Item")
        if not item:
            return 0, Decimal(0)
        return int(item["jobs"]["N"]), Decimal(item["usd"]["N"])

    def count_exploration(self, day: date, cost_p90_usd: Decimal) -> None:
        self._ddb.update_item(TableName=self._table, Key=_day_key(day), UpdateExpression="ADD jobs :one, usd :usd",
                              ExpressionAttributeValues={":one": {"N": "1"}, ":usd": {"N": str(cost_p90_usd)}})


def learn(stats: OfferStats, seen: list[str], observation: Observation,
          attempt_id: str) -> tuple[OfferStats, list[str]] | None:
    """The stats after the attempt's observation and the attempt ids then remembered; None when the attempt is
    among those already learned (a redelivered finalize)."""
    if attempt_id in seen:
        return None
    return observe(stats, observation), [*seen, attempt_id][-SEEN:]


def _day_key(day: date) -> dict[str, Any]:
    return {"pk": {"S": EXPLORED_PK}, "sk": {"S": f"D#{day.isoformat()}"}}


def _dump(stats: OfferStats) -> str:
    return json.dumps(asdict(stats), separators=(",", ":"))


def _stats(item: dict[str, Any]) -> OfferStats:
    raw: dict[str, Any] = json.loads(item["stats"]["S"])
    known = {f.name for f in fields(OfferStats)}
    # Lists back to tuples; a field this version doesn't know (written by a newer one) is dropped.
    values: dict[str, Any] = {name: tuple(value) if isinstance(value, list) else value
                              for name, value in raw.items() if name in known}
    return OfferStats(**values)
