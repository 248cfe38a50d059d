"""Budget alerts as they happened, in the budgets table beside the budgets they are about (docs/architecture.md,
"Money").

Items: `pk = A#<scope>`, `sk = <at>#<unique>`, holding the alert's JSON document and its period. `at` is written
with a fixed width (microseconds always present), so the sort key orders by time as text; the unique tail keeps
two alerts of one scope in the same microsecond apart. A listing is newest first, ordered by (sk, pk) descending
over the scopes it covers, and its cursor is the key of the last alert it returned.
"""

from __future__ import annotations

import builtins
import uuid
from collections.abc import Iterable
from datetime import UTC
from typing import Any

from router.models.budget import SCOPE_PATTERN, BudgetAlert
from router.store.errors import BadCursor, aws_errors, cursor_key

PREFIX = "A#"
# A page's rows: (sk, pk, the alert's JSON document).
Row = tuple[str, str, str]


def alert_key(alert: BudgetAlert, unique: str | None = None) -> tuple[str, str]:
    """(pk, sk) of a new alert item."""
    at = alert.at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return f"{PREFIX}{alert.scope}", f"{at}#{unique or uuid.uuid4().hex[:12]}"


def checked_alert_cursor(cursor: dict[str, Any], scopes: list[str] | None) -> tuple[str, str]:
    """(sk, pk) of a cursor this listing handed out, or BadCursor: anything else would reach botocore as a key, or
    start a listing inside a scope it doesn't cover."""
    pk, sk = cursor_key(cursor, "pk"), cursor_key(cursor, "sk")
    if set(cursor) != {"pk", "sk"} or pk is None or sk is None or not pk.startswith(PREFIX):
        raise BadCursor("not a cursor of this listing")
    scope = pk.removeprefix(PREFIX)
    if not SCOPE_PATTERN.match(scope) or (scopes is not None and scope not in scopes):
        raise BadCursor("not a cursor of this listing")
    return sk, pk


def page_of(rows: Iterable[Row], limit: int, after: tuple[str, str] | None
            ) -> tuple[list[BudgetAlert], dict[str, Any] | None]:
    """Newest first after the cursor's position, `limit` of them, and the cursor of the next page when more follow."""
    ordered = sorted(((sk, pk, doc) for sk, pk, doc in rows if after is None or (sk, pk) < after), reverse=True)
    page = ordered[:limit]
    alerts = [BudgetAlert.model_validate_json(doc) for _, _, doc in page]
    if len(ordered) <= limit:
        return alerts, None
    last_sk, last_pk, _ = page[-1]
    return alerts, {"pk": {"S": last_pk}, "sk": {"S": last_sk}}


@aws_errors
class AlertHistoryRepository:
    def __init__(self, dynamodb: Any, table: str) -> None:
        self._ddb = dynamodb
        self._table = table

    def record(self, alert: BudgetAlert) -> None:
        pk, sk = alert_key(alert)
        self._ddb.put_item(TableName=self._table, Item={
            "pk": {"S": pk}, "sk": {"S": sk}, "period": {"S": alert.period}, "kind": {"S": alert.kind},
            "doc": {"S": alert.model_dump_json()}})

    def list(self, scopes: list[str] | None, period: str | None, limit: int = 50,
             cursor: dict[str, Any] | None = None) -> tuple[list[BudgetAlert], dict[str, Any] | None]:
        after = checked_alert_cursor(cursor, scopes) if cursor is not None else None
        if limit < 1:
            raise ValueError("limit must be at least 1")
        if scopes is None:
            rows = self._scan(period)
        else:
            rows = [row for scope in dict.fromkeys(scopes) for row in self._newest(scope, period, limit, after)]
        return page_of(rows, limit, after)

    def scopes(self) -> set[str]:
        args: dict[str, Any] = {"TableName": self._table, "ProjectionExpression": "pk",
                                "FilterExpression": "begins_with(pk, :a)", "ExpressionAttributeValues": {
                                    ":a": {"S": PREFIX}}}
        return {item["pk"]["S"].removeprefix(PREFIX) for item in self._pages(args)}

    def _newest(self, scope: str, period: str | None, limit: int, after: tuple[str, str] | None) -> builtins.list[Row]:
        """Up to limit + 1 of a scope's alerts past the cursor, newest first: enough to fill a page and tell
        whether another follows, whichever scopes the page's alerts come from."""
        values: dict[str, Any] = {":pk": {"S": f"{PREFIX}{scope}"}}
        condition = "pk = :pk"
        if after is not None:  # `<=`: an alert of another scope may share the cursor's sk; page_of drops the rest
            condition += " AND sk <= :after"
            values[":after"] = {"S": after[0]}
        args: dict[str, Any] = {"TableName": self._table, "KeyConditionExpression": condition,
                                "ExpressionAttributeValues": values, "ScanIndexForward": False}
        if period is not None:
            args["FilterExpression"], args["ExpressionAttributeNames"] = "#p = :p", {"#p": "period"}
            values[":p"] = {"S": period}
        rows: builtins.list[Row] = []
        for item in self._pages(args, query=True):
            row = (item["sk"]["S"], item["pk"]["S"], item["doc"]["S"])
            if after is None or (row[0], row[1]) < after:
                rows.append(row)
                if len(rows) > limit:
                    break
        return rows

    def _scan(self, period: str | None) -> builtins.list[Row]:
        # Every scope at once is a Scan: the budgets table stays small (budgets, in-flight reservations and a few
        # alerts per budget and month), and a listing of all scopes is an admin's occasional read.
        values: dict[str, Any] = {":a": {"S": PREFIX}}
        args: dict[str, Any] = {"TableName": self._table, "FilterExpression": "begins_with(pk, :a)",
                                "ExpressionAttributeValues": values}
        if period is not None:
            args["FilterExpression"] += " AND #p = :p"
            args["ExpressionAttributeNames"] = {"#p": "period"}
            values[":p"] = {"S": period}
        return [(item["sk"]["S"], item["pk"]["S"], item["doc"]["S"]) for item in self._pages(args)]

    def _pages(self, args: dict[str, Any], query: bool = False) -> Iterable[dict[str, Any]]:
        read = self._ddb.query if query else self._ddb.scan
        while True:
            page = read(**args)
            yield from page.get("Items", [])
            if "LastEvaluatedKey" not in page:
                return
            args = {**args, "ExclusiveStartKey": page["LastEvaluatedKey"]}
