"""Per-agent HMAC keys in Secrets Manager: one secret per agent, `<prefix><agent name>` (docs/decisions.md,
2026-12-05 "fleet registry"). HMAC needs the secret itself, so it can't be stored as a hash the way API keys are;
Secrets Manager keeps it encrypted, audited and readable only by the functions the template lets read it.

A secret holds the agent's key ring as JSON: the current key, the previous one while a rotation's overlap lasts, and
when the keys were revoked. It is read on every heartbeat, never cached, so a revoke is refused at the next one.
Two admins rotating the same agent at the same moment: the later write wins and the earlier answer's key never
signs (Secrets Manager has no conditional put); rotate again.
"""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta
from typing import Any

from botocore.exceptions import ClientError
from pydantic import AwareDatetime, BaseModel

from router.errors import Unauthorized
from router.models.agent import AgentKey
from router.store.errors import aws_errors

KEY_ID_PREFIX = "ak_"


class KeyRefused(Unauthorized):
    """A heartbeat's key id can't sign for this agent now; the message says why (never anything of the secret)."""


class StoredKey(BaseModel):
    key_id: str
    secret: str
    created_at: AwareDatetime
    valid_until: AwareDatetime | None = None  # set once a rotation has made it the previous key


class KeyRing(BaseModel):
    current: StoredKey | None = None
    previous: StoredKey | None = None
    revoked_at: AwareDatetime | None = None


def new_stored_key(now: datetime) -> StoredKey:
    return StoredKey(key_id=KEY_ID_PREFIX + secrets.token_hex(8), secret=secrets.token_urlsafe(32), created_at=now)


def rotated(ring: KeyRing | None, now: datetime, overlap_s: float) -> KeyRing:
    """A new current key; the one it replaces keeps signing for `overlap_s` (the agent is given the new key in
    that time), and any older one stops at once. After a revoke there is nothing to overlap with."""
    previous = None
    if ring is not None and ring.current is not None:
        previous = ring.current.model_copy(update={"valid_until": now + timedelta(seconds=overlap_s)})
    return KeyRing(current=new_stored_key(now), previous=previous)


def revoked(ring: KeyRing, now: datetime) -> KeyRing:
    return KeyRing(revoked_at=now)


def live_key_ids(ring: KeyRing, now: datetime) -> list[str]:
    """The keys that sign now: what a revoke takes away."""
    keys = [ring.current, ring.previous]
    return [key.key_id for key in keys if key is not None and (key.valid_until is None or now < key.valid_until)]


def secret_for(ring: KeyRing | None, name: str, key_id: str, now: datetime) -> str:
    """The secret `key_id` signs with for agent `name` now, or KeyRefused saying why not."""
    if ring is None:
        raise KeyRefused(f"agent {name} has no keys: an admin creates one (POST /v1/agents/{name}/keys)")
    if ring.revoked_at is not None:
        raise KeyRefused(f"agent {name}'s keys were revoked at {ring.revoked_at.isoformat()}")
    for key in (ring.current, ring.previous):
        if key is not None and key.key_id == key_id:
            if key.valid_until is not None and now >= key.valid_until:
                raise KeyRefused(f"key {key_id} was rotated out; its overlap ended at {key.valid_until.isoformat()}")
            return key.secret
    raise KeyRefused(f"unknown key id for agent {name}")


def issued(name: str, ring: KeyRing) -> AgentKey:
    assert ring.current is not None
    previous = ring.previous
    return AgentKey(name=name, key_id=ring.current.key_id, secret=ring.current.secret,
                    created_at=ring.current.created_at, previous_key_id=previous.key_id if previous else None,
                    previous_valid_until=previous.valid_until if previous else None)


@aws_errors
class AgentKeysRepository:
    def __init__(self, secretsmanager: Any, prefix: str) -> None:
        self._sm = secretsmanager
        self._prefix = prefix

    def issue(self, name: str, now: datetime, overlap_s: float) -> AgentKey:
        """Create the agent's first key, or rotate: the answer is the only time the secret is shown."""
        ring = self._read(name)
        fresh = rotated(ring, now, overlap_s)
        self._write(name, fresh, exists=ring is not None)
        return issued(name, fresh)

    def revoke(self, name: str, now: datetime) -> list[str] | None:
        """Every key of the agent stops signing now: the key ids taken away, None if it never had a key."""
        ring = self._read(name)
        if ring is None:
            return None
        self._write(name, revoked(ring, now), exists=True)
        return live_key_ids(ring, now)

    def secret(self, name: str, key_id: str, now: datetime) -> str:
        return secret_for(self._read(name), name, key_id, now)

    def _secret_id(self, name: str) -> str:
        return f"{self._prefix}{name}"

    def _read(self, name: str) -> KeyRing | None:
        try:
            found = self._sm.get_secret_value(SecretId=self._secret_id(name))
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ResourceNotFoundException":
                return None
            raise
        return KeyRing.model_validate_json(found["SecretString"])

    def _write(self, name: str, ring: KeyRing, exists: bool) -> None:
        value = ring.model_dump_json()
        if exists:
            self._sm.put_secret_value(SecretId=self._secret_id(name), SecretString=value)
            return
        try:
            self._sm.create_secret(Name=self._secret_id(name), SecretString=value,
                                   Description=f"hvr GPU agent {name}: HMAC key ring (router.store.agent_keys)")
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ResourceExistsException":
                raise
            # Another admin created it between our read and this write: ours is the later write, as a put would be.
            self._sm.put_secret_value(SecretId=self._secret_id(name), SecretString=value)
