"""Failed API-key presentations per source IP, counted in fixed windows in the keys table (issue 19).

HTTP APIs have no usage plans, so the authorizer throttles guessing itself: one counter item per IP and window,
`F#<ip>#<window start>`, raised by an atomic ADD and gone by TTL (`expires_at`) once its window is over. The `F#`
prefix keeps the counters apart from the keys (`K#<sha256>`); the authorizer's IAM policy may write only those.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from router.store.errors import aws_errors

DEFAULT_MAX_FAILURES = 20
DEFAULT_WINDOW_S = 60
# TTL deletes within a day or two, not on the second: the window, not the item's presence, decides, so the item
# only has to outlive its window. The margin keeps a counter read at the window's last second from being one
# DynamoDB already dropped.
EXPIRY_MARGIN_S = 60


@dataclass(frozen=True)
class FailureLimit:
    max_failures: int = DEFAULT_MAX_FAILURES  # failures per window; the next presentation is refused unread
    window_s: int = DEFAULT_WINDOW_S

    def __post_init__(self) -> None:
        if self.max_failures < 1 or self.window_s < 1:
            raise ValueError(f"an auth failure limit needs at least 1 failure and 1 s, not {self}")

    def window_start(self, now: datetime) -> int:
        epoch = int(now.timestamp())
        return epoch - epoch % self.window_s


@aws_errors
class AuthFailures:
    def __init__(self, dynamodb: Any, table: str, limit: FailureLimit | None = None) -> None:
        self._ddb = dynamodb
        self._table = table
        self.limit = limit or FailureLimit()

    def _key(self, source_ip: str, now: datetime) -> dict[str, Any]:
        return {"pk": {"S": f"F#{source_ip}#{self.limit.window_start(now)}"}}

    def count(self, source_ip: str, now: datetime) -> int:
        """Failures from `source_ip` in the window `now` falls in."""
        item = self._ddb.get_item(TableName=self._table, Key=self._key(source_ip, now),
                                  ProjectionExpression="failures").get("Item")
        return int(item["failures"]["N"]) if item else 0

    def throttled(self, source_ip: str, now: datetime) -> bool:
        return self.count(source_ip, now) >= self.limit.max_failures

    def record(self, source_ip: str, now: datetime) -> int:
        """Count one failure; the window's count after it. Concurrent failures each count (ADD is atomic)."""
        expires_at = self.limit.window_start(now) + self.limit.window_s + EXPIRY_MARGIN_S
        answer = self._ddb.update_item(
            TableName=self._table, Key=self._key(source_ip, now),
            UpdateExpression="ADD failures :one SET expires_at = :expires_at",
            ExpressionAttributeValues={":one": {"N": "1"}, ":expires_at": {"N": str(expires_at)}},
            ReturnValues="UPDATED_NEW")
        return int(answer["Attributes"]["failures"]["N"])
