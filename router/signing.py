"""HMAC-SHA256 request signing between the router and the GPU agent
(docs/architecture.md, "Security between router and agent").

The signed string binds method, path (with query), timestamp, nonce and the body's digest, so a captured
request can't be replayed (nonce), delayed (timestamp skew) or altered (digest). Verification accepts any of
several secrets so a rotation can overlap; signing always uses the first.
"""

from __future__ import annotations

import hashlib
import hmac
import time
import uuid
from collections.abc import Callable, Mapping, Sequence

from router.errors import Unauthorized

TIMESTAMP_HEADER = "X-HVR-Timestamp"
NONCE_HEADER = "X-HVR-Nonce"
SIGNATURE_HEADER = "X-HVR-Signature"
# An agent's heartbeat (PUT /v1/agents/{name}) names which of its keys signed it: each agent has keys of its own.
KEY_ID_HEADER = "X-HVR-Key-Id"
# A box's callback signed with its own key says whose key it is (the key id is looked up among that box's keys).
AGENT_NAME_HEADER = "X-HVR-Agent"
MAX_SKEW_S = 300
_SCHEME = "v1"


class SignatureError(Unauthorized):
    """A request failed authentication; the message says why (never which secret was tried)."""


def _string_to_sign(method: str, path: str, timestamp: str, nonce: str, body: bytes) -> bytes:
    digest = hashlib.sha256(body).hexdigest()
    return "\n".join([method.upper(), path, timestamp, nonce, digest]).encode()


def _mac(secret: str, message: bytes) -> str:
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def sign(
    secret: str,
    method: str,
    path: str,
    body: bytes = b"",
    *,
    now: float | None = None,
    nonce: str | None = None,
) -> dict[str, str]:
    """Headers to send with a request; `path` is the request target (path plus `?query` if any)."""
    timestamp = str(int(time.time() if now is None else now))
    nonce = nonce or uuid.uuid4().hex
    signature = _mac(secret, _string_to_sign(method, path, timestamp, nonce, body))
    return {TIMESTAMP_HEADER: timestamp, NONCE_HEADER: nonce, SIGNATURE_HEADER: f"{_SCHEME}={signature}"}


def verify(
    secrets: Sequence[str],
    method: str,
    path: str,
    body: bytes,
    headers: Mapping[str, str],
    *,
    now: float,
    nonce_is_fresh: Callable[[str, int], bool],
) -> None:
    """Raise SignatureError unless the headers carry a valid, fresh, first-seen signature.

    `nonce_is_fresh(nonce, timestamp)` must atomically record the nonce and return False if it was seen
    within the skew window; it is only called once the signature itself checks out, so forged requests
    can't fill the nonce store.
    """
    lowered = {k.lower(): v for k, v in headers.items()}
    timestamp = lowered.get(TIMESTAMP_HEADER.lower(), "")
    nonce = lowered.get(NONCE_HEADER.lower(), "")
    presented = lowered.get(SIGNATURE_HEADER.lower(), "")
    if not (timestamp and nonce and presented):
        raise SignatureError("missing signature headers")
    try:
        ts = int(timestamp)
    except ValueError as exc:
        raise SignatureError("malformed timestamp") from exc
    if abs(now - ts) > MAX_SKEW_S:
        raise SignatureError("timestamp outside the allowed skew")
    scheme, _, value = presented.partition("=")
    if scheme != _SCHEME or not value:
        raise SignatureError("unknown signature scheme")
    message = _string_to_sign(method, path, timestamp, nonce, body)
    if not any(hmac.compare_digest(_mac(secret, message), value) for secret in secrets if secret):
        raise SignatureError("signature mismatch")
    if not nonce_is_fresh(nonce, ts):
        raise SignatureError("replayed nonce")
