"""HTTP API Lambda authorizer (payload 2.0, simple responses): `Authorization: Bearer <key>` → tenant and role.

Failed presentations are counted per source IP (router/store/auth_failures.py): once HVR_AUTH_FAILURE_LIMIT (20)
have failed in a window of HVR_AUTH_FAILURE_WINDOW_S (60) seconds, every request from that IP is refused without its
key being looked up, a valid key's too, until the window ends. API Gateway answers a refusal 403 either way, so a
guesser can't tell being throttled from guessing wrong.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import datetime
from functools import cache
from typing import Any

from router.models.common import utcnow
from router.store.auth_failures import DEFAULT_MAX_FAILURES, DEFAULT_WINDOW_S, AuthFailures, FailureLimit
from router.store.aws import client
from router.store.keys import KeysRepository

clock: Callable[[], datetime] = utcnow  # tests move it instead of sleeping through a window
UNKNOWN_IP = "unknown"  # API Gateway always sends sourceIp; an event without one still counts, all in one bucket


@cache
def _keys() -> KeysRepository:
    return KeysRepository(client("dynamodb", os.environ.get("AWS_ENDPOINT_URL")), os.environ["HVR_KEYS_TABLE"])


def _failures() -> AuthFailures:
    # Read on every call, not cached with the client: a test or an operator changing the limit is heeded at once.
    limit = FailureLimit(int(os.environ.get("HVR_AUTH_FAILURE_LIMIT") or DEFAULT_MAX_FAILURES),
                         int(os.environ.get("HVR_AUTH_FAILURE_WINDOW_S") or DEFAULT_WINDOW_S))
    return AuthFailures(client("dynamodb", os.environ.get("AWS_ENDPOINT_URL")), os.environ["HVR_KEYS_TABLE"], limit)


def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    source_ip = (event.get("requestContext") or {}).get("http", {}).get("sourceIp") or UNKNOWN_IP
    failures, now = _failures(), clock()
    # Refused before the key is read: answering a valid key from a throttled IP would tell a guesser which
    # guess was right, and refusals here cost one read, no write, however long the guessing goes on.
    if failures.throttled(source_ip, now):
        return {"isAuthorized": False}
    header = next((v for k, v in (event.get("headers") or {}).items() if k.lower() == "authorization"), "")
    scheme, _, key = header.partition(" ")
    principal = _keys().lookup(key.strip()) if scheme.lower() == "bearer" and key.strip() else None
    if principal is None:
        failures.record(source_ip, now)
        return {"isAuthorized": False}
    return {"isAuthorized": True, "context": {"tenant": principal.tenant, "role": principal.role}}
