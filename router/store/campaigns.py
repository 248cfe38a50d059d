"""Campaigns: records in the ledger table, manifests and plans in S3, step messages on the campaigns queue.

Ledger table items under `pk = C#<tenant>#<campaign id>` (tenant-scoped, like jobs):
- `sk = META`: the campaign (one JSON document) with `step` and `next_sent` beside it for conditions;
- `sk = ITEM#<item id>`: one per item, the first line with that id wins (a repeat collapses into it); its
  validated request and what the planner needs;
- `sk = INV#<line>#<n>`: one per field error of an invalid line.
The id is derived from (tenant, name), so the META item is the (tenant, name) → campaign mapping.

S3: `campaign-inputs/<tenant>/<id>/<digest>.jsonl` is the immutable copy the lines are read from (inline items are
written there, dropped or posted manifests copied there), `campaign-work/<tenant>/<id>/plan.json` the stored plan.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from router.models.campaign import Campaign, InvalidItem
from router.models.campaign_plan import PlanInput, StoredPlan
from router.models.campaign_queue import CampaignMessage
from router.models.manifest import MAX_LINE_BYTES
from router.models.request import VideoRequest
from router.store.aws import put_new
from router.store.errors import NotFound, aws_errors
from router.store.messages import WorkerMessage

READ_CHUNK = 1 << 16


def _pk(tenant: str, campaign: str) -> dict[str, str]:
    return {"S": f"C#{tenant}#{campaign}"}


def _conditional_failed(exc: ClientError) -> bool:
    return exc.response["Error"]["Code"] == "ConditionalCheckFailedException"


@dataclass(frozen=True)
class StoredCampaign:
    campaign: Campaign
    next_sent: bool  # whether the message for the stored step was sent (a crash in between is repaired)


@dataclass(frozen=True)
class ItemRow:
    request: VideoRequest
    inputs: PlanInput


@aws_errors
class CampaignsRepository:
    def __init__(self, dynamodb: Any, table: str) -> None:
        self._ddb = dynamodb
        self._table = table

    # --- the campaign ------------------------------------------------------------------------------------------

    def find(self, tenant: str, campaign_id: str) -> StoredCampaign | None:
        item = self._ddb.get_item(TableName=self._table, ConsistentRead=True,
                                  Key={"pk": _pk(tenant, campaign_id), "sk": {"S": "META"}}).get("Item")
        if item is None:
            return None
        return StoredCampaign(Campaign.model_validate_json(item["doc"]["S"]), item["next_sent"]["BOOL"])

    def exists(self, tenant: str, campaign_id: str) -> bool:
        """Whether the tenant has this campaign: the key holds the tenant, so another tenant's id is never found."""
        item = self._ddb.get_item(TableName=self._table, ConsistentRead=True, ProjectionExpression="pk",
                                  Key={"pk": _pk(tenant, campaign_id), "sk": {"S": "META"}}).get("Item")
        return item is not None

    def get(self, tenant: str, campaign_id: str) -> Campaign:
        found = self.find(tenant, campaign_id)
        if found is None:
            raise NotFound(f"campaign {campaign_id} not found")
        return found.campaign

    def create(self, campaign: Campaign) -> bool:
        """False if the campaign (tenant, name) already exists."""
        return put_new(self._ddb, self._table, self._item(campaign), "pk")

    def advance(self, campaign: Campaign, expected_step: int) -> bool:
        """Store the campaign at its (new) step, only if the stored step is still `expected_step`; False means
        another copy of the same message got there first."""
        try:
            self._ddb.put_item(TableName=self._table, Item=self._item(campaign), ConditionExpression="#s = :s",
                               ExpressionAttributeNames={"#s": "step"},
                               ExpressionAttributeValues={":s": {"N": str(expected_step)}})
        except ClientError as exc:
            if _conditional_failed(exc):
                return False
            raise
        return True

    def mark_sent(self, tenant: str, campaign_id: str, step: int) -> None:
        try:
            self._ddb.update_item(TableName=self._table, Key={"pk": _pk(tenant, campaign_id), "sk": {"S": "META"}},
                                  UpdateExpression="SET next_sent = :t", ConditionExpression="#s = :s",
                                  ExpressionAttributeNames={"#s": "step"},
                                  ExpressionAttributeValues={":t": {"BOOL": True}, ":s": {"N": str(step)}})
        except ClientError as exc:
            if not _conditional_failed(exc):  # the chain moved on already: nothing to mark
                raise

    def _item(self, campaign: Campaign) -> dict[str, Any]:
        return {"pk": _pk(campaign.tenant, campaign.id), "sk": {"S": "META"},
                "doc": {"S": campaign.model_dump_json()}, "step": {"N": str(campaign.step)},
                "next_sent": {"BOOL": False}}

    # --- items -------------------------------------------------------------------------------------------------

    def put_items(self, tenant: str, campaign_id: str, rows: Sequence[tuple[VideoRequest, PlanInput]]) -> set[str]:
        """Record a chunk's items; returns the item ids whose row is now their line's. An item id an earlier line
        already holds is left alone: the repeat collapses into the first. Re-running the same lines rewrites their
        own rows and returns the same answer, so counts don't depend on re-runs.

        Read-then-batch-write is safe here because a campaign's steps run one after the other: only copies of the
        same step can overlap, and those write the same rows."""
        mine = own_rows(rows, lambda item_ids: self._lines(tenant, campaign_id, item_ids))
        writes = [{"PutRequest": {"Item": {
            "pk": _pk(tenant, campaign_id), "sk": {"S": f"ITEM#{item_id}"}, "line": {"N": str(inputs.line)},
            "request": {"S": request.model_dump_json()}, "inputs": {"S": inputs.model_dump_json()}}}}
            for item_id, (request, inputs) in mine.items()]
        self._batch_write(writes)
        return set(mine)

    def _lines(self, tenant: str, campaign_id: str, item_ids: list[str]) -> dict[str, int]:
        """The line that holds each of these item ids, where one does."""
        found: dict[str, int] = {}
        for start in range(0, len(item_ids), 100):  # BatchGetItem's limit
            keys = [{"pk": _pk(tenant, campaign_id), "sk": {"S": f"ITEM#{item_id}"}}
                    for item_id in item_ids[start:start + 100]]
            request: dict[str, Any] = {self._table: {"Keys": keys, "ConsistentRead": True,
                                                     "ProjectionExpression": "sk, line"}}
            while request:
                page = self._ddb.batch_get_item(RequestItems=request)
                for item in page["Responses"].get(self._table, []):
                    found[item["sk"]["S"].removeprefix("ITEM#")] = int(item["line"]["N"])
                request = page.get("UnprocessedKeys") or {}
        return found

    def _batch_write(self, writes: list[dict[str, Any]]) -> None:
        for start in range(0, len(writes), 25):  # BatchWriteItem's limit
            request: dict[str, Any] = {self._table: writes[start:start + 25]}
            while request:
                request = self._ddb.batch_write_item(RequestItems=request).get("UnprocessedItems") or {}

    def plan_inputs(self, tenant: str, campaign_id: str) -> Iterator[PlanInput]:
        """Every item's planner inputs (not the requests: the plan step reads only what it needs)."""
        args: dict[str, Any] = {
            "TableName": self._table, "ConsistentRead": True, "ProjectionExpression": "inputs",
            "KeyConditionExpression": "pk = :pk AND begins_with(sk, :item)",
            "ExpressionAttributeValues": {":pk": _pk(tenant, campaign_id), ":item": {"S": "ITEM#"}},
        }
        while True:
            page = self._ddb.query(**args)
            for item in page.get("Items", []):
                yield PlanInput.model_validate_json(item["inputs"]["S"])
            if "LastEvaluatedKey" not in page:
                return
            args["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def items(self, tenant: str, campaign_id: str, item_ids: Sequence[str]) -> dict[str, ItemRow]:
        rows: dict[str, ItemRow] = {}
        unique = list(dict.fromkeys(item_ids))
        for start in range(0, len(unique), 100):  # BatchGetItem's limit
            keys = [{"pk": _pk(tenant, campaign_id), "sk": {"S": f"ITEM#{item_id}"}}
                    for item_id in unique[start:start + 100]]
            request: dict[str, Any] = {self._table: {"Keys": keys, "ConsistentRead": True}}
            while request:
                page = self._ddb.batch_get_item(RequestItems=request)
                for item in page["Responses"].get(self._table, []):
                    inputs = PlanInput.model_validate_json(item["inputs"]["S"])
                    rows[inputs.item_id] = ItemRow(VideoRequest.model_validate_json(item["request"]["S"]), inputs)
                request = page.get("UnprocessedKeys") or {}
        return rows

    # --- invalid lines -----------------------------------------------------------------------------------------

    def put_invalid(self, tenant: str, campaign_id: str, invalid: Sequence[InvalidItem]) -> None:
        """Keyed by line and position: writing a re-run chunk's errors again changes nothing."""
        self._batch_write([{"PutRequest": {"Item": {"pk": _pk(tenant, campaign_id), "sk": {"S": sk},
                                                    "doc": {"S": entry.model_dump_json()}}}}
                           for sk, entry in invalid_keys(invalid).items()])

    def invalid(self, tenant: str, campaign_id: str, limit: int = 1000) -> list[InvalidItem]:
        page = self._ddb.query(
            TableName=self._table, ConsistentRead=True, Limit=limit,
            KeyConditionExpression="pk = :pk AND begins_with(sk, :inv)",
            ExpressionAttributeValues={":pk": _pk(tenant, campaign_id), ":inv": {"S": "INV#"}})
        return [InvalidItem.model_validate_json(item["doc"]["S"]) for item in page.get("Items", [])]


def own_rows(rows: Sequence[tuple[VideoRequest, PlanInput]],
             lines_held: Callable[[list[str]], dict[str, int]]) -> dict[str, tuple[VideoRequest, PlanInput]]:
    """The rows of a chunk that are their item id's: the first line with each id, unless `lines_held` (the line
    already holding each id, where one does) says an earlier line has it."""
    first: dict[str, tuple[VideoRequest, PlanInput]] = {}
    for request, inputs in rows:
        first.setdefault(inputs.item_id, (request, inputs))
    held = lines_held(list(first))
    return {item_id: row for item_id, row in first.items() if held.get(item_id, row[1].line) == row[1].line}


def invalid_keys(invalid: Sequence[InvalidItem]) -> dict[str, InvalidItem]:
    """Each field error under its sort key: its line, then its position among that line's errors."""
    numbered: dict[str, InvalidItem] = {}
    per_line: dict[int, int] = {}
    for entry in invalid:
        n = per_line.get(entry.line, 0)
        per_line[entry.line] = n + 1
        numbered[f"INV#{entry.line:09d}#{n:03d}"] = entry
    return numbered


@aws_errors
class ManifestStore:
    """Manifests are streamed by byte range (never read whole) from an immutable copy."""

    def __init__(self, s3: Any, bucket: str) -> None:
        self._s3 = s3
        self.bucket = bucket

    def put(self, key: str, body: bytes, content_type: str = "application/x-ndjson") -> None:
        self._s3.put_object(Bucket=self.bucket, Key=key, Body=body, ContentType=content_type)

    def etag(self, key: str) -> str | None:
        try:
            return str(self._s3.head_object(Bucket=self.bucket, Key=key)["ETag"]).strip('"')
        except ClientError as exc:
            if exc.response["Error"]["Code"] in {"404", "NoSuchKey", "NotFound"}:
                return None
            raise

    def snapshot(self, source_key: str, etag: str, dest_key: str) -> bool:
        """Copy the version of `source_key` with this ETag (server side); False if that version is gone."""
        try:
            self._s3.copy_object(Bucket=self.bucket, Key=dest_key, CopySourceIfMatch=f'"{etag}"',
                                 CopySource={"Bucket": self.bucket, "Key": source_key})
        except ClientError as exc:
            if exc.response["Error"]["Code"] in {"PreconditionFailed", "412", "NoSuchKey", "404"}:
                return False
            raise
        return True

    def lines(self, key: str, offset: int) -> Iterator[tuple[int, bytes]]:
        """(byte offset after the line, the line without its newline) from `offset` on. A line longer than
        MAX_LINE_BYTES comes back cut to MAX_LINE_BYTES + 1 bytes (so it can be refused) and is never buffered."""
        try:
            body = self._s3.get_object(Bucket=self.bucket, Key=key, Range=f"bytes={offset}-")["Body"]
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "InvalidRange":  # nothing past the offset: end of the manifest
                return
            raise
        position, pending, skipping = offset, b"", False
        try:
            for chunk in body.iter_chunks(READ_CHUNK):
                start = 0
                while True:
                    newline = chunk.find(b"\n", start)
                    if newline < 0:
                        break
                    part = chunk[start:newline]
                    position += newline - start + 1
                    line = pending if skipping else pending + part
                    yield position, line[:MAX_LINE_BYTES + 1]
                    pending, skipping, start = b"", False, newline + 1
                rest = chunk[start:]
                position += len(rest)
                if not skipping:
                    pending += rest
                    if len(pending) > MAX_LINE_BYTES:
                        pending, skipping = pending[:MAX_LINE_BYTES + 1], True
            if pending or skipping:
                yield position, pending
        finally:
            body.close()

    def get_plan(self, key: str) -> StoredPlan:
        return StoredPlan.model_validate_json(self._s3.get_object(Bucket=self.bucket, Key=key)["Body"].read())

    def put_plan(self, key: str, plan: StoredPlan) -> None:
        self.put(key, plan.model_dump_json().encode(), content_type="application/json")


@aws_errors
class CampaignQueue:
    def __init__(self, sqs: Any, queue_url: str) -> None:
        self._sqs = sqs
        self._url = queue_url

    def send(self, message: CampaignMessage, delay_s: int = 0) -> None:
        self._sqs.send_message(QueueUrl=self._url, MessageBody=message.model_dump_json(),
                               DelaySeconds=max(0, min(900, delay_s)))


@aws_errors
class RouteBatches:
    """`route` messages to the jobs queue ten at a time. SendMessageBatch can fail per entry while the call itself
    succeeds: failed entries are retried, and an entry still failing raises (the chunk is redone; jobs that exist
    are skipped and the sweeper re-queues any job left `accepted`)."""

    def __init__(self, sqs: Any, queue_url: str, tries: int = 3) -> None:
        self._sqs = sqs
        self._url = queue_url
        self._tries = tries

    def send(self, messages: Sequence[WorkerMessage]) -> None:
        for start in range(0, len(messages), 10):
            entries = {str(i): m for i, m in enumerate(messages[start:start + 10])}
            for _ in range(self._tries):
                answer = self._sqs.send_message_batch(QueueUrl=self._url, Entries=[
                    {"Id": entry_id, "MessageBody": m.model_dump_json(),
                     "MessageAttributes": {"kind": {"DataType": "String", "StringValue": m.kind.value}}}
                    for entry_id, m in entries.items()])
                entries = {f["Id"]: entries[f["Id"]] for f in answer.get("Failed", [])}
                if not entries:
                    break
            if entries:
                raise RuntimeError(f"SendMessageBatch kept failing for {len(entries)} route messages")


def plan_key(tenant: str, campaign_id: str) -> str:
    return f"campaign-work/{tenant}/{campaign_id}/plan.json"


def input_key(tenant: str, campaign_id: str, digest: str) -> str:
    return f"campaign-inputs/{tenant}/{campaign_id}/{digest}.jsonl"


def dumps_line(item: dict[str, Any]) -> bytes:
    return json.dumps(item, separators=(",", ":"), default=str).encode() + b"\n"
