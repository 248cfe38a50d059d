"""Cost records as JSON Lines in S3, partitioned by day for Athena (`ledger/dt=YYYY-MM-DD/…`).

One object per ledger row, keyed by its attempt: writing it again rewrites the same object, so the export is
idempotent without any bookkeeping of its own.
"""

from __future__ import annotations

from typing import Any

from router.models.common import iso
from router.models.ledger import LedgerEntry
from router.store.errors import aws_errors

PREFIX = "ledger"


def export_key(entry: LedgerEntry) -> str:
    return f"{PREFIX}/dt={iso(entry.ended_at)[:10]}/{entry.tenant}/{entry.attempt_id}.jsonl"


@aws_errors
class LedgerExport:
    def __init__(self, s3: Any, bucket: str) -> None:
        self._s3 = s3
        self._bucket = bucket

    def write(self, entry: LedgerEntry) -> None:
        self._s3.put_object(Bucket=self._bucket, Key=export_key(entry), Body=(entry.model_dump_json() + "\n").encode(),
                            ContentType="application/x-ndjson", ServerSideEncryption="AES256")

    def read_day(self, day: str) -> list[LedgerEntry]:
        rows = []
        paginator = self._s3.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self._bucket, Prefix=f"{PREFIX}/dt={day}/"):
            for obj in page.get("Contents", []):
                body = self._s3.get_object(Bucket=self._bucket, Key=obj["Key"])["Body"].read().decode()
                rows += [LedgerEntry.model_validate_json(line) for line in body.splitlines() if line.strip()]
        return rows
