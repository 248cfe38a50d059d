"""Inbound callbacks. A callback is only a hint: once authenticated it queues a poll, and the provider's answer
to our own authenticated status call decides what happens — never the callback's body."""

from __future__ import annotations

import json
from collections.abc import Mapping
from functools import cache
from urllib.parse import parse_qs

from router.errors import Unauthorized, WebhookRefused
from router.services import agents
from router.services.deps import Deps
from router.signing import AGENT_NAME_HEADER, KEY_ID_HEADER, MAX_SKEW_S, verify
from router.store.messages import MessageKind, WorkerMessage


def agent_callback(raw_path: str, raw_query: str, headers: Mapping[str, str], body: bytes, deps: Deps,
                   secrets: list[str]) -> WorkerMessage:
    """Verify the agent's HMAC signature (replays refused), then queue a poll of the attempt it names. A box with a
    key of its own signs with it and names itself and the key (`X-HVR-Agent`, `X-HVR-Key-Id`): checked against that
    box's keys, so a revoked box is refused here too. Else the fleet's shared `secrets`, where there are any."""
    nonces = deps.nonces
    target = f"{raw_path}?{raw_query}" if raw_query else raw_path
    lowered = {key.lower(): value for key, value in headers.items()}
    try:
        if KEY_ID_HEADER.lower() in lowered:
            name = lowered.get(AGENT_NAME_HEADER.lower(), "")
            if not name:
                raise WebhookRefused(401, f"{KEY_ID_HEADER} without {AGENT_NAME_HEADER}: whose key is it?")
            agents.authenticate(name, target, lowered, body, deps, method="POST")
        elif secrets:
            verify(secrets, "POST", target, body, lowered, now=deps.clock().timestamp(),
                   nonce_is_fresh=lambda nonce, ts: nonces.first_seen("agent", nonce, ts + 2 * MAX_SKEW_S))
        else:
            raise WebhookRefused(401, f"no shared agent secret here: a box signs with its own key and names it "
                                      f"({AGENT_NAME_HEADER}, {KEY_ID_HEADER})")
    except Unauthorized as exc:
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


def runpod_callback(raw_query: str, body: bytes, deps: Deps) -> WorkerMessage:
    """RunPod signs nothing: the per-attempt token in the URL authenticates the caller, and the worker still
    confirms with an authenticated `/status` before acting."""
    from router.providers.runpod import job_ref, verify_webhook

    secret = deps.settings.webhook_token_secret
    if not secret:
        raise WebhookRefused(404, "RunPod webhooks are not configured")
    attempt_id, runpod_id = verify_webhook(raw_query, body, secret)
    tenant, job_id = _job_of(raw_query)
    job = deps.jobs.get(tenant, job_id)
    attempt = next((a for a in job.attempts if a.id == attempt_id), None)
    if attempt is None:
        raise WebhookRefused(404, "no such attempt")
    offer = deps.catalog.get(attempt.offer)
    endpoint = offer.model if offer else attempt.offer.split("/", 1)[-1]
    message = WorkerMessage(kind=MessageKind.POLL, tenant=tenant, job_id=job_id, attempt_id=attempt_id,
                            provider_job_id=job_ref(endpoint, runpod_id))
    deps.queue.send(message)
    return message


def _job_of(raw_query: str) -> tuple[str, str]:
    query = parse_qs(raw_query)
    tenant, job_id = query.get("tenant", [""])[0], query.get("job", [""])[0]
    if not tenant or not job_id:
        raise WebhookRefused(400, "the callback URL lacks tenant and job")
    return tenant, job_id


REPLICATE_DEDUPE_S = 3 * 24 * 3600  # Replicate retries a webhook for a while; its id stays the same


def replicate_callback(raw_query: str, headers: Mapping[str, str], body: bytes, deps: Deps) -> WorkerMessage | None:
    """A Standard-Webhooks-signed Replicate callback: verified (timestamp tolerance checked here), deduplicated on
    `webhook-id`, then a poll of the attempt named in our URL. None for a duplicate delivery."""
    from router.providers.replicate import verify_webhook, webhook_id

    secret = _replicate_secret(deps)
    now = deps.clock().timestamp()
    prediction = verify_webhook(headers, body, secret, now)
    message_id = webhook_id(headers) or ""
    if not deps.nonces.first_seen("replicate", message_id, int(now) + REPLICATE_DEDUPE_S):
        return None
    tenant, job_id = _job_of(raw_query)
    attempt_id = parse_qs(raw_query).get("attempt", [""])[0]
    if not attempt_id:
        raise WebhookRefused(400, "the callback URL lacks the attempt")
    message = WorkerMessage(kind=MessageKind.POLL, tenant=tenant, job_id=job_id, attempt_id=attempt_id,
                            provider_job_id=str(prediction.get("id") or "") or None)
    deps.queue.send(message)
    return message


def _replicate_secret(deps: Deps) -> str:
    settings = deps.settings
    if not settings.replicate_api_token:
        raise WebhookRefused(404, "Replicate webhooks are not configured")
    return _fetch_replicate_secret(settings.replicate_api_token, settings.replicate_base_url)


@cache
def _fetch_replicate_secret(token: str, base_url: str) -> str:
    """Replicate's signing secret, asked of its API once per container (it changes only when rotated)."""
    from router.providers.replicate import fetch_webhook_secret, make_client

    return fetch_webhook_secret(make_client(token, base_url))
