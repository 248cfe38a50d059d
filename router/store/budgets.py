"""Budgets and reservations in their own small DynamoDB table (docs/architecture.md, "Money").

Budget items: `pk = B#<scope>`, `sk = <period>`, with limit, spent, reserved and remaining (= limit - spent -
reserved, stored because conditions can't do arithmetic), thresholds, spend mode, and the thresholds already
alerted. Reservation items: `pk = R#<attempt id>`, `sk = -`, with the estimate, the scopes it holds and its state.
Reserve and settle are single transactions; settle is conditioned on the reservation still being `reserved`, so a
duplicate settle changes nothing; settle is never conditioned on the limit (the true cost is always recorded).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from botocore.exceptions import ClientError

from router.errors import HvrError
from router.models.budget import Budget, BudgetUpdate, SpendMode
from router.models.common import iso, money
from router.store.errors import StoreUnavailable, aws_errors


class BudgetRefused(HvrError):
    """A reservation the budget can't hold: the worker routes again or ends the job `budget_exhausted`."""

    def __init__(self, scope: str, remaining: Decimal, estimate: Decimal) -> None:
        super().__init__(f"{scope} has ${remaining} left, the estimate is ${estimate}")
        self.scope = scope


@dataclass(frozen=True)
class Reservation:
    attempt_id: str
    tenant: str
    job_id: str
    period: str
    scopes: tuple[str, ...]
    estimate: Decimal
    state: str
    created_at: str
    actual: Decimal | None = None  # what it was settled at; None while it holds


def _n(value: Decimal) -> dict[str, str]:
    return {"N": str(value)}


