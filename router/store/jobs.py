"""Jobs on DynamoDB: one item per job, every change a conditional put on `version`.

Key: `pk = T#<tenant>#J#<job id>` (tenant-scoped: a job can't be read without its tenant). The whole job is kept
as one JSON document next to the few attributes the indexes need; the GSIs list a tenant's jobs newest first,
overall (`gsi1`), by status (`gsi2`) and by campaign (`gsi3`, sparse). The sparse `open` index holds the jobs
the sweeper must look at — not yet terminal, or terminal but not yet announced or with an attempt still to
settle — spread over a few shards so one partition doesn't take every write.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from botocore.exceptions import ClientError

from router.models.common import iso, utcnow
from router.models.job import Job, JobStatus, can_transition
from router.store.errors import BadCursor, IllegalTransition, NotFound, StaleWrite, aws_errors, cursor_key

OPEN_SHARDS = 8


def job_key(tenant: str, job_id: str) -> dict[str, Any]:
    return {"pk": {"S": f"T#{tenant}#J#{job_id}"}}


@aws_errors
class JobsRepository:
    def __init__(self, dynamodb: Any, table: str, clock: Callable[[], datetime] = utcnow) -> None:
        self._ddb = dynamodb
        self._table = table
        self._clock = clock

    def create(self, job: Job) -> None:
        """Write a new job; raises StaleWrite if the id exists (ids are unique, so that is a replay)."""
        self._put(job, condition="attribute_not_exists(pk)", values={})

    def get(self, tenant: str, job_id: str) -> Job:
        item = self._ddb.get_item(TableName=self._table, Key=job_key(tenant, job_id), ConsistentRead=True)
        if "Item" not in item:
            raise NotFound(f"job {job_id} not found")
        return _from_item(item["Item"])

    def save(self, job: Job, new_status: JobStatus | None = None) -> Job:
        """Persist `job` (already changed in memory from the version it was read at) as the next version.

        The write succeeds only if the stored version is still the one we read and the status change is legal,
        so duplicate deliveries and late callbacks can't move a job backwards or finish it twice.
        """
        updated = next_version(job, new_status, self._clock())
        self._put(updated, condition="#v = :expected", values={":expected": {"N": str(job.version)}})
        return updated

    def update(self, tenant: str, job_id: str, change: Callable[[Job], JobStatus | None], tries: int = 5) -> Job:
        """Read-modify-write with retries on lost races. `change` mutates the job and returns the new status,
        or None to leave the job as it is (then nothing is written)."""
        return update_retrying(job_id, lambda: self.get(tenant, job_id), self.save, change, tries)

    def amend(self, tenant: str, job_id: str, change: Callable[[Job], bool], tries: int = 5) -> Job:
        """Rewrite a terminal job, its status unchanged: only to close an attempt it left open to be settled when
        the provider answers (router.services.settle). `change` returns False to write nothing."""

        def write(updated: Job, expected: int) -> None:
            self._put(updated, condition="#v = :expected", values={":expected": {"N": str(expected)}})

        return amend_retrying(job_id, lambda: self.get(tenant, job_id), write, change, tries, self._clock)

    def mark_notified(self, job: Job) -> None:
        """Clear the outbox flag of an announced terminal job (same version: nothing about the job changed)."""
        if job.notified:
            return
        self._put(job.model_copy(update={"notified": True}), condition="#v = :expected",
                  values={":expected": {"N": str(job.version)}})

    def open_jobs(self, updated_before: datetime) -> Iterator[Job]:
        """Jobs still needing attention whose last change is older than `updated_before`."""
        for shard in range(OPEN_SHARDS):
            args: dict[str, Any] = {
                "TableName": self._table,
                "IndexName": "open",
                "KeyConditionExpression": "open_pk = :k AND open_sk < :t",
                "ExpressionAttributeValues": {":k": {"S": f"OPEN#{shard}"}, ":t": {"S": iso(updated_before)}},
            }
            while True:
                page = self._ddb.query(**args)
                for item in page.get("Items", []):
                    yield _from_item(item)
                if "LastEvaluatedKey" not in page:
                    break
                args["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def list(
        self,
        tenant: str,
        *,
        status: JobStatus | None = None,
        campaign_id: str | None = None,
        where: JobFilter | None = None,
        limit: int = 50,
        cursor: dict[str, Any] | None = None,
    ) -> tuple[list[Job], dict[str, Any] | None]:
        index, key = listing_index(tenant, status, campaign_id)
        args: dict[str, Any] = {
            "TableName": self._table,
            "IndexName": index,
            "KeyConditionExpression": f"{index}pk = :k",
            "ExpressionAttributeValues": {":k": {"S": key}},
            "ScanIndexForward": False,
        }
        where = where or JobFilter()
        # The sort key starts with the creation time, so a window of days is a key range, not a filter.
        # DynamoDB takes no empty string for a key, so an open end is a one-sided condition.
        low, high = where.first_day, f"{where.last_day}~" if where.last_day else None  # "~" sorts after any time
        if low and high:
            args["KeyConditionExpression"] += f" AND {index}sk BETWEEN :low AND :high"
        elif low or high:
            args["KeyConditionExpression"] += f" AND {index}sk {'>= :low' if low else '<= :high'}"
        args["ExpressionAttributeValues"] |= {name: {"S": value} for name, value in ((":low", low), (":high", high))
                                              if value}
        if campaign_id and status:
            args["FilterExpression"] = "#s = :s"
            args["ExpressionAttributeNames"] = {"#s": "status"}
            args["ExpressionAttributeValues"][":s"] = {"S": status.value}
        if cursor:
            args["ExclusiveStartKey"] = checked_cursor(cursor, index, key, tenant)
        # Where a job ran lives in its document, so those filters apply after each read; reading on with what is
        # left of `limit` keeps a page from coming back short while more matches follow, up to a bounded number
        # of reads (then the page is short and its cursor carries on).
        jobs: list[Job] = []
        last: dict[str, Any] | None = None
        for _ in range(MAX_LIST_READS):
            page = self._ddb.query(**{**args, "Limit": limit - len(jobs)})
            jobs += [job for job in map(_from_item, page.get("Items", [])) if where.matches(job)]
            last = page.get("LastEvaluatedKey")
            if last is None or len(jobs) >= limit or not where.reads_documents:
                return jobs, last
            args["ExclusiveStartKey"] = last
        return jobs, last

    def _put(self, job: Job, condition: str, values: dict[str, Any]) -> None:
        names = {"#v": "version"} if "#v" in condition else {}
        args: dict[str, Any] = {
            "TableName": self._table,
            "Item": _to_item(job),
            "ConditionExpression": condition,
            "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
        }
        if values:
            args["ExpressionAttributeValues"] = values
        if names:
            args["ExpressionAttributeNames"] = names
        try:
            self._ddb.put_item(**args)
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise
            old: dict[str, Any] | None = exc.response.get("Item")  # type: ignore[assignment]
            # A retried put whose first try landed fails its own condition: that is success, not a race.
            if old is not None and old.get("doc", {}).get("S") == _to_item(job)["doc"]["S"]:
                return
            raise StaleWrite(f"job {job.id}: version {job.version - 1} is no longer current") from exc


def update_retrying(job_id: str, read: Callable[[], Job], save: Callable[[Job, JobStatus], Job],
                    change: Callable[[Job], JobStatus | None], tries: int) -> Job:
    """JobStore.update on any store, given how it reads the job and saves a version of it."""
    for _ in range(tries):
        job = read()
        if job.status.terminal:
            return job
        draft = job.model_copy(deep=True)
        target = change(draft)
        if target is None:
            return job
        try:
            return save(draft, target)
        except StaleWrite:
            continue
    raise StaleWrite(f"job {job_id}: gave up after {tries} lost races")


def amend_retrying(job_id: str, read: Callable[[], Job], write: Callable[[Job, int], None],
                   change: Callable[[Job], bool], tries: int, clock: Callable[[], datetime]) -> Job:
    """JobStore.amend on any store, given how it reads the job and writes it only over the version given
    (raising StaleWrite when that version is gone), and the clock that stamps the new version."""
    for _ in range(tries):
        job = read()
        if not job.status.terminal:
            raise IllegalTransition(f"job {job_id} is {job.status.value}: only a terminal job is amended")
        draft = job.model_copy(deep=True)
        if not change(draft):
            return job
        updated = draft.model_copy(update={"version": job.version + 1, "updated_at": clock()})
        try:
            write(updated, job.version)
        except StaleWrite:
            continue
        return updated
    raise StaleWrite(f"job {job_id}: gave up after {tries} lost races")


def next_version(job: Job, new_status: JobStatus | None, now: datetime) -> Job:
    """`job` as the version after the one it was read at (changed at `now`), moved to `new_status` (or kept at its
    own status), or IllegalTransition when the lifecycle forbids that move or the job is terminal already."""
    target = new_status or job.status
    stored_status = job.status
    if target != stored_status and not can_transition(stored_status, target):
        raise IllegalTransition(f"job {job.id}: {stored_status.value} -> {target.value} is not allowed")
    if stored_status.terminal:
        raise IllegalTransition(f"job {job.id} is {stored_status.value}; terminal jobs do not change")
    return job.model_copy(update={"status": target, "version": job.version + 1, "updated_at": now})


MAX_LIST_READS = 20


@dataclass(frozen=True, slots=True)
class JobFilter:
    """What a listing narrows to beyond its index: days of creation (UTC, inclusive, YYYY-MM-DD), and the provider
    or offer a job was routed to or attempted on."""

    first_day: str | None = None
    last_day: str | None = None
    provider: str | None = None
    offer: str | None = None

    @property
    def reads_documents(self) -> bool:
        return bool(self.provider or self.offer)

    def matches(self, job: Job) -> bool:
        chosen = job.routing.chosen if job.routing else None
        places = [(a.provider.value, a.offer) for a in job.attempts]
        places += [(chosen.provider.value, chosen.offer)] if chosen else []
        return ((self.provider is None or any(provider == self.provider for provider, _ in places))
                and (self.offer is None or any(offer == self.offer for _, offer in places)))


def listing_index(tenant: str, status: JobStatus | None, campaign_id: str | None) -> tuple[str, str]:
    """The index a listing reads and its partition: a campaign's jobs (filtered by status after the read, when both
    are given), a status's, or all of the tenant's."""
    if campaign_id:
        return "gsi3", f"T#{tenant}#C#{campaign_id}"
    if status:
        return "gsi2", f"T#{tenant}#S#{status.value}"
    return "gsi1", f"T#{tenant}"


INDEX_ATTRIBUTES = {"gsi1": ("gsi1pk", "gsi1sk"), "gsi2": ("gsi2pk", "gsi2sk"), "gsi3": ("gsi3pk", "gsi3sk"),
                    "open": ("open_pk", "open_sk")}


def index_keys(job: Job) -> dict[str, tuple[str, str]]:
    """The (partition, sort) key of the job in each index that holds it: listings sort newest first on creation
    time and id; the sparse `open` index holds the job while the sweeper still has something to do with it."""
    sort = f"{iso(job.created_at)}#{job.id}"
    keys = {"gsi1": (f"T#{job.tenant}", sort), "gsi2": (f"T#{job.tenant}#S#{job.status.value}", sort)}
    unsettled = any(a.awaits_settling for a in job.attempts)
    if not job.status.terminal or not job.notified or unsettled:
        shard = int(hashlib.sha256(job.id.encode()).hexdigest(), 16) % OPEN_SHARDS
        keys["open"] = (f"OPEN#{shard}", iso(job.updated_at))
    if job.request.campaign_id:
        keys["gsi3"] = (f"T#{job.tenant}#C#{job.request.campaign_id}", sort)
    return keys


def job_document(job: Job) -> str:
    """The whole job as stored: canonical JSON, so two writes of the same job compare equal."""
    return json.dumps(job.model_dump(mode="json"), separators=(",", ":"), sort_keys=True)


def checked_cursor(cursor: dict[str, Any], index: str, key: str, tenant: str) -> dict[str, Any]:
    """A cursor must be a LastEvaluatedKey of this very listing. Anything else would reach botocore (which raises
    ParamValidationError on a wrong shape) or DynamoDB (ValidationException), or start inside another tenant's
    jobs; so it is refused here, as BadCursor."""
    if set(cursor) != {"pk", f"{index}pk", f"{index}sk"} or cursor_key(cursor, f"{index}sk") is None:
        raise BadCursor("not a cursor of this listing")
    if cursor_key(cursor, f"{index}pk") != key or not (cursor_key(cursor, "pk") or "").startswith(f"T#{tenant}#J#"):
        raise BadCursor("not a cursor of this listing")
    return cursor


def _to_item(job: Job) -> dict[str, Any]:
    item: dict[str, Any] = {
        **job_key(job.tenant, job.id),
        "id": {"S": job.id},
        "tenant": {"S": job.tenant},
        "status": {"S": job.status.value},
        "version": {"N": str(job.version)},
        "created_at": {"S": iso(job.created_at)},
        "updated_at": {"S": iso(job.updated_at)},
        "doc": {"S": job_document(job)},
    }
    for index, (partition, sort) in index_keys(job).items():
        partition_name, sort_name = INDEX_ATTRIBUTES[index]
        item[partition_name], item[sort_name] = {"S": partition}, {"S": sort}
    return item


def _from_item(item: dict[str, Any]) -> Job:
    return Job.model_validate_json(item["doc"]["S"])
