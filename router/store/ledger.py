"""The cost ledger on DynamoDB: one row per attempt, written at most once (idempotent on the attempt id)."""

from __future__ import annotations

import json
from typing import Any

from botocore.exceptions import ClientError

from router.models.common import iso
from router.models.ledger import LedgerEntry


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
            "provider": {"S": entry.provider.value},
            "offer": {"S": entry.offer},
            "actual_usd": {"N": str(entry.actual_usd)},
            "estimated_usd": {"N": str(entry.estimated_usd)},
            "doc": {"S": entry.model_dump_json()},
        }
        if entry.campaign_id:
            item["campaign_id"] = {"S": entry.campaign_id}
        try:
            self._ddb.put_item(TableName=self._table, Item=item, ConditionExpression="attribute_not_exists(sk)")
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def for_job(self, tenant: str, job_id: str) -> list[LedgerEntry]:
        page = self._ddb.query(
            TableName=self._table,
            KeyConditionExpression="pk = :pk",
            ExpressionAttributeValues={":pk": {"S": f"T#{tenant}#J#{job_id}"}},
            ConsistentRead=True,
        )
        return [LedgerEntry.model_validate(json.loads(item["doc"]["S"])) for item in page.get("Items", [])]
