"""The local GPU agent (agent/, docs/agent-api.md) over its tunnel, every request HMAC-signed."""

from __future__ import annotations

import json
import math
from collections.abc import Generator
from datetime import datetime
from typing import Any

import httpx

from router.models.common import ProviderKind
from router.models.outcome import Billed
from router.providers.base import (
    ProviderState,
    ProviderStatus,
    QueuedRender,
    Submission,
    TargetHealth,
    VideoProvider,
)
from router.providers.errors import Rejected
from router.signing import sign
from router.workflows import ModelFiles, ModelFilesError, WorkflowError, build_workflow, supported


class HmacAuth(httpx.Auth):
    requires_request_body = True

    def __init__(self, secret: str) -> None:
        self._secret = secret

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        target = request.url.raw_path.decode()
        request.headers.update(sign(self._secret, request.method, target, request.content))
        yield request


class AgentProvider(VideoProvider):
    kind = ProviderKind.LOCAL

    def __init__(self, base_url: str, secret: str, name: str = "agent-1", client: httpx.Client | None = None,
                 models: ModelFiles | None = None):
        self._name = name
        self._models = models
        # Connection-level retries only (connect refused/reset before sending); request-level retries are
        # the queue's job, so a submit is never silently sent twice by the transport. One retry, which httpcore
        # makes at once: its later ones wait 0.5 s, 1 s, … and a dead agent would hold every worker call that long.
        self._client = client or httpx.Client(
            base_url=base_url,
            auth=HmacAuth(secret),
            timeout=httpx.Timeout(10.0, connect=3.0),
            transport=httpx.HTTPTransport(retries=1),
        )

    @property
    def target_name(self) -> str:
        return self._name

    @property
    def base_url(self) -> str:
        return str(self._client.base_url).rstrip("/")

    def _submit(self, submission: Submission) -> ProviderStatus:
        spec = submission.delivered  # one render: a long-form job's segment is an attempt of its own
        body = {
            "attempt_id": submission.attempt_id,
            "job_id": submission.job_id,
            "model": submission.offer.model,
            "prompt": submission.request.prompt,
            "negative_prompt": submission.request.negative_prompt,
            "spec": {name: getattr(spec, name) for name in ("width", "height", "frames", "fps")},
            "seed": submission.request.seed,
            "workflow": self._workflow(submission),
            "inputs": dict(submission.inputs),
            "output": {"put_url": submission.output_put_url, "content_type": "video/mp4"},
            "callback_url": submission.callback_url,
            # The agent runs its queue by deadline (agent/store.py); the router's estimate assumes it does.
            "deadline": submission.deadline.isoformat() if submission.deadline is not None else None,
            # An exploring try holds the GPU until then at most: the health check says so to whoever prices the queue.
            "stop_at": submission.stop_at.isoformat() if submission.stop_at is not None else None,
        }
        response = self._client.post("/v1/jobs", content=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
        response.raise_for_status()
        return _status(response.json())

    def _workflow(self, submission: Submission) -> dict[str, Any] | None:
        """The ComfyUI graph for this offer and mode (the sim engine ignores it); None where no builder exists."""
        offer, request = submission.offer, submission.request
        if not supported(offer.model, request.mode):
            return None
        try:
            if self._models is None:
                self._models = ModelFiles.load()
            return build_workflow(offer, request, submission.delivered, self._models)
        except (WorkflowError, ModelFilesError) as exc:
            raise Rejected(f"no workflow for {offer.id} {request.mode.value}: {exc}") from exc

    def _lookup(self, attempt_id: str) -> ProviderStatus | None:
        response = self._client.get(f"/v1/jobs/{attempt_id}")
        if response.status_code == 404:
            return None
        response.raise_for_status()
        return _status(response.json())

    def _status(self, provider_job_id: str) -> ProviderStatus:
        response = self._client.get(f"/v1/jobs/{provider_job_id}")
        response.raise_for_status()
        return _status(response.json())

    def _cancel(self, provider_job_id: str) -> ProviderStatus:
        response = self._client.post(f"/v1/jobs/{provider_job_id}/cancel")
        response.raise_for_status()
        return _status(response.json())

    def _health(self) -> TargetHealth:
        response = self._client.get("/v1/health", timeout=3.0)
        response.raise_for_status()
        data = response.json()
        return TargetHealth(
            name=self._name,
            up=data.get("status") == "ok",
            queue_wait_s=float(data.get("eta_s") or 0.0),
            detail=f"queue {data.get('queue_depth', 0)}, running {data.get('running', 0)}",
            queue=tuple(_queued(item) for item in data.get("queue") or ()),
            slots=max(1, int(data.get("slots") or 1)),
            vram_mb=_positive_int((data.get("vram") or {}).get("total_mb")),
            ram_mb=_positive_int(data.get("ram_mb")),
            models=_runnable(data.get("models")),
        )


def _runnable(value: Any) -> dict[str, frozenset[str]] | None:
    """The agent's `models` (model → modes it can run now); None where it doesn't say (the sim engine, an older
    agent) or says it in a shape we don't read."""
    if not isinstance(value, dict):
        return None
    return {str(model): frozenset(str(m) for m in modes) for model, modes in value.items()
            if isinstance(modes, list)}


def _positive_int(value: Any) -> int | None:
    """A memory figure from the agent's health; None where it says nothing usable (an older agent)."""
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


def _non_negative(value: Any) -> float | None:
    """A duration the agent reports; None where it says nothing usable (an older agent, a started job)."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
        return None
    return float(value)


def _queued(item: dict[str, Any]) -> QueuedRender:
    spec = item["spec"]
    deadline, stop_at = item.get("deadline"), item.get("stop_at")
    return QueuedRender(
        model=item["model"], width=int(spec["width"]), height=int(spec["height"]), frames=int(spec["frames"]),
        running=item.get("status") == "running", progress=float(item.get("progress") or 0.0),
        deadline=_instant(deadline) if deadline else None, left_s=float(item.get("left_s") or 0.0),
        stop_at=_instant(stop_at) if stop_at else None,
    )


def _instant(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _status(data: dict[str, Any]) -> ProviderStatus:
    render_s = None
    if data.get("started_at") and data.get("ended_at"):
        started, ended = (_instant(data[k]) for k in ("started_at", "ended_at"))
        render_s = (ended - started).total_seconds()
    return ProviderStatus(
        provider_job_id=data["id"],
        state=ProviderState(data["status"]),
        progress=float(data.get("progress") or 0.0),
        billed=Billed(gpu_seconds=float(data.get("gpu_seconds") or 0.0)),
        error=data.get("error"),
        render_s=render_s,
        starts_in_s=_non_negative(data.get("starts_in_s")),
    )
