"""`hvr dev --data-dir`: what the emulated account holds, saved to a folder and put back at the next start.

moto 5.x keeps everything in memory and has no persistence of its own (its recorder replays the raw requests,
receives and deletes included, whose receipt handles a new server can't honour). So the stack saves what the
template created, by logical id: every table's items, every bucket's objects (files named by their content's hash,
so an output already saved is not written again), and every queue's messages with the time each becomes visible,
delayed and in-flight ones included. They go back through the AWS APIs after provisioning, before anything runs:
a message's receive count starts again from zero, and objects are restored with the bucket's notifications off, so
a restored campaign file is not ingested twice.

`snapshot.json` is replaced whole (written beside, then renamed), so a crash mid-save leaves the previous one.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hvr.local.moto_server import LockedMotoServer
from hvr.local.provision import ACCOUNT_ID, REGION, Stack

SNAPSHOT = "snapshot.json"
BLOBS = "blobs"
FORMAT = 1
MAX_DELAY_S = 900  # SQS's longest DelaySeconds; a message due later comes back after it (and waits again)
BATCH = 25  # BatchWriteItem's limit


class UnreadableSnapshot(ValueError):
    """A saved state this code can't put back: another format, or resources the template no longer has."""


@dataclass
class Restored:
    items: int = 0
    objects: int = 0
    messages: int = 0

    def __str__(self) -> str:
        return f"{self.items} items, {self.objects} objects, {self.messages} messages"


class Snapshots:
    """Saves to and restores from `folder` (`snapshot.json` and `blobs/`)."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self._last_text: str | None = None  # what was last written: an unchanged state is not written again
        self._etags: dict[tuple[str, str], tuple[str, dict[str, Any]]] = {}  # (bucket, key) → (etag, saved entry)
        self._saving = threading.Lock()  # the save at stop may meet a periodic one that outlived its thread's join

    @property
    def path(self) -> Path:
        return self.folder / SNAPSHOT

    def exists(self) -> bool:
        return self.path.is_file()

    def save(self, stack: Stack, clients: dict[str, Any], moto: LockedMotoServer) -> None:
        with self._saving:
            self._save(stack, clients, moto)

    def _save(self, stack: Stack, clients: dict[str, Any], moto: LockedMotoServer) -> None:
        buckets = {logical: self._save_objects(clients["s3"], logical, name)
                   for logical, name in sorted(stack.bucket_names.items())}
        state = {
            "format": FORMAT,
            "tables": {logical: _scan(clients["dynamodb"], table) for logical, table in stack.table_names.items()},
            "buckets": buckets,
            "queues": {logical: [vars(m) for m in moto.queue_messages(ACCOUNT_ID, REGION, stack.names[logical])]
                       for logical in sorted(stack.queue_urls)},
        }
        text = json.dumps(state, sort_keys=True)
        if text == self._last_text:
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        partial = self.path.with_suffix(".json.partial")
        partial.write_text(text, encoding="utf-8")
        os.replace(partial, self.path)
        self._last_text = text
        kept = {entry["blob"] for objects in buckets.values() for entry in objects}
        for blob in (self.folder / BLOBS).glob("*"):
            if blob.name not in kept:
                blob.unlink()

    def _save_objects(self, s3: Any, logical: str, bucket: str) -> list[dict[str, Any]]:
        saved = []
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
            for listed in page.get("Contents", []):
                key, etag = listed["Key"], listed["ETag"]
                known = self._etags.get((logical, key))
                if known is None or known[0] != etag:
                    got = s3.get_object(Bucket=bucket, Key=key)
                    body = got["Body"].read()
                    blob = hashlib.sha256(body).hexdigest()
                    path = self.folder / BLOBS / blob
                    if not path.exists():
                        path.parent.mkdir(parents=True, exist_ok=True)
                        path.write_bytes(body)
                    known = (etag, {"key": key, "blob": blob, "content_type": got.get("ContentType", ""),
                                    "metadata": got.get("Metadata", {})})
                    self._etags[(logical, key)] = known
                saved.append(known[1])
        return saved

    def restore(self, stack: Stack, clients: dict[str, Any]) -> Restored:
        """Put the saved state into the freshly provisioned `stack`; UnreadableSnapshot if it can't be."""
        text = self.path.read_text(encoding="utf-8")
        try:
            state = json.loads(text)
        except json.JSONDecodeError as exc:
            raise UnreadableSnapshot(f"{self.path}: {exc}") from exc
        if not isinstance(state, dict) or state.get("format") != FORMAT:
            raise UnreadableSnapshot(f"{self.path}: not a snapshot of format {FORMAT}")
        unknown = (set(state["tables"]) - set(stack.table_names)) | (set(state["buckets"]) - set(stack.bucket_names)) \
            | (set(state["queues"]) - set(stack.queue_urls))
        if unknown:
            raise UnreadableSnapshot(f"{self.path}: resources the template no longer has: {', '.join(sorted(unknown))}")
        done = Restored()
        for logical, items in state["tables"].items():
            done.items += _write_items(clients["dynamodb"], stack.table_names[logical], items)
        for logical, objects in state["buckets"].items():
            done.objects += self._restore_objects(clients["s3"], stack.bucket_names[logical], logical, objects)
        now = time.time()
        for logical, messages in state["queues"].items():
            for message in messages:
                delay = min(MAX_DELAY_S, max(0, math.ceil(message["visible_at"] - now)))
                clients["sqs"].send_message(QueueUrl=stack.queue_urls[logical], MessageBody=message["body"],
                                            MessageAttributes=message["attributes"], DelaySeconds=delay)
                done.messages += 1
        self._last_text = text
        return done

    def _restore_objects(self, s3: Any, bucket: str, logical: str, objects: list[dict[str, Any]]) -> int:
        notifications = s3.get_bucket_notification_configuration(Bucket=bucket)
        notifications.pop("ResponseMetadata", None)
        s3.put_bucket_notification_configuration(Bucket=bucket, NotificationConfiguration={})
        try:
            for entry in objects:
                body = (self.folder / BLOBS / entry["blob"]).read_bytes()
                put = s3.put_object(Bucket=bucket, Key=entry["key"], Body=body, Metadata=entry["metadata"],
                                    **({"ContentType": entry["content_type"]} if entry["content_type"] else {}))
                self._etags[(logical, entry["key"])] = (put["ETag"], entry)
        finally:
            s3.put_bucket_notification_configuration(Bucket=bucket, NotificationConfiguration=notifications)
        return len(objects)


def _scan(ddb: Any, table: str) -> list[dict[str, Any]]:
    """Every item, as the low-level API gives it. (No table here has binary attributes, which JSON can't hold.)"""
    items: list[dict[str, Any]] = []
    for page in ddb.get_paginator("scan").paginate(TableName=table, ConsistentRead=True):
        items.extend(page.get("Items", []))
    return sorted(items, key=lambda item: json.dumps(item, sort_keys=True))


def _write_items(ddb: Any, table: str, items: list[dict[str, Any]]) -> int:
    for start in range(0, len(items), BATCH):
        requests = {table: [{"PutRequest": {"Item": item}} for item in items[start:start + BATCH]]}
        while requests:
            requests = ddb.batch_write_item(RequestItems=requests).get("UnprocessedItems") or {}
    return len(items)
