"""Client callbacks on terminal states, signed with the Standard Webhooks scheme and retried with backoff.

`webhook-id` is stable per job and outcome (`<job id>.<status>`), so a receiver can drop the duplicates that
at-least-once delivery brings. The address is checked again at delivery time (DNS may have changed since
submit) by the checked downloader's `send_checked`: every resolved address must be public, and the POST goes to the
address that was checked, so a resolver answering public-then-loopback can't rebind it in between.
"""

from __future__ import annotations

import json
import logging
from urllib.parse import urlencode, urlsplit

import httpx

from router.backoff import backoff
from router.models.common import ProviderKind, iso
from router.models.job import Job
from router.providers.download import UnsafeDownload, send_checked, tls
from router.services.deps import Deps
from router.store.messages import MessageKind, WorkerMessage

logger = logging.getLogger(__name__)
MAX_TRIES = 8
RETRY_BASE_S = 10.0


def provider_callback_url(deps: Deps, provider: ProviderKind, job: Job) -> str | None:
    """Where a provider (or the agent) reports back; None where this deployment has no public URL."""
    base = deps.settings.public_api_url
    if not base:
        return None
    return f"{base.rstrip('/')}/v1/webhooks/{provider.value}?" + urlencode({"tenant": job.tenant, "job": job.id})


def _post(url: str, dev_hosts: str | None, payload: bytes, headers: dict[str, str]) -> int:
    """POST to the client's own URL, checked and pinned, or, in the embedded stack, to a loopback stand-in named
    explicitly in HVR_DEV_CALLBACK_HOSTS; the answer's status. No redirects: a 3xx could point the signed payload
    somewhere unchecked."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    overrides = dict(pair.split("=", 1) for pair in (dev_hosts or "").split(",") if "=" in pair)
    with httpx.Client(timeout=10.0, follow_redirects=False, verify=tls()) as http:
        if host in overrides:
            query = f"?{parts.query}" if parts.query else ""
            return http.post(f"http://{overrides[host]}{parts.path or '/'}{query}", content=payload,
                             headers=headers).status_code
        response = send_checked(http, "POST", url, None, any_port=True, stream=True, content=payload, headers=headers)
        response.close()  # only the status matters; the body is the client's and could be any size
        return response.status_code


def deliver(job: Job, message: WorkerMessage, deps: Deps) -> None:
    url = job.request.callback_url
    if not url or not job.status.terminal:
        return
    settings = deps.settings
    secret = settings.secret(settings.callback_secret, settings.callback_secret_arn)
    if not secret:
        logger.warning("no callback secret configured; callback for %s not sent", job.id)
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
        status = _post(url, settings.dev_callback_hosts, payload.encode(), headers)
        if 200 <= status < 300:
            return
        problem = f"HTTP {status}"
    except UnsafeDownload as exc:
        logger.error("callback for %s refused: %s", job.id, exc)
        return
    except httpx.HTTPError as exc:
        problem = f"{type(exc).__name__}: {exc}"
    tries = message.poll_n + 1
    if tries >= MAX_TRIES:
        logger.error("callback for %s abandoned after %d tries: %s", job.id, tries, problem)
        return
    delay = max(1.0, backoff(tries, RETRY_BASE_S) / deps.time_scale)
    deps.queue.send(WorkerMessage(kind=MessageKind.CALLBACK, tenant=job.tenant, job_id=job.id, poll_n=tries),
                    delay_s=delay)
