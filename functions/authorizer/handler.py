"""HTTP API Lambda authorizer (payload 2.0, simple responses): `Authorization: Bearer <key>` → tenant and role."""

from __future__ import annotations

import os
from functools import cache
from typing import Any

from router.store.aws import client
from router.store.keys import KeysRepository


@cache
def _keys() -> KeysRepository:
    return KeysRepository(client("dynamodb", os.environ.get("AWS_ENDPOINT_URL")), os.environ["HVR_KEYS_TABLE"])


def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    header = next((v for k, v in (event.get("headers") or {}).items() if k.lower() == "authorization"), "")
    scheme, _, key = header.partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        return {"isAuthorized": False}
    principal = _keys().lookup(key.strip())
    if principal is None:
        return {"isAuthorized": False}
    return {"isAuthorized": True, "context": {"tenant": principal.tenant, "role": principal.role}}
