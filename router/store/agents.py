"""The fleet registry: the latest registration of each GPU agent, when it was last heard from, and whether an admin
is draining it (docs/architecture.md, "Fleet registry"). Items in AgentsTable: `pk = <agent name>`, the registration
as its JSON document, `key_id`, `registered_at`, `last_seen`, `draining`, `drained_at`.

A box's routing state is not stored but read from the clock: `state(record, now, heartbeat_s)` and
`routable(record, now, heartbeat_s)` are the pure functions the routing work uses to pick boxes (a box that missed
MISSED_HEARTBEATS heartbeats is down, whatever it said last).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from botocore.exceptions import ClientError

from router.models.agent import AgentRecord, AgentRegistration, AgentState
from router.models.common import iso
from router.store.errors import NotFound, aws_errors

MISSED_HEARTBEATS = 3


def state(record: AgentRecord, now: datetime, heartbeat_s: float) -> AgentState:
    """Down once MISSED_HEARTBEATS heartbeats are missed (drained or not: a box that is gone holds nothing);
    else draining if an admin drains it; else up."""
    if now - record.last_seen > timedelta(seconds=heartbeat_s * MISSED_HEARTBEATS):
        return AgentState.DOWN
    return AgentState.DRAINING if record.draining else AgentState.UP


def routable(record: AgentRecord, now: datetime, heartbeat_s: float) -> bool:
    """Whether a new job may be placed on this box now: heard from within the window and not draining."""
    return state(record, now, heartbeat_s) is AgentState.UP


def record_of(item: dict[str, Any]) -> AgentRecord:
    return AgentRecord(
        name=item["pk"]["S"], registration=AgentRegistration.model_validate_json(item["registration"]["S"]),
        key_id=item["key_id"]["S"], registered_at=item["registered_at"]["S"], last_seen=item["last_seen"]["S"],
        draining=item.get("draining", {}).get("BOOL", False),
        drained_at=item["drained_at"]["S"] if "drained_at" in item else None)


def unknown(name: str) -> NotFound:
    return NotFound(f"no agent {name} has registered (an agent appears with its first heartbeat)")


@aws_errors
class AgentsRepository:
    def __init__(self, dynamodb: Any, table: str) -> None:
        self._ddb = dynamodb
        self._table = table

    def heartbeat(self, name: str, registration: AgentRegistration, key_id: str, now: datetime) -> AgentRecord:
        """Keep this registration as the box's latest, heard from now; a drain stays as the admin left it."""
        found = self._ddb.update_item(
            TableName=self._table, Key={"pk": {"S": name}}, ReturnValues="ALL_NEW",
            UpdateExpression="SET registration = :r, key_id = :k, last_seen = :now, "
                             "registered_at = if_not_exists(registered_at, :now)",
            ExpressionAttributeValues={":r": {"S": registration.model_dump_json()}, ":k": {"S": key_id},
                                       ":now": {"S": iso(now)}})
        return record_of(found["Attributes"])

    def set_draining(self, name: str, draining: bool, now: datetime) -> AgentRecord:
        """Drain (or undrain) a box that has registered; NotFound for one that never has."""
        update = "SET draining = :d"
        values: dict[str, dict[str, Any]] = {":d": {"BOOL": draining}}
        if draining:
            update += ", drained_at = :now"
            values[":now"] = {"S": iso(now)}
        else:
            update += " REMOVE drained_at"
        try:
            found = self._ddb.update_item(
                TableName=self._table, Key={"pk": {"S": name}}, ReturnValues="ALL_NEW", UpdateExpression=update,
                ConditionExpression="attribute_exists(pk)", ExpressionAttributeValues=values)
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
                raise unknown(name) from exc
            raise
        return record_of(found["Attributes"])

    def get(self, name: str) -> AgentRecord | None:
        item = self._ddb.get_item(TableName=self._table, Key={"pk": {"S": name}}, ConsistentRead=True).get("Item")
        return record_of(item) if item else None

    def all(self) -> list[AgentRecord]:
        # A Scan: a studio's fleet is a handful of boxes, one item each.
        args: dict[str, Any] = {"TableName": self._table, "ConsistentRead": True}
        records: list[AgentRecord] = []
        while True:
            page = self._ddb.scan(**args)
            records += [record_of(item) for item in page.get("Items", [])]
            if "LastEvaluatedKey" not in page:
                return sorted(records, key=lambda record: record.name)
            args["ExclusiveStartKey"] = page["LastEvaluatedKey"]
