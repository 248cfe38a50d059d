"""The cost ledger on DynamoDB: one row per attempt, written at most once (idempotent on the attempt id)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from decimal import Decimal
from typing import Any

from router.models.common import iso, money
from router.models.ledger import LedgerEntry
from router.store.aws import put_new
from router.store.errors import aws_errors


@aws_errors
class LedgerRepository:
    def __init__(self, dynamodb: Any, table: str) -> None:
        self._ddb = dynamodb
        self._table = table

    def record(self, entry: LedgerEntry) -> bool:
        """Write the attempt's row; False if it was already there (a duplicate finalize), never a second row."""
        item = {
            "pk": {"S": f"T#{entry.tenant}#J#{entry.job_id}"},
            "sk": {"S": f"A#{entry.attempt_id}"},
            "tenant": {"S": entry.tenant},
            "day": {"S": iso(entry.ended_at)[:10]},
            "period": {"S": iso(entry.ended_at)[:7]},  # the by_period index: cost reports and alert summaries
            "provider": {"S": entry.provider.value},
            "offer": {"S": entry.offer},
            "actual_usd": {"N": str(entry.actual_usd)},
            "estimated_usd": {"N": str(entry.estimated_usd)},
            "doc": {"S": entry.model_dump_json()},
        }
        if entry.campaign_id:
            item["campaign_id"] = {"S": entry.campaign_id}
        return put_new(self._ddb, self._table, item, "sk")

    def for_job(self, tenant: str, job_id: str) -> list[LedgerEntry]:
        page = self._ddb.query(
            TableName=self._table,
            KeyConditionExpression="pk = :pk",
            ExpressionAttributeValues={":pk": {"S": f"T#{tenant}#J#{job_id}"}},
            ConsistentRead=True,
        )
        return [LedgerEntry.model_validate(json.loads(item["doc"]["S"])) for item in page.get("Items", [])]

    def actual(self, tenant: str, job_id: str, attempt_id: str) -> Decimal | None:
        key = {"pk": {"S": f"T#{tenant}#J#{job_id}"}, "sk": {"S": f"A#{attempt_id}"}}
        item = self._ddb.get_item(TableName=self._table, ConsistentRead=True, Key=key).get("Item")
        return Decimal(item["actual_usd"]["N"]) if item else None

    def for_period(self, period: str) -> list[LedgerEntry]:
        """Every row that ended in a calendar month (the `by_period` index)."""
        rows: list[LedgerEntry] = []
        args: dict[str, Any] = {"TableName": self._table, "IndexName": "by_period",
                                "KeyConditionExpression": "#period = :p",
                                "ExpressionAttributeNames": {"#period": "period"},
                                "ExpressionAttributeValues": {":p": {"S": period}}}
        while True:
            page = self._ddb.query(**args)
            rows += [LedgerEntry.model_validate(json.loads(item["doc"]["S"])) for item in page.get("Items", [])]
            if "LastEvaluatedKey" not in page:
                return rows
            args["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def top_offers(self, scope: str, period: str, limit: int = 3) -> list[dict[str, str]]:
        """The offers that spent most in a budget scope and period, for alert messages."""
        return rank_offers(self.for_period(period), scope, limit)


def rank_offers(rows: Iterable[LedgerEntry], scope: str, limit: int) -> list[dict[str, str]]:
    """The `limit` offers with the most spend among the rows in `scope`, most first (ties by offer id)."""
    totals: dict[str, Decimal] = {}
    for row in rows:
        if in_scope(row, scope):
            totals[row.offer] = totals.get(row.offer, Decimal(0)) + row.actual_usd
    ranked = sorted(totals.items(), key=lambda kv: (-kv[1], kv[0]))[:limit]
    return [{"offer": offer, "actual_usd": f"{usd:.4f}"} for offer, usd in ranked]


def spent_in(rows: Iterable[LedgerEntry], scope: str) -> Decimal:
    """What a budget scope spent, over the rows given (one period's): the one definition of spend that budgets,
    cost reports, charts and refusals all agree with."""
    return money(sum((row.actual_usd for row in rows if in_scope(row, scope)), Decimal(0)))


def in_scope(row: LedgerEntry, scope: str) -> bool:
    kind, _, name = scope.partition(":")
    return kind == "global" or (kind == "tenant" and row.tenant == name) or (
        kind == "campaign" and row.campaign_id == name)
