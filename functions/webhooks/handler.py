"""POST /v1/webhooks/{provider}: provider and agent callbacks (authenticated by signature, not API key)."""

from __future__ import annotations

import base64
import json
from typing import Any

from aws_lambda_powertools import Logger

from router.errors import WebhookRefused
from router.services.deps import default_deps
from router.services.webhooks import agent_callback, replicate_callback, runpod_callback
from router.store.messages import WorkerMessage

logger = Logger(service="hvr-webhooks")


def _answer(status: int, body: dict[str, Any]) -> dict[str, Any]:
    content_type = "application/json" if status < 400 else "application/problem+json"
    return {"statusCode": status, "headers": {"content-type": content_type}, "body": json.dumps(body)}


def _refusal(exc: WebhookRefused) -> dict[str, Any]:
    return _answer(exc.status, {"type": f"urn:hvr:problem:{exc.problem}", "title": exc.title, "status": exc.status,
                                "detail": exc.detail})


@logger.inject_lambda_context
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    provider = (event.get("pathParameters") or {}).get("provider", "")
    raw = event.get("body") or ""
    body = base64.b64decode(raw) if event.get("isBase64Encoded") else raw.encode()
    deps = default_deps()
    raw_path, raw_query = event.get("rawPath", ""), event.get("rawQueryString", "")
    headers = {k.lower(): v for k, v in (event.get("headers") or {}).items()}
    message: WorkerMessage | None
    try:
        if provider == "local":
            settings = deps.settings
            secret = settings.secret(settings.agent_secret, settings.agent_secret_arn)
            if not secret and not settings.fleet_from_registry:
                raise WebhookRefused(404, "the local agent is not configured")
            # A registered box signs with its own key; the shared secret, where there is one, for the rest.
            message = agent_callback(raw_path, raw_query, headers, body, deps, [secret] if secret else [])
        elif provider == "runpod":
            message = runpod_callback(raw_query, body, deps)
        elif provider == "replicate":
            message = replicate_callback(raw_query, headers, body, deps)
        else:
            raise WebhookRefused(404, f"no webhooks for provider {provider!r}")
    except WebhookRefused as exc:
        logger.warning("webhook refused", provider=provider, reason=str(exc))
        return _refusal(exc)
    if message is None:
        return _answer(200, {"duplicate": True})
    # 200, not 202: RunPod counts anything but 200 as a failed delivery and sends it twice more, 10 s apart.
    return _answer(200, {"queued": message.kind.value, "job_id": message.job_id})
