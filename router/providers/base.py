"""The provider seam: the base class owns error translation, subclasses own the vendor call."""

from __future__ import annotations

import contextlib
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from enum import StrEnum

import httpx

from router.models.common import ProviderKind
from router.models.decision import DeliveredSpec
from router.models.offer import Offer
from router.models.outcome import NOTHING_BILLED, Billed
from router.models.request import VideoRequest
from router.providers.errors import (
    AuthFailed,
    NotFound,
    OutcomeUnknown,
    ProviderError,
    RateLimited,
    Rejected,
    TransientError,
    Unavailable,
)


class ProviderState(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def ended(self) -> bool:
        return self in {ProviderState.SUCCEEDED, ProviderState.FAILED, ProviderState.CANCELLED}


@dataclass(frozen=True)
class Submission:
    """Everything an adapter needs to start one attempt."""

    attempt_id: str
    job_id: str
    tenant: str
    offer: Offer
    request: VideoRequest
    delivered: DeliveredSpec
    output_put_url: str | None = None  # where a pushing provider (the agent) uploads the MP4
    callback_url: str | None = None  # where the provider reports back (token or signature authenticated)
    # input key → a URL the provider can GET: image, audio, mask, last_image, video, reference_image_1..4
    inputs: dict[str, str] = field(default_factory=dict)
    deadline: datetime | None = None  # for provider-side timeouts/TTLs (RunPod `policy`)
    stop_at: datetime | None = None  # an exploring try: stopped here if unfinished (`Attempt.explore_until`)
    target: str | None = None  # the box the engine placed it on, where the provider has several (a GPU fleet)


@dataclass(frozen=True)
class ProviderStatus:
    provider_job_id: str
    state: ProviderState
    progress: float = 0.0
    billed: Billed = NOTHING_BILLED
    error: str | None = None
    output_url: str | None = None  # None when the provider already put the output in our bucket
    output_bytes: bytes | None = None  # inline output (Veo may answer with the video's bytes)
    render_s: float | None = None  # wall seconds the provider spent running it, once known
    start_delay_s: float | None = None  # seconds it waited for a worker, cold start included (RunPod `delayTime`)
    content_filtered: bool = False  # the provider's safety filter dropped the output: not billed, not retried
    cost_usd: Decimal | None = None  # what the provider itself says it charged, where it says (RunPod `cost`)
    # A queued job's start as the target itself expects it, in modelled seconds (the GPU agent's `starts_in_s`);
    # None where the target doesn't say.
    starts_in_s: float | None = None


@dataclass(frozen=True)
class EndpointHealth:
    """One of a target's endpoints, where it has several with their own queues and workers (RunPod)."""

    up: bool
    queue_wait_s: float = 0.0
    warm: bool = True  # a worker is up and idle: a job starts without a cold start


@dataclass(frozen=True)
class QueuedRender:
    """One job a GPU agent holds, as its health check reports it (running ones first, in the order they run)."""

    model: str
    width: int
    height: int
    frames: int
    running: bool
    progress: float  # 0-1
    deadline: datetime | None
    left_s: float  # the agent's own estimate of the GPU-seconds left, in its catalog's figures
    stop_at: datetime | None = None  # an exploring try, which the router stops here if unfinished


@dataclass(frozen=True)
class TargetHealth:
    name: str
    up: bool
    queue_wait_s: float = 0.0  # the longest wait among its endpoints
    detail: str = ""
    endpoints: Mapping[str, EndpointHealth] = field(default_factory=dict)  # by endpoint id (`endpoint_of`)
    # A GPU agent's jobs and slots, for the router to price in what it has learned (services.context).
    queue: tuple[QueuedRender, ...] = ()
    slots: int = 1
    vram_mb: int | None = None  # the GPU's total memory, as its driver reports it
    ram_mb: int | None = None  # the box's system memory (what offloading spills into)
    models: Mapping[str, frozenset[str]] | None = None  # model → modes it can run now; None: it doesn't say
    boxes: tuple[TargetHealth, ...] = ()  # a fleet's GPU boxes, each its own target (`providers.fleet`)


def offer_health(health: TargetHealth, provider: VideoProvider, offer: Offer) -> EndpointHealth:
    """What `health` says about the endpoint running `offer`: its own figures where the target reports them."""
    endpoint = health.endpoints.get(provider.endpoint_of(offer) or "")
    if endpoint is None:
        return EndpointHealth(up=health.up, queue_wait_s=health.queue_wait_s)
    return EndpointHealth(up=health.up and endpoint.up, queue_wait_s=endpoint.queue_wait_s, warm=endpoint.warm)


class VideoProvider(ABC):
    kind: ProviderKind
    cancellable = True  # whether `cancel` can stop a job; where not (Veo), a job runs to its end once submitted

    def submit(self, submission: Submission) -> ProviderStatus:
        with translate_errors(submitting=True):
            return self._submit(submission)

    def lookup(self, attempt_id: str) -> ProviderStatus | None:
        """The provider's job for our attempt id, or None if it provably has none (safe to submit)."""
        with translate_errors():
            return self._lookup(attempt_id)

    def status(self, provider_job_id: str) -> ProviderStatus:
        with translate_errors():
            return self._status(provider_job_id)

    def cancel(self, provider_job_id: str) -> ProviderStatus:
        with translate_errors():
            return self._cancel(provider_job_id)

    def health(self) -> TargetHealth:
        try:
            with translate_errors():
                return self._health()
        except ProviderError as exc:
            return TargetHealth(name=self.target_name, up=False, detail=str(exc))

    def supports(self, offer: Offer) -> bool:
        """Whether this adapter can run the offer at all (a RunPod adapter knows its public endpoints only)."""
        return True

    def endpoint_of(self, offer: Offer) -> str | None:
        """The endpoint in `TargetHealth.endpoints` that runs `offer`; None where the target is one queue."""
        return None

    @property
    @abstractmethod
    def target_name(self) -> str: ...

    @abstractmethod
    def _submit(self, submission: Submission) -> ProviderStatus: ...

    @abstractmethod
    def _lookup(self, attempt_id: str) -> ProviderStatus | None: ...

    @abstractmethod
    def _status(self, provider_job_id: str) -> ProviderStatus: ...

    @abstractmethod
    def _cancel(self, provider_job_id: str) -> ProviderStatus: ...

    @abstractmethod
    def _health(self) -> TargetHealth: ...


@contextlib.contextmanager
def translate_errors(submitting: bool = False) -> Iterator[None]:
    """httpx failures → the provider error tree. On submit, anything after the request may have been sent
    is OutcomeUnknown: the provider may have accepted the job, so the caller must reconcile, not resubmit."""
    try:
        yield
    except ProviderError:
        raise
    except httpx.ConnectError as exc:  # nothing was sent
        raise Unavailable(f"connect failed: {exc}") from exc
    except httpx.TimeoutException as exc:
        raise (OutcomeUnknown if submitting else Unavailable)(f"timed out: {exc}") from exc
    except httpx.HTTPStatusError as exc:
        raise status_error(exc.response, submitting) from exc
    except httpx.TransportError as exc:
        raise (OutcomeUnknown if submitting else Unavailable)(f"transport error: {exc}") from exc


def status_error(response: httpx.Response, submitting: bool = False) -> ProviderError:
    code = response.status_code
    detail = f"HTTP {code}: {response.text[:300]}"
    if code in (401, 403):
        return AuthFailed(detail)
    if code == 404:
        return NotFound(detail)
    if code == 429:
        retry_after = response.headers.get("Retry-After")
        return RateLimited(detail, float(retry_after) if retry_after and retry_after.isdigit() else None)
    if code >= 500:
        return OutcomeUnknown(detail) if submitting else TransientError(detail)
    return Rejected(detail)
