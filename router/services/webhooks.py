"""Inbound callbacks. A callback is only a hint: once authenticated it queues a poll, and the provider's answer
to our own authenticated status call decides what happens — never the callback's body."""

from __future__ import annotations

import json
from collections.abc import Mapping
from urllib.parse import parse_qs

from router.services.deps import Deps
from router.signing import MAX_SKEW_S, SignatureError, verify
from router.store.messages import MessageKind, WorkerMessage


class WebhookRefused(Exception):
    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status


def agent_callback(raw_path: str, raw_query: str, headers: Mapping[str, str], body: bytes, deps: Deps,
                   secrets: list[str]) -> WorkerMessage:
    """Verify the agent's HMAC signature (replays refused), then queue a poll of the attempt it names."""
    nonces = deps.nonces
    assert nonces is not None, "HVR_IDEMPOTENCY_TABLE is not set"
    target = f"{raw_path}?{raw_query}" if raw_query else raw_path
    try:
        verify(secrets, "POST", target, body, headers, now=deps.clock().timestamp(),
               nonce_is_fresh=lambda nonce, ts: nonces.first_seen("agent", nonce, ts + 2 * MAX_SKEW_S))
    except SignatureError as exc:
        raise WebhookRefused(401, str(exc)) from exc
    query = parse_qs(raw_query)
    tenant, job_id = query.get("tenant", [""])[0], query.get("job", [""])[0]
    if not tenant or not job_id:
        raise WebhookRefused(400, "the callback URL lacks tenant and job")
    try:
        attempt_id = str(json.loads(body)["id"])
    except (ValueError, KeyError, TypeError) as exc:
        raise WebhookRefused(400, "the body is not an agent job") from exc
    message = WorkerMessage(kind=MessageKind.POLL, tenant=tenant, job_id=job_id, attempt_id=attempt_id)
    deps.queue.send(message)
    return message