@aws_errors
class BudgetRepository:
    def __init__(self, dynamodb: Any, table: str) -> None:
        self._ddb = dynamodb
        self._table = table

    # --- budgets -----------------------------------------------------------------------------------------------

    def get_many(self, scopes: list[str], period: str) -> dict[str, Budget]:
        keys = [{"pk": {"S": f"B#{scope}"}, "sk": {"S": period}} for scope in scopes]
        found = self._ddb.batch_get_item(RequestItems={self._table: {"Keys": keys, "ConsistentRead": True}})
        return {b.scope: b for b in (_budget(item) for item in found["Responses"].get(self._table, []))}

    def for_period(self, period: str) -> list[Budget]:
        items: list[dict[str, Any]] = []
        args: dict[str, Any] = {"TableName": self._table, "FilterExpression": "sk = :p AND begins_with(pk, :b)",
                                "ExpressionAttributeValues": {":p": {"S": period}, ":b": {"S": "B#"}}}
        while True:  # the table stays small: budgets and in-flight reservations only
            page = self._ddb.scan(**args)
            items += page.get("Items", [])
            if "LastEvaluatedKey" not in page:
                return sorted((_budget(i) for i in items), key=lambda b: b.scope)
            args["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def put(self, scope: str, period: str, update: BudgetUpdate, now: datetime, by: str,
            spent_before: Decimal = Decimal(0)) -> Budget:
        """Create or change a budget; remaining is recomputed from what is already spent and reserved. A new budget
        starts from `spent_before` (what the scope already spent this period); a changed one keeps its count."""
        for _ in range(5):
            current = self._raw(scope, period) or {}
            spent = Decimal(current["spent_usd"]["N"]) if current else spent_before
            reserved = Decimal(current.get("reserved_usd", {}).get("N", "0"))
            version = int(current.get("version", {}).get("N", "0"))
            overspent = over_limit(update.limit_usd, spent, reserved,
                                   Decimal(current.get("overspent_usd", {}).get("N", "0")))
            item = {
                **current,
                "pk": {"S": f"B#{scope}"}, "sk": {"S": period}, "scope": {"S": scope},
                "limit_usd": _n(update.limit_usd), "spent_usd": _n(spent), "reserved_usd": _n(reserved),
                "remaining_usd": _n(update.limit_usd - spent - reserved), "overspent_usd": _n(overspent),
                "thresholds": {"L": [{"N": str(t)} for t in update.thresholds]},
                "version": {"N": str(version + 1)},
            }
            if update.spend_mode is not None or not current:
                mode = update.spend_mode or SpendMode.NORMAL
                item.update(spend_mode={"S": mode.value}, mode_by={"S": by}, mode_at={"S": iso(now)})
            condition = "version = :v" if current else "attribute_not_exists(pk)"
            values = {":v": {"N": str(version)}} if current else None
            try:
                self._ddb.put_item(TableName=self._table, Item=item, ConditionExpression=condition,
                                   **({"ExpressionAttributeValues": values} if values else {}))
            except ClientError as exc:
                if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
                    continue  # a reservation or settle moved it meanwhile: recompute
                raise
            return _budget(item)
        raise RuntimeError(f"budget {scope} kept changing; try again")

    def _raw(self, scope: str, period: str) -> dict[str, Any] | None:
        item: dict[str, Any] | None = self._ddb.get_item(
            TableName=self._table, Key={"pk": {"S": f"B#{scope}"}, "sk": {"S": period}}, ConsistentRead=True
        ).get("Item")
        return item

    def set_mode(self, scope: str, period: str, mode: SpendMode, by: str, now: datetime) -> bool:
        """Move a scope's spend mode up to `mode`; False if that budget doesn't exist or is there already (rules
        only ever tighten a mode, so of two settles crossing a rule together exactly one moves it)."""
        lower = [m for m in SpendMode if m.rank < mode.rank]
        if not lower:
            return False
        names = {f":l{n}": {"S": m.value} for n, m in enumerate(lower)}
        try:
            self._ddb.update_item(
                TableName=self._table, Key={"pk": {"S": f"B#{scope}"}, "sk": {"S": period}},
                UpdateExpression="SET spend_mode = :m, mode_by = :by, mode_at = :at ADD version :one",
                ConditionExpression=f"attribute_exists(pk) AND spend_mode IN ({', '.join(names)})",
                ExpressionAttributeValues={":m": {"S": mode.value}, ":by": {"S": by}, ":at": {"S": iso(now)},
                                           ":one": {"N": "1"}, **names},
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def claim_alert(self, scope: str, period: str, threshold: float) -> bool:
        """True exactly once per scope, period and threshold, however many settles cross it together."""
        try:
            self._ddb.update_item(
                TableName=self._table, Key={"pk": {"S": f"B#{scope}"}, "sk": {"S": period}},
                UpdateExpression="ADD alerted :t",
                ConditionExpression="attribute_exists(pk) AND NOT contains(alerted, :s)",
                ExpressionAttributeValues={":t": {"SS": [str(threshold)]}, ":s": {"S": str(threshold)}},
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
                return False
            raise
        return True

    # --- reservations ------------------------------------------------------------------------------------------

    def reserve(self, tenant: str, job_id: str, attempt_id: str, period: str, scopes: list[str], estimate: Decimal,
                now: datetime) -> None:
        """Hold `estimate` in every scope at once, or in none (BudgetRefused names the scope that said no)."""
        actions: list[dict[str, Any]] = [{"Put": {
            "TableName": self._table,
            "Item": {"pk": {"S": f"R#{attempt_id}"}, "sk": {"S": "-"}, "period": {"S": period},
                     "tenant": {"S": tenant}, "job_id": {"S": job_id},
                     "scopes": {"L": [{"S": s} for s in scopes]}, "estimate": _n(estimate),
                     "state": {"S": "reserved"}, "created_at": {"S": iso(now)}},
            "ConditionExpression": "attribute_not_exists(pk)",
        }}]
        for scope in scopes:
            actions.append({"Update": {
                "TableName": self._table, "Key": {"pk": {"S": f"B#{scope}"}, "sk": {"S": period}},
                "UpdateExpression": "SET remaining_usd = remaining_usd - :e, reserved_usd = reserved_usd + :e "
                                    "ADD version :one",
                "ConditionExpression": "remaining_usd >= :e AND spend_mode <> :paused",
                "ExpressionAttributeValues": {":e": _n(estimate), ":one": {"N": "1"},
                                              ":paused": {"S": SpendMode.PAUSED.value}},
            }})
        try:
            self._ddb.transact_write_items(TransactItems=actions)
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "TransactionCanceledException":
                raise
            reasons = exc.response.get("CancellationReasons", [])
            if reasons and reasons[0].get("Code") == "ConditionalCheckFailed":
                return  # this attempt already holds its reservation (a redelivered route)
            for scope, reason in zip(scopes, reasons[1:], strict=False):
                if reason.get("Code") == "ConditionalCheckFailed":
                    left = self.get_many([scope], period).get(scope)
                    raise BudgetRefused(scope, left.remaining_usd if left else Decimal(0), estimate) from exc
            raise

    def reservation(self, attempt_id: str) -> Reservation | None:
        item = self._ddb.get_item(TableName=self._table, Key={"pk": {"S": f"R#{attempt_id}"}, "sk": {"S": "-"}},
                                  ConsistentRead=True).get("Item")
        if item is None:
            return None
        return Reservation(attempt_id=attempt_id, tenant=item["tenant"]["S"], job_id=item["job_id"]["S"],
                           period=item["period"]["S"],
                           scopes=tuple(s["S"] for s in item["scopes"]["L"]), estimate=Decimal(item["estimate"]["N"]),
                           state=item["state"]["S"], created_at=item["created_at"]["S"],
                           actual=Decimal(item["actual"]["N"]) if "actual" in item else None)

    def settle(self, reservation: Reservation, actual: Decimal, spent_here: bool = True) -> bool:
        """Move the estimate out of reserved and the actual into spent, once; False if already settled. With
        `spent_here` false (the attempt ended in a later period, whose budgets count it) the hold is only
        released."""
        if not spent_here:
            actual = Decimal(0)
        est, excess = reservation.estimate, max(Decimal(0), actual - reservation.estimate)
        actions: list[dict[str, Any]] = [{"Update": {
            "TableName": self._table, "Key": {"pk": {"S": f"R#{reservation.attempt_id}"}, "sk": {"S": "-"}},
            "UpdateExpression": "SET #s = :settled, actual = :a",
            "ConditionExpression": "#s = :reserved",
            "ExpressionAttributeNames": {"#s": "state"},
            "ExpressionAttributeValues": {":settled": {"S": "settled"}, ":reserved": {"S": "reserved"},
                                          ":a": _n(actual)},
        }}]
        for scope in reservation.scopes:
            actions.append({"Update": {
                "TableName": self._table, "Key": {"pk": {"S": f"B#{scope}"}, "sk": {"S": reservation.period}},
                "UpdateExpression": "SET reserved_usd = reserved_usd - :e, spent_usd = spent_usd + :a, "
                                    "remaining_usd = remaining_usd + :back ADD version :one, overspent_usd :x",
                "ExpressionAttributeValues": {":e": _n(est), ":a": _n(actual), ":back": _n(est - actual),
                                              ":one": {"N": "1"}, ":x": _n(excess)},
            }})
        try:
            self._ddb.transact_write_items(TransactItems=actions)
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "TransactionCanceledException":
                reasons = exc.response.get("CancellationReasons", [])
                if reasons and reasons[0].get("Code") == "ConditionalCheckFailed":
                    return False
            raise
        return True

    def add_spent(self, scope: str, period: str, amount: Decimal) -> bool:
        """Count an attempt that held nothing in this budget (it didn't exist when the attempt reserved, or the
        attempt reserved in an earlier period); False if there is no such budget."""
        for _ in range(5):
            current = self._raw(scope, period)
            if current is None:
                return False
            remaining = Decimal(current["remaining_usd"]["N"])
            try:
                self._ddb.update_item(
                    TableName=self._table, Key={"pk": {"S": f"B#{scope}"}, "sk": {"S": period}},
                    UpdateExpression="SET spent_usd = spent_usd + :a, remaining_usd = remaining_usd - :a "
                                     "ADD version :one, overspent_usd :x",
                    ConditionExpression="version = :v",
                    ExpressionAttributeValues={":a": _n(amount), ":x": _n(unheld_excess(amount, remaining)),
                                               ":one": {"N": "1"}, ":v": current["version"]},
                )
            except ClientError as exc:
                if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
                    continue  # a reservation or settle moved it meanwhile: read it again
                raise
            return True
        raise StoreUnavailable(f"budget {scope} kept changing while counting a spend; the daily check will see it")

    def stale_reservations(self, created_before: datetime, page_size: int | None = None) -> list[Reservation]:
        """Holds still `reserved` that were made before `created_before`: a Query of the `by_state` index, every
        page (a Scan of the whole table read every reservation ever settled, and only its first megabyte).
        `page_size`: items a page (DynamoDB's 1 MB when None)."""
        ids: list[str] = []
        query: dict[str, Any] = {
            "TableName": self._table, "IndexName": "by_state",
            "KeyConditionExpression": "#s = :reserved AND created_at < :t",
            "ExpressionAttributeNames": {"#s": "state"},
            "ExpressionAttributeValues": {":reserved": {"S": "reserved"}, ":t": {"S": iso(created_before)}},
            **({"Limit": page_size} if page_size else {})}
        while True:
            page = self._ddb.query(**query)
            ids += [item["pk"]["S"][2:] for item in page.get("Items", [])]
            if "LastEvaluatedKey" not in page:
                break
            query["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        # The index is eventually consistent: each hold is read again, and one settled meanwhile is left out.
        return [r for r in map(self.reservation, ids) if r is not None and r.state == "reserved"]


def over_limit(limit: Decimal, spent: Decimal, reserved: Decimal, overspent: Decimal) -> Decimal:
    """`overspent_usd` after a limit is set: never less than what spent and reserved stand above the new limit, so
    spent + reserved ≤ limit + overspent holds whatever the limit is moved to."""
    return max(overspent, spent + reserved - limit, Decimal(0))


def unheld_excess(amount: Decimal, remaining: Decimal) -> Decimal:
    """What a spend that held nothing adds to `overspent_usd`: the part of it the budget had no room left for."""
    return max(Decimal(0), amount - max(remaining, Decimal(0)))


def _budget(item: dict[str, Any]) -> Budget:
    return Budget(
        scope=item["scope"]["S"], period=item["sk"]["S"], limit_usd=money(item["limit_usd"]["N"]),
        spent_usd=money(item["spent_usd"]["N"]), reserved_usd=money(item["reserved_usd"]["N"]),
        remaining_usd=money(item["remaining_usd"]["N"]),
        thresholds=[float(t["N"]) for t in item.get("thresholds", {}).get("L", [])],
        spend_mode=SpendMode(item.get("spend_mode", {}).get("S", "normal")),
        spend_mode_changed_by=item.get("mode_by", {}).get("S"),
        spend_mode_changed_at=datetime.fromisoformat(item["mode_at"]["S"].replace("Z", "+00:00"))
        if "mode_at" in item else None,
        overspent_usd=money(item.get("overspent_usd", {}).get("N", "0")),
    )
