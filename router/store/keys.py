"""API keys, stored only as SHA-256 hashes: a leaked table gives no usable key."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from router.errors import Conflict
from router.models.common import iso
from router.store.aws import put_new
from router.store.errors import aws_errors

KEY_PREFIX = "hvr_"


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def key_hint(key: str) -> str:
    """What an operator may see of a key to tell keys apart: an issued key's prefix and 4 of its 43 random
    characters. A key of another shape (one set by hand) gets none: its first characters may be most of it."""
    if key.startswith(KEY_PREFIX) and len(key) >= len(new_key()):
        return key[: len(KEY_PREFIX) + 4]
    return ""


def new_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


class KeyExists(Conflict):
    """The key is stored already: it is never overwritten, since it may be another tenant's."""


@dataclass(frozen=True)
class Principal:
    tenant: str
    role: str  # "member" | "admin"

    @property
    def admin(self) -> bool:
        return self.role == "admin"


@aws_errors
class KeysRepository:
    def __init__(self, dynamodb: Any, table: str) -> None:
        self._ddb = dynamodb
        self._table = table

    def put(self, key: str, principal: Principal, created_at: datetime) -> None:
        item = {"pk": {"S": f"K#{hash_key(key)}"}, "tenant": {"S": principal.tenant}, "role": {"S": principal.role},
                "hint": {"S": key_hint(key)}, "created_at": {"S": iso(created_at)}}
        if not put_new(self._ddb, self._table, item, "pk"):
            raise KeyExists("this API key exists already")

    def lookup(self, key: str) -> Principal | None:
        item = self._ddb.get_item(TableName=self._table, Key={"pk": {"S": f"K#{hash_key(key)}"}}).get("Item")
        if item is None or item.get("revoked", {}).get("BOOL"):
            return None
        return Principal(tenant=item["tenant"]["S"], role=item["role"]["S"])
