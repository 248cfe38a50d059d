"""RunPod Serverless public WAN endpoints over the `/v2` REST API with httpx (docs/providers.md §2).

Not the runpod SDK: importing it costs ~1.5 s of Lambda cold start, and its Endpoint client neither forwards
`webhook`/`policy` nor lets us tell "not sent" from "sent, answer lost". The transport (`/run` with webhook and
policy, `/status`, `/cancel`, `/health`) is reusable: the studio's worker-comfyui endpoints subclass this adapter
and override `_endpoint_id` and `_build_input`.

Webhooks are unsigned (nothing in runpod/docs signs them), so the webhook URL carries a per-attempt token,
HMAC-SHA256(webhook secret, attempt id); `verify_webhook` checks it in constant time. A webhook is only a hint:
the worker confirms with an authenticated `/status` before acting.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any, Literal
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

import httpx

from router.errors import WebhookRefused
from router.models.common import ProviderKind, utcnow
from router.models.offer import Offer, tier_of
from router.models.outcome import Billed
from router.providers.base import (
    EndpointHealth,
    ProviderState,
    ProviderStatus,
    Submission,
    TargetHealth,
    VideoProvider,
)
from router.providers.errors import OutcomeUnknown, Rejected, Unavailable

DEFAULT_BASE_URL = "https://api.runpod.ai/v2"
# Policy bounds (send-requests.mdx): executionTimeout 5 s-7 d, ttl 10 s-7 d, both in ms.
MIN_EXECUTION_TIMEOUT_MS, MIN_TTL_MS, MAX_POLICY_MS = 5_000, 10_000, 7 * 24 * 3600 * 1000
# TTL deletes a job whatever its state, results included, so it runs past the deadline by the time the worker
# needs to see the result and fetch the video.
RESULT_GRACE_S = 600
TYPICAL_JOB_S = 70.0  # docs examples: executionTime 46-95 s per public-endpoint video; for queue-wait estimates
# The catalog's public endpoints: the ones whose queues feed the target's health.
CATALOG_ENDPOINTS = ("wan-2-1-i2v-720", "wan-2-2-i2v-720", "wan-2-5", "wan-2-6-t2v", "wan-2-6-i2v", "infinitetalk")

_STATES = {
    "IN_QUEUE": ProviderState.QUEUED,
    "IN_PROGRESS": ProviderState.RUNNING,
    "RUNNING": ProviderState.RUNNING,  # job-states.mdx lists it beside IN_PROGRESS
    "COMPLETED": ProviderState.SUCCEEDED,
    "FAILED": ProviderState.FAILED,
    "CANCELLED": ProviderState.CANCELLED,
    "TIMED_OUT": ProviderState.FAILED,  # expired before pickup, or ran past executionTimeout
}


@dataclass(frozen=True)
class EndpointInputs:
    """Which optional fields one public endpoint takes (runpod/docs public-endpoints/models/*.mdx)."""

    image: bool = False  # `image` (required where present)
    audio: Literal["no", "optional", "required"] = "no"
    size: Literal["wxh", "tier", "none"] = "wxh"  # "1280*720", "480p"/"720p", or no `size` field
    duration: bool = True
    negative_prompt: bool = True
    seed: bool = True


PUBLIC_ENDPOINTS: dict[str, EndpointInputs] = {
    "wan-2-1-i2v-720": EndpointInputs(image=True),
    "wan-2-1-t2v-720": EndpointInputs(),
    "wan-2-2-i2v-720": EndpointInputs(image=True),
    "wan-2-2-t2v-720-lora": EndpointInputs(image=True, size="none", negative_prompt=False),
    "wan-2-5": EndpointInputs(image=True),
    "wan-2-6-t2v": EndpointInputs(audio="optional"),
    "wan-2-6-i2v": EndpointInputs(image=True, audio="optional"),
    "infinitetalk": EndpointInputs(image=True, audio="required", size="tier", duration=False,
                                   negative_prompt=False, seed=False),
}




def webhook_token(secret: str, attempt_id: str) -> str:
    return hmac.new(secret.encode(), attempt_id.encode(), hashlib.sha256).hexdigest()


def verify_webhook(raw_query: str, body: bytes, token_secret: str | Sequence[str]) -> tuple[str, str]:
    """(attempt id, RunPod job id) of an authentic callback, else WebhookRefused (401 token, 400 malformed).

    Several secrets may be given while one is being rotated out. The body is RunPod's status object; only its
    `id` is used, and only as a hint.
    """
    query = parse_qs(raw_query, keep_blank_values=True)
    attempts, tokens = query.get("attempt", []), query.get("token", [])
    if len(attempts) > 1 or len(tokens) > 1:
        raise WebhookRefused(400, "attempt and token must appear once")
    if not attempts or not attempts[0]:
        raise WebhookRefused(400, "the webhook URL lacks the attempt")
    if not tokens or not tokens[0]:
        raise WebhookRefused(401, "the webhook URL lacks its token")
    secrets = [token_secret] if isinstance(token_secret, str) else list(token_secret)
    given = tokens[0].encode()
    # Every secret is compared, not just until the first match, so timing says nothing about which one fits.
    matches = [hmac.compare_digest(webhook_token(secret, attempts[0]).encode(), given) for secret in secrets if secret]
    if not any(matches):
        raise WebhookRefused(401, "bad webhook token")
    try:
        job = json.loads(body)
    except ValueError as exc:
        raise WebhookRefused(400, "the body is not a RunPod status object") from exc
    if not isinstance(job, dict) or not isinstance(job.get("id"), str) or not job["id"]:
        raise WebhookRefused(400, "the body has no job id")
    return attempts[0], job["id"]


def job_ref(endpoint_id: str, job_id: str) -> str:
    """Our provider_job_id for a RunPod job: the endpoint is needed to poll it."""
    return f"{endpoint_id}/{job_id}"


class RunPodProvider(VideoProvider):
    kind = ProviderKind.RUNPOD

    def __init__(self, api_key: str, base_url: str = DEFAULT_BASE_URL, webhook_token_secret: str | None = None,
                 client: httpx.Client | None = None, *, health_endpoints: Sequence[str] = CATALOG_ENDPOINTS,
                 health_ttl_s: float = 30.0, typical_job_s: float = TYPICAL_JOB_S) -> None:
        self._secret = webhook_token_secret
        self._health_endpoints = list(health_endpoints)
        # Health is read for every routing decision; one /health per endpoint is too many to repeat each time.
        self._health_ttl_s = health_ttl_s
        self._health_cache: tuple[float, TargetHealth] | None = None
        self._typical_job_s = typical_job_s
        # Connection-level retries only (refused before anything was sent); a /run is never re-sent by the
        # transport, since RunPod has no idempotency key and a resend would be a second paid job.
        self._client = client or httpx.Client(
            base_url=base_url.rstrip("/"),
            headers={"Authorization": f"Bearer {api_key}"},
            timeout=httpx.Timeout(15.0, connect=3.0),
            transport=httpx.HTTPTransport(retries=2),
        )

    def supports(self, offer: Offer) -> bool:
        return offer.model in PUBLIC_ENDPOINTS

    def endpoint_of(self, offer: Offer) -> str | None:
        return offer.model if offer.model in PUBLIC_ENDPOINTS else None

    @property
    def target_name(self) -> str:
        return self.kind.value

    # --- the VideoProvider seam --------------------------------------------------------------------------------

    def _submit(self, submission: Submission) -> ProviderStatus:
        endpoint = self._endpoint_id(submission)
        body: dict[str, Any] = {"input": self._build_input(submission)}
        webhook = self._webhook_url(submission)
        if webhook:
            body["webhook"] = webhook
        if submission.deadline is not None:
            body["policy"] = policy_for(submission.deadline, utcnow())
        response = self._client.post(f"/{endpoint}/run", json=body)
        response.raise_for_status()
        data = _json(response)
        if data is None or not isinstance(data.get("id"), str) or not data["id"]:
            # Accepted (2xx) but unreadable: a job may exist that we can't name.
            raise OutcomeUnknown(f"RunPod answered /run without a job id: {response.text[:200]}")
        return self._parse(endpoint, data["id"], data)

    def _lookup(self, attempt_id: str) -> ProviderStatus | None:
        # RunPod has no way to list an endpoint's jobs or find one by a client-chosen id, so "no job for this
        # attempt" can never be proven: the attempt stays unknown until its webhook (which carries the attempt
        # and RunPod's job id) arrives or the SLA gives up on it. Resubmitting here could pay twice.
        raise OutcomeUnknown(f"RunPod cannot look jobs up by our attempt id ({attempt_id}); wait for its webhook")

    def _status(self, provider_job_id: str) -> ProviderStatus:
        endpoint, job_id = _split(provider_job_id)
        response = self._client.get(f"/{endpoint}/status/{job_id}")
        if response.status_code == 404:
            # We got this id from RunPod, so 404 means it deleted the job: the ttl ran out, or the result
            # retention (30 min after /run ends) passed before anyone read it.
            return ProviderStatus(provider_job_id=provider_job_id, state=ProviderState.FAILED,
                                  error="expired: RunPod no longer has this job (ttl or result retention passed)")
        response.raise_for_status()
        data = _json(response)
        if data is None:
            raise Unavailable(f"RunPod answered /status with a non-JSON body: {response.text[:200]}")
        return self._parse(endpoint, job_id, data)

    def _cancel(self, provider_job_id: str) -> ProviderStatus:
        endpoint, job_id = _split(provider_job_id)
        response = self._client.post(f"/{endpoint}/cancel/{job_id}")
        response.raise_for_status()
        # The cancel answer is only {id, status}; the status call adds what it ran (executionTime) for billing.
        return self._status(provider_job_id)

    def _health(self) -> TargetHealth:
        """One target for all endpoints: up while any endpoint answers, waiting as long as the longest queue."""
        cached = self._health_cache
        if cached is not None and time.monotonic() - cached[0] < self._health_ttl_s:
            return cached[1]
        endpoints: dict[str, EndpointHealth] = {}
        details = []
        failure: Exception | None = None
        for endpoint in self._health_endpoints:
            try:
                response = self._client.get(f"/{endpoint}/health", timeout=3.0)
                response.raise_for_status()
                data = _json(response) or {}
            except httpx.HTTPError as exc:  # one endpoint gone or failing does not take the others down
                failure = exc
                endpoints[endpoint] = EndpointHealth(up=False)
                details.append(f"{endpoint}: {type(exc).__name__}")
                continue
            jobs, workers = data.get("jobs") or {}, data.get("workers") or {}
            queued, running = _count(jobs.get("inQueue")), _count(jobs.get("inProgress"))
            idle = _count(workers.get("idle"))
            capacity = idle + _count(workers.get("running"))
            # Jobs ahead of ours, spread over the workers up (at least one will come: endpoints scale up). With
            # no idle worker a new job waits for one to start (or free up): the offer's cold start applies.
            endpoints[endpoint] = EndpointHealth(up=True, queue_wait_s=queued * self._typical_job_s / max(1, capacity),
                                                 warm=idle > queued)
            details.append(f"{endpoint}: queue {queued}, running {running}, idle {idle}")
        answered = [e for e in endpoints.values() if e.up]
        if not answered and failure is not None:
            raise failure
        health = TargetHealth(name=self.target_name, up=bool(answered),
                              queue_wait_s=max((e.queue_wait_s for e in answered), default=0.0),
                              detail="; ".join(details), endpoints=endpoints)
        self._health_cache = (time.monotonic(), health)
        return health

    # --- what a subclass for other endpoints overrides ---------------------------------------------------------

    def _endpoint_id(self, submission: Submission) -> str:
        endpoint = submission.offer.model
        if endpoint not in PUBLIC_ENDPOINTS:
            raise Rejected(f"{endpoint} is not a RunPod public endpoint this adapter knows")
        return endpoint

    def _build_input(self, submission: Submission) -> dict[str, Any]:
        """The endpoint's `input` object (docs/providers.md §2.6); defaults are left to the endpoint."""
        endpoint = self._endpoint_id(submission)
        schema = PUBLIC_ENDPOINTS[endpoint]
        request, delivered = submission.request, submission.delivered
        fields: dict[str, Any] = {"prompt": request.prompt}
        if schema.image:
            fields["image"] = _required_input(submission, "image", endpoint)
        if schema.audio == "required":
            fields["audio"] = _required_input(submission, "audio", endpoint)
        elif schema.audio == "optional" and submission.inputs.get("audio"):
            fields["audio"] = submission.inputs["audio"]
        if schema.negative_prompt and request.negative_prompt:
            fields["negative_prompt"] = request.negative_prompt
        if schema.size == "wxh":
            fields["size"] = f"{delivered.width}*{delivered.height}"
        elif schema.size == "tier":
            fields["size"] = f"{tier_of(min(delivered.width, delivered.height))}p"
        if schema.duration:
            # The endpoints take whole seconds from a short list; the catalog's durations_s are that list, and
            # the delivered frames were derived from one of them (81 frames at 16 fps is the "5 s" video).
            seconds = submission.offer.frames.snap_duration(delivered.duration_s) or delivered.duration_s
            fields["duration"] = round(seconds)
        if schema.seed and request.seed is not None:
            fields["seed"] = request.seed
        return fields

    # --- helpers -------------------------------------------------------------------------------------------------

    def _webhook_url(self, submission: Submission) -> str | None:
        if not submission.callback_url or not self._secret:
            return None  # no public URL or no token secret: polling alone
        parts = urlsplit(submission.callback_url)
        extra = urlencode({"token": webhook_token(self._secret, submission.attempt_id),
                           "attempt": submission.attempt_id})
        query = f"{parts.query}&{extra}" if parts.query else extra
        return urlunsplit(parts._replace(query=query))

    def _parse(self, endpoint: str, job_id: str, data: dict[str, Any]) -> ProviderStatus:
        raw_state = str(data.get("status") or "")
        # An unknown state is treated as still running: the poll goes on and the SLA timer bounds it.
        state = _STATES.get(raw_state, ProviderState.RUNNING)
        execution_ms = data.get("executionTime")
        render_s = execution_ms / 1000 if isinstance(execution_ms, int | float) else None
        delay = data.get("delayTime")
        start_delay_s = delay / 1000 if isinstance(delay, int | float) and not isinstance(delay, bool) else None
        raw_output = data.get("output")
        output: dict[str, Any] = raw_output if isinstance(raw_output, dict) else {}
        error, output_url = None, None
        if state is ProviderState.SUCCEEDED:
            output_url = output.get("video_url") if isinstance(output.get("video_url"), str) else None
            if output_url is None:
                state, error = ProviderState.FAILED, "RunPod reported COMPLETED without output.video_url"
        elif state is ProviderState.FAILED:
            error = _error_text(raw_state, data.get("error"))
        return ProviderStatus(
            provider_job_id=job_ref(endpoint, job_id),
            state=state,
            progress=1.0 if state is ProviderState.SUCCEEDED else 0.0,
            billed=Billed(gpu_seconds=render_s),
            error=error,
            output_url=output_url,
            render_s=render_s,
            start_delay_s=start_delay_s,
            cost_usd=_cost(output.get("cost")),
        )


def policy_for(deadline: datetime, now: datetime) -> dict[str, int]:
    """executionTimeout and ttl for a job that must be done by `deadline`, clamped to RunPod's bounds.

    executionTimeout stops a run that would end past the deadline (a 5 s floor). ttl (queue + run, 10 s floor)
    stops a job from starting so late it can't matter, plus RESULT_GRACE_S so a result ready at the deadline
    is still there to read. Both cap at 7 days.
    """
    remaining_ms = int((deadline - now).total_seconds() * 1000)
    if remaining_ms <= 0:
        raise Rejected(f"the deadline {deadline.isoformat()} has already passed")
    return {
        "executionTimeout": max(MIN_EXECUTION_TIMEOUT_MS, min(MAX_POLICY_MS, remaining_ms)),
        "ttl": max(MIN_TTL_MS, min(MAX_POLICY_MS, remaining_ms + RESULT_GRACE_S * 1000)),
    }


def _json(response: httpx.Response) -> dict[str, Any] | None:
    try:
        data = response.json()
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def _count(value: Any) -> int:
    return value if isinstance(value, int) and value > 0 else 0


def _split(provider_job_id: str) -> tuple[str, str]:
    endpoint, _, job_id = provider_job_id.partition("/")
    if not endpoint or not job_id:
        raise Rejected(f"not a RunPod job reference: {provider_job_id!r} (expected <endpoint>/<job id>)")
    return endpoint, job_id


def _required_input(submission: Submission, name: str, endpoint: str) -> str:
    url = submission.inputs.get(name)
    if not url:
        raise Rejected(f"{endpoint} needs an {name} URL")
    return url


def _error_text(state: str, error: Any) -> str:
    if state == "TIMED_OUT":
        return "timed_out: RunPod expired the job (ttl before pickup, or executionTimeout while running)"
    # A handler exception arrives as a JSON string of {error_type, error_message, ...} (SDK rp_job.py).
    if isinstance(error, str):
        try:
            decoded = json.loads(error)
        except ValueError:
            decoded = None
        if isinstance(decoded, dict) and decoded.get("error_message"):
            return f"{decoded.get('error_type') or 'error'}: {decoded['error_message']}"[:500]
        return error[:500]
    return json.dumps(error)[:500] if error else "RunPod reported FAILED without an error"


def _cost(value: Any) -> Decimal | None:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        cost = Decimal(str(value))
    except InvalidOperation:
        return None
    return cost if cost.is_finite() and cost >= 0 else None
