"""Reconciliation findings on DynamoDB, in the ledger table beside the rows they are about.

Key: `pk = RECON#<day>` (the UTC day the attempt ended), `sk = A#<attempt id>#<kind>`: one item per attempt and kind,
written once (a conditional put), so a run over a window that was reconciled before stores, and alerts, nothing
twice. The items carry no `period`, so the ledger's `by_period` index (cost reports, budgets) never sees them.
"""

from __future__ import annotations

from datetime import UTC, date, timedelta
from typing import Any

from router.models.common import iso
from router.models.reconciliation import ReconciliationFinding
from router.store.aws import put_new
from router.store.errors import aws_errors

PREFIX = "RECON#"


def day_key(day: date) -> str:
    return f"{PREFIX}{day.isoformat()}"


def finding_key(finding: ReconciliationFinding) -> tuple[str, str]:
    """(pk, sk) of a finding: filed by its attempt's UTC day, one per attempt and kind."""
    return day_key(finding.ended_at.astimezone(UTC).date()), f"A#{finding.attempt_id}#{finding.kind.value}"


def days(first: date, last: date) -> list[date]:
    return [first + timedelta(days=n) for n in range((last - first).days + 1)]


@aws_errors
class FindingsRepository:
    def __init__(self, dynamodb: Any, table: str) -> None:
        self._ddb = dynamodb
        self._table = table

    def add(self, finding: ReconciliationFinding) -> bool:
        """Store the finding; False when this attempt already has one of this kind (the first one stays)."""
        pk, sk = finding_key(finding)
        item = {"pk": {"S": pk}, "sk": {"S": sk}, "tenant": {"S": finding.tenant},
                "provider": {"S": finding.provider.value}, "kind": {"S": finding.kind.value},
                "found_at": {"S": iso(finding.found_at)}, "doc": {"S": finding.model_dump_json()}}
        return put_new(self._ddb, self._table, item, "sk")

    def between(self, first: date, last: date) -> list[ReconciliationFinding]:
        """Every finding of attempts that ended on the days from `first` to `last`, by day, then attempt and kind."""
        found: list[ReconciliationFinding] = []
        for day in days(first, last):
            args: dict[str, Any] = {"TableName": self._table, "KeyConditionExpression": "pk = :pk",
                                    "ExpressionAttributeValues": {":pk": {"S": day_key(day)}}}
            while True:
                page = self._ddb.query(**args)
                found += [ReconciliationFinding.model_validate_json(item["doc"]["S"]) for item in page.get("Items", [])]
                if "LastEvaluatedKey" not in page:
                    break
                args["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        return found
