"""Experiments and the jobs they assigned, in the ledger table.

- A definition: `pk = EXPERIMENTS`, `sk = E#<name>`, the experiment as one JSON document beside its counters:
  `assigned` (jobs) and `committed_usd` (the p90 estimates of the renders it assigned). Every route reads the
  definitions with one query; redefining one rewrites the document and leaves the counters.
- An assigned job: `pk = EXPERIMENT#<name>`, `sk = T#<tenant>#J#<job id>`; its results read the partition.

An assignment is one transaction: its job items put only if absent, the counters moved only while the spend cap
holds what is committed. A redelivered route finds its job already assigned and is told the stored arm, so nothing
counts twice; two routes racing for the last dollars can't both get them.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from botocore.exceptions import ClientError

from router.errors import Conflict
from router.models.experiment import AssignedJob, Experiment, ExperimentState
from router.store.aws import query_all
from router.store.errors import aws_errors

PK = "EXPERIMENTS"
ASSIGNED_PREFIX = "EXPERIMENT#"


class CapReached(Conflict):
    """The experiment's spend cap can't hold another assignment's estimate."""


def _definition_key(name: str) -> dict[str, Any]:
    return {"pk": {"S": PK}, "sk": {"S": f"E#{name}"}}


def _assigned_key(name: str, tenant: str, job_id: str) -> dict[str, Any]:
    return {"pk": {"S": f"{ASSIGNED_PREFIX}{name}"}, "sk": {"S": f"T#{tenant}#J#{job_id}"}}


@aws_errors
class ExperimentsRepository:
    def __init__(self, dynamodb: Any, table: str) -> None:
        self._ddb = dynamodb
        self._table = table

    def define(self, experiment: Experiment, expected_version: int | None) -> ExperimentState:
        """Create (`expected_version` None) or replace the definition read at that version; StaleWrite-like
        Conflict when someone changed it in between."""
        condition = ("attribute_not_exists(pk)" if expected_version is None else "version = :v")
        values: dict[str, Any] = {":doc": {"S": experiment.model_dump_json()}, ":one": {"N": "1"}}
        if expected_version is not None:
            values[":v"] = {"N": str(expected_version)}
        try:
            answer = self._ddb.update_item(
                TableName=self._table, Key=_definition_key(experiment.name),
                UpdateExpression="SET doc = :doc ADD version :one", ConditionExpression=condition,
                ExpressionAttributeValues=values, ReturnValues="ALL_NEW")
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
                raise Conflict(f"experiment {experiment.name} changed meanwhile: read it and put it again") from exc
            raise
        return _state(answer["Attributes"])

    def get(self, name: str) -> ExperimentState | None:
        item = self._ddb.get_item(TableName=self._table, Key=_definition_key(name), ConsistentRead=True).get("Item")
        return _state(item) if item else None

    def all(self) -> list[ExperimentState]:
        """Every experiment, by name: one query (a deployment runs a handful)."""
        return [_state(item) for item in query_all(
            self._ddb, TableName=self._table, KeyConditionExpression="pk = :pk",
            ExpressionAttributeValues={":pk": {"S": PK}})]

    def assign(self, name: str, jobs: list[AssignedJob], cost_usd: Decimal, cap_usd: Decimal) -> AssignedJob:
        """Record the jobs (the first is the deciding one; a pair's twin is the second) and commit `cost_usd`.
        The first job's stored assignment when it was assigned already (nothing more is committed); CapReached
        when the cap can't take the cost."""
        room = cap_usd - cost_usd
        if room < 0:
            raise CapReached(f"experiment {name}: ${cost_usd} is more than its whole cap ${cap_usd}")
        puts = [{"Put": {"TableName": self._table, "Item": {**_assigned_key(name, job.tenant, job.job_id),
                                                             "doc": {"S": job.model_dump_json()}},
                         "ConditionExpression": "attribute_not_exists(pk)"}} for job in jobs]
        counters = {"Update": {
            "TableName": self._table, "Key": _definition_key(name),
            "UpdateExpression": "ADD assigned :n, committed_usd :c",
            "ConditionExpression": "attribute_exists(pk) AND (attribute_not_exists(committed_usd) "
                                   "OR committed_usd <= :room)",
            "ExpressionAttributeValues": {":n": {"N": str(len(jobs))}, ":c": {"N": str(cost_usd)},
                                          ":room": {"N": str(room)}}}}
        try:
            self._ddb.transact_write_items(TransactItems=[*puts, counters])
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "TransactionCanceledException":
                raise
            codes = [reason.get("Code") for reason in exc.response.get("CancellationReasons") or []]
            if codes and codes[0] == "ConditionalCheckFailed":
                first = jobs[0]
                found = self.assigned(name, first.tenant, first.job_id)
                if found is not None:
                    return found
            if codes and codes[-1] == "ConditionalCheckFailed":
                raise CapReached(f"experiment {name}: its ${cap_usd} cap can't hold another ${cost_usd}") from exc
            raise
        return jobs[0]

    def assigned(self, name: str, tenant: str, job_id: str) -> AssignedJob | None:
        item = self._ddb.get_item(TableName=self._table, Key=_assigned_key(name, tenant, job_id),
                                  ConsistentRead=True).get("Item")
        return AssignedJob.model_validate_json(item["doc"]["S"]) if item else None

    def jobs(self, name: str) -> list[AssignedJob]:
        """Every job the experiment assigned, by tenant and job id."""
        return [AssignedJob.model_validate_json(item["doc"]["S"]) for item in query_all(
            self._ddb, TableName=self._table, KeyConditionExpression="pk = :pk",
            ExpressionAttributeValues={":pk": {"S": f"{ASSIGNED_PREFIX}{name}"}})]


def _state(item: dict[str, Any]) -> ExperimentState:
    return ExperimentState(experiment=Experiment.model_validate_json(item["doc"]["S"]),
                           assigned=int(item.get("assigned", {}).get("N", "0")),
                           committed_usd=Decimal(item.get("committed_usd", {}).get("N", "0")),
                           version=int(item["version"]["N"]))
