"""Client callbacks on terminal states, signed with the Standard Webhooks scheme and retried with backoff.

`webhook-id` is stable per job and outcome (`<job id>.<status>`), so a receiver can drop the duplicates that
at-least-once delivery brings. The address is checked again at delivery time (DNS may have changed since
submit): every resolved address must be public.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import socket
from urllib.parse import urlencode, urlsplit

import httpx

from router.backoff import backoff
from router.models.common import ProviderKind, iso
from router.models.job import Job
from router.services.deps import Deps
from router.store.messages import MessageKind, WorkerMessage

logger = logging.getLogger(__name__)
MAX_TRIES = 8
RETRY_BASE_S = 10.0


class UnsafeAddress(ValueError):
    pass


def provider_callback_url(deps: Deps, provider: ProviderKind, job: Job) -> str | None:
    """Where a provider (or the agent) reports back; None where this deployment has no public URL."""
    base = deps.settings.public_api_url if deps.settings else None
    if not base:
        return None
    return f"{base.rstrip('/')}/v1/webhooks/{provider.value}?" + urlencode({"tenant": job.tenant, "job": job.id})


def delivery_target(url: str, dev_hosts: str | None) -> str:
    """The URL to connect to: the client's own after checking it resolves only to public addresses, or, in the
    embedded stack, a loopback stand-in named explicitly in HVR_DEV_CALLBACK_HOSTS."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    overrides = dict(pair.split("=", 1) for pair in (dev_hosts or "").split(",") if "=" in pair)
    if host in overrides:
        query = f"?{parts.query}" if parts.query else ""
        return f"http://{overrides[host]}{parts.path or '/'}{query}"
    if parts.scheme != "https":
        raise UnsafeAddress("callback_url must be https")
    try:
        infos = socket.getaddrinfo(host, parts.port or 443, proto=socket.IPPROTO_TCP)
    except socket.gaierror as exc:
        raise UnsafeAddress(f"{host} does not resolve: {exc}") from exc
    for info in infos:
        address = ipaddress.ip_address(info[4][0])
        if not address.is_global:
            raise UnsafeAddress(f"{host} resolves to non-public address {address}")
    return url


def deliver(job: Job, message: WorkerMessage, deps: Deps) -> None:
    url = job.request.callback_url
    if not url or not job.status.terminal:
        return
    settings = deps.settings
    secret = settings.secret(settings.callback_secret, settings.callback_secret_arn) if settings else None
    if not secret:
        logger.warning("no callback secret configured; callback for %s not sent", job.id)
        return
    try:
        target = delivery_target(url, settings.dev_callback_hosts if settings else None)
    except UnsafeAddress as exc:
        logger.error("callback for %s refused: %s", job.id, exc)
        return
    from standardwebhooks.webhooks import Webhook

    now = deps.clock()
    payload = json.dumps({"type": f"job.{job.status.value}", "timestamp": iso(now),
                          "data": job.view().model_dump(mode="json")})
    message_id = f"{job.id}.{job.status.value}"
    headers = {
        "content-type": "application/json",
        "webhook-id": message_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": Webhook(secret).sign(message_id, now, payload),
    }
    try:
        # No redirects: a 3xx could point the signed payload at an address nobody checked.
        response = httpx.post(target, content=payload.encode(), headers=headers, timeout=10.0, follow_redirects=False)
        if 200 <= response.status_code < 300:
            return
        problem = f"HTTP {response.status_code}"
    except httpx.HTTPError as exc:
        problem = f"{type(exc).__name__}: {exc}"
    tries = message.poll_n + 1
    if tries >= MAX_TRIES:
        logger.error("callback for %s abandoned after %d tries: %s", job.id, tries, problem)
        return
    delay = max(1.0, backoff(tries, RETRY_BASE_S) / deps.time_scale)
    deps.queue.send(WorkerMessage(kind=MessageKind.CALLBACK, tenant=job.tenant, job_id=job.id, poll_n=tries),
                    delay_s=delay)
