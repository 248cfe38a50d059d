"""RunPod Serverless `/v2` on loopback: queue → worker → result, as the runpod SDK and our adapter see it.

Follows docs/providers.md §2: `/run`, `/runsync`, `/status/{id}`, `/cancel/{id}`, `/retry/{id}`, `/purge-queue`,
`/health` under `/v2/{endpoint_id}`, Bearer auth, job states IN_QUEUE → IN_PROGRESS → COMPLETED / FAILED /
CANCELLED / TIMED_OUT with `delayTime`/`executionTime` in ms, `policy.executionTimeout`/`ttl`, results kept 30 min
(1 min for `/runsync`), and an unsigned completion webhook whose body is the status object. The public WAN
endpoints (§2.6) answer `output = {"video_url", "cost"}`; the video is a real MP4 of the requested size and
length, served by the sandbox itself and rendered only when someone fetches it.

Optional worker-comfyui endpoints (§2.5, `comfy_endpoints`) take `{"workflow", "images"}`: the graph is checked
with router.workflows' validator against the uploaded image names (an invalid one FAILS with the node errors, as
worker-comfyui turns ComfyUI's 400 into), and the SaveVideo output is rendered at the size, frames and fps the
graph works out to and returned under `images`, base64 (or as an `s3_url` with `comfy_output="s3_url"`).

A job's state is computed from its timestamps against `clock`, so a test can drive time with a fake clock; a
ticker thread only notices terminal states to send webhooks. Fault call kinds:

    create      /run, /runsync: RATE_LIMIT, SERVER_ERROR, TIMEOUT, ACCEPT_THEN_DROP (HTTP level), and the job's
                fate: STUCK, FAILED, OUTPUT_EXPIRED, DUPLICATE_WEBHOOK, OUT_OF_ORDER_WEBHOOK, DELAYED_WEBHOOK
    get         /status, /health, /cancel, /retry, /purge-queue: RATE_LIMIT, SERVER_ERROR, TIMEOUT
    download    the output URL: OUTPUT_EXPIRED, SERVER_ERROR, TIMEOUT
    webhook     a completion webhook: DUPLICATE_WEBHOOK, OUT_OF_ORDER_WEBHOOK, DELAYED_WEBHOOK (held back
                `plan.webhook_delay_s`, so the poll sees the end first)

`plan.overbill` (hvr/sandbox/base.py): a drawn job's `executionTime` is `factor` times what it ran once the job has
been over `after_s` seconds of `clock` (`advance()` moves it on); the jobs drawn are in `overbilled`.
"""

from __future__ import annotations

import base64
import binascii
import io
import json
import math
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import httpx
from PIL import Image

from hvr.sandbox.base import Fault, FaultPlan, Pace, Request, Response, SandboxServer, graph_model, render_mp4
from router.providers.download import tls
from router.workflows.schema import INPUT_FOLDER, Validation, default_schema
from router.workflows.shapes import GraphShapes

DAY_MS = 24 * 3600 * 1000
MAX_POLICY_MS = 7 * DAY_MS  # executionTimeout and ttl: max 7 days (send-requests.mdx)
MIN_EXECUTION_TIMEOUT_MS, MIN_TTL_MS = 5000, 10000
DEFAULT_EXECUTION_TIMEOUT_MS, DEFAULT_TTL_MS = 600_000, DAY_MS

HTTP_FAULTS = (Fault.RATE_LIMIT, Fault.SERVER_ERROR, Fault.TIMEOUT)
WEBHOOK_FAULTS = (Fault.DUPLICATE_WEBHOOK, Fault.OUT_OF_ORDER_WEBHOOK, Fault.DELAYED_WEBHOOK)
JOB_FAULTS = (Fault.STUCK, Fault.FAILED, Fault.OUTPUT_EXPIRED, *WEBHOOK_FAULTS)
TERMINAL = frozenset({"COMPLETED", "FAILED", "CANCELLED", "TIMED_OUT"})
EXECUTION_S = 0.5  # a job's run, where nothing models its render
SAMPLERS = ("KSampler", "KSamplerAdvanced", "SamplerCustomAdvanced")


@dataclass(frozen=True)
class EndpointSpec:
    """What one public endpoint accepts and renders (docs/providers.md §2.6; fps as the catalog's judgement)."""

    fps: float
    sizes: tuple[str, ...]  # accepted `size` values ("1280*720", or "480p" for tier-sized endpoints)
    durations: tuple[int, ...] | None  # accepted `duration` values; None: the endpoint has no `duration`
    required: tuple[str, ...] = ("prompt",)
    four_n_plus_one: bool = False  # WAN 2.1/2.2 render 4n+1 frames (81 for 5 s at 16 fps)
    usd_per_second: Mapping[int, float] = field(default_factory=dict)  # by tier (short side)
    usd_per_video: Mapping[int, float] = field(default_factory=dict)  # by tier, whatever the length
    default_size: str = "1280*720"


_WAN_720 = ("1280*720", "720*1280")
_TIER_SIZES = {"480p": (832, 480), "720p": (1280, 720)}

PUBLIC_ENDPOINTS: dict[str, EndpointSpec] = {
    "wan-2-1-i2v-720": EndpointSpec(16, _WAN_720, (5, 10, 15), ("prompt", "image"), True, {720: 0.06}),
    "wan-2-1-t2v-720": EndpointSpec(16, _WAN_720, (5, 10, 15), ("prompt",), True, {720: 0.06}),
    "wan-2-2-i2v-720": EndpointSpec(16, _WAN_720, (5, 8, 10, 15), ("prompt", "image"), True, {720: 0.06}),
    "wan-2-2-t2v-720-lora": EndpointSpec(16, _WAN_720, (5, 8), ("prompt", "image"), True, {720: 0.07}),
    "wan-2-5": EndpointSpec(24, ("832*480", "480*832", *_WAN_720, "1920*1080", "1080*1920"), (5, 10),
                            ("prompt", "image"), usd_per_second={480: 0.05, 720: 0.10, 1080: 0.15}),
    "wan-2-6-t2v": EndpointSpec(24, (*_WAN_720, "1920*1080", "1080*1920"), (5, 10, 15),
                                usd_per_second={720: 0.10, 1080: 0.15}),
    "wan-2-6-i2v": EndpointSpec(24, ("1280*720", "1920*1080"), (5, 10, 15), ("prompt", "image"),
                                usd_per_second={720: 0.10, 1080: 0.15}),
    # The length follows the audio and the aspect the image; the sandbox can read neither, so it renders the
    # tier's landscape size for `talk_duration_s`.
    "infinitetalk": EndpointSpec(25, ("480p", "720p"), None, ("prompt", "image", "audio", "size"),
                                 usd_per_video={480: 0.25, 720: 0.50}, default_size="480p"),
}


@dataclass
class WebhookDelivery:
    url: str
    body: dict[str, Any]
    status: int | None  # the receiver's answer; None when it could not be reached


@dataclass
class _Output:
    width: int
    height: int
    frames: int
    fps: float
    label: str
    prompt: str


@dataclass
class _Job:
    id: str
    endpoint: str
    webhook: str | None
    sync: bool
    created: float
    queue_s: float
    execution_s: float
    execution_timeout_s: float
    ttl_s: float
    fate: Fault | None
    error: str | None  # the input is invalid: the worker fails it
    output: _Output | None
    cancelled_at: float | None = None
    notified: bool = False
    comfy: bool = False  # a worker-comfyui job: its output and failures take that worker's shape
    details: list[str] | None = None  # worker-comfyui's `details` beside `error`
    filename: str = ""  # the SaveVideo file worker-comfyui would name
    sampler: str | None = None  # the graph's first sampler: where a scripted failure happens
    overbill: float | None = None  # plan.overbill drew it: its record later bills this times its executionTime

    @property
    def start(self) -> float:
        return math.inf if self.fate is Fault.STUCK else self.created + self.queue_s

    @property
    def timed_out(self) -> bool:
        return self.execution_s > self.execution_timeout_s

    @property
    def end(self) -> float:
        return self.start + min(self.execution_s, self.execution_timeout_s)


class RunPodSandbox(SandboxServer):
    name = "runpod"

    def __init__(self, api_key: str = "sandbox-runpod-key", plan: FaultPlan | None = None, *,
                 queue_s: float = 0.2, execution_s: float | None = EXECUTION_S, result_ttl_s: float = 1800.0,
                 sync_result_ttl_s: float = 60.0, output_ttl_s: float = 7 * 24 * 3600.0, hang_s: float = 1.0,
                 retry_after_s: int = 1, webhook_retry_delay_s: float = 10.0, workers: int = 2,
                 talk_duration_s: float = 5.0, idle_timeout_s: float | None = None,
                 endpoints: Mapping[str, EndpointSpec] | None = None,
                 comfy_endpoints: Sequence[str] = (), comfy_output: Literal["base64", "s3_url"] = "base64",
                 pace: Pace | None = None, clock: Callable[[], float] = time.monotonic, host: str = "127.0.0.1",
                 port: int = 0) -> None:
        super().__init__(host, port)
        self.api_key = api_key
        self.plan = plan or FaultPlan()
        # Plain attributes so a test or `hvr dev` can change them between jobs; each job copies them when created.
        # Wall seconds; execution_s None: each job runs for its modelled render time over the pace's scale.
        self.queue_s, self.execution_s = queue_s, execution_s
        self.pace = pace or Pace()
        self._files: Any = None  # models.yaml's ComfyUI files, read when a paced comfy job needs its model
        self.result_ttl_s, self.sync_result_ttl_s, self.output_ttl_s = result_ttl_s, sync_result_ttl_s, output_ttl_s
        self.hang_s, self.retry_after_s, self.webhook_retry_delay_s = hang_s, retry_after_s, webhook_retry_delay_s
        self.workers, self.talk_duration_s = workers, talk_duration_s
        # None: every worker is always up (an endpoint with active workers). A number: workers scale to zero and
        # one stays idle (warm) that long after its job ends, as RunPod's idle timeout; /health reports them.
        self.idle_timeout_s = idle_timeout_s
        self.endpoints = dict(endpoints if endpoints is not None else PUBLIC_ENDPOINTS)
        self.comfy_endpoints, self.comfy_output = frozenset(comfy_endpoints), comfy_output
        self.clock = clock
        self.webhooks: list[WebhookDelivery] = []
        self.created = 0  # jobs ever created (including those whose response was dropped)
        self.submitted: list[dict[str, Any]] = []  # the body of every created job, in order
        self.retried = 0
        self.overbilled: dict[str, float] = {}  # job id -> the factor plan.overbill revises its record by
        self._jobs: dict[str, _Job] = {}  # what /status can still see
        self._outputs: dict[str, _Job] = {}  # video URLs outlive the job record (7 days against 30 min)
        self._lock = threading.Lock()
        self._render_lock = threading.Lock()
        self._rendered: dict[tuple[Any, ...], bytes] = {}
        self._stopping = threading.Event()
        self._ticker: threading.Thread | None = None
        prefix = r"/v2/(?P<endpoint>[A-Za-z0-9_.\-]+)"
        self.route("POST", f"{prefix}/run", self._run)
        self.route("POST", f"{prefix}/runsync", self._runsync)
        self.route("GET", f"{prefix}/status/(?P<job>[^/]+)", self._status)
        self.route("POST", f"{prefix}/status/(?P<job>[^/]+)", self._status)
        self.route("POST", f"{prefix}/cancel/(?P<job>[^/]+)", self._cancel)
        self.route("POST", f"{prefix}/retry/(?P<job>[^/]+)", self._retry)
        self.route("POST", f"{prefix}/purge-queue", self._purge)
        self.route("GET", f"{prefix}/health", self._health)
        self.route("GET", r"/outputs/(?P<job>[^/]+)\.mp4", self._download)

    # --- lifecycle -------------------------------------------------------------------------------------------

    def start(self) -> RunPodSandbox:
        super().start()
        self._stopping.clear()
        self._ticker = threading.Thread(target=self._tick_forever, name="runpod-webhooks", daemon=True)
        self._ticker.start()
        return self

    def __enter__(self) -> RunPodSandbox:
        return self.start()

    def stop(self) -> None:
        self._stopping.set()
        if self._ticker is not None:
            self._ticker.join(timeout=2)
        super().stop()

    def reset(self) -> None:
        """Forget every job, delivery and call, so one server can serve many tests; rendered videos stay cached."""
        with self._lock:
            self._jobs.clear()
            self._outputs.clear()
            self.submitted.clear()
            self.overbilled.clear()
            self.webhooks.clear()
            self.calls.clear()
            self.created = self.retried = 0

    def advance(self, seconds: float) -> None:
        """Move the sandbox's clock on without waiting: jobs run, end, are revised and deleted by it."""
        base = self.clock
        self.clock = lambda: base() + seconds

    def job_ids(self) -> list[str]:
        with self._lock:
            return list(self._jobs)

    def job_state(self, job_id: str) -> dict[str, Any] | None:
        """The status object `/status` would answer now (None once deleted): for tests."""
        with self._lock:
            job = self._jobs.get(job_id)
            view = None if job is None else self._view(job, self.clock())
        return None if job is None or view is None else self._with_comfy_output(job, view)

    # --- routes ----------------------------------------------------------------------------------------------

    def _run(self, request: Request) -> Response:
        return self._create(request, sync=False)

    def _runsync(self, request: Request) -> Response:
        return self._create(request, sync=True)

    def _create(self, request: Request, sync: bool) -> Response:
        refused = self._gate(request, "create", (*HTTP_FAULTS, Fault.ACCEPT_THEN_DROP, *JOB_FAULTS))
        if isinstance(refused, Response):
            return refused
        fault = refused
        try:
            body = request.json()
        except ValueError:
            return Response(400, {"error": "request body is not JSON"})
        if not isinstance(body, dict) or not isinstance(body.get("input"), dict):
            return Response(400, {"error": "the request body needs an `input` object"})
        policy = body.get("policy") or {}
        execution_ms = policy.get("executionTimeout", DEFAULT_EXECUTION_TIMEOUT_MS)
        ttl_ms = policy.get("ttl", DEFAULT_TTL_MS)
        if not isinstance(execution_ms, int) or not MIN_EXECUTION_TIMEOUT_MS <= execution_ms <= MAX_POLICY_MS:
            return Response(400, {"error": f"policy.executionTimeout must be {MIN_EXECUTION_TIMEOUT_MS}-"
                                           f"{MAX_POLICY_MS} ms"})
        if not isinstance(ttl_ms, int) or not MIN_TTL_MS <= ttl_ms <= MAX_POLICY_MS:
            return Response(400, {"error": f"policy.ttl must be {MIN_TTL_MS}-{MAX_POLICY_MS} ms"})
        webhook = body.get("webhook")
        if webhook is not None and not isinstance(webhook, str):
            return Response(400, {"error": "webhook must be a URL"})
        endpoint = request.params["endpoint"]
        comfy = _ComfyPlan()
        if endpoint in self.comfy_endpoints:
            comfy = self._plan_comfy(body["input"])
            error, output = comfy.error, comfy.output
        else:
            error, output = self._plan_output(self.endpoints[endpoint], endpoint, body["input"])
        job_id = f"sync-{uuid.uuid4()}-u1" if sync else f"{uuid.uuid4()}-u1"
        job = _Job(id=job_id, endpoint=endpoint, webhook=webhook, sync=sync,
                   created=self.clock(), queue_s=self.queue_s,
                   execution_s=self._execution_s(comfy.model if endpoint in self.comfy_endpoints else endpoint,
                                                 output),
                   execution_timeout_s=execution_ms / 1000, ttl_s=ttl_ms / 1000,
                   fate=fault if fault in JOB_FAULTS else None, error=error, output=output,
                   comfy=endpoint in self.comfy_endpoints, details=comfy.details, filename=comfy.filename,
                   sampler=comfy.sampler, overbill=self.plan.overbilled())
        with self._lock:
            self._jobs[job_id] = job
            if job.overbill is not None:
                self.overbilled[job_id] = job.overbill
            self._outputs[job_id] = job
            self.created += 1
            self.submitted.append(body)
        if fault is Fault.ACCEPT_THEN_DROP:
            return Response(hang_s=self.hang_s, drop=True)  # the job exists; its creator never learns the id
        if not sync:
            return Response(200, {"id": job_id, "status": "IN_QUEUE"})
        wait_ms = _int(request.query.get("wait", ["90000"])[0], 90000)
        deadline = time.monotonic() + max(1000, min(300000, wait_ms)) / 1000
        while True:
            view = self.job_state(job_id)
            if view is None or view["status"] in TERMINAL or time.monotonic() >= deadline:
                return Response(200, view or {"id": job_id, "status": "IN_QUEUE"})
            time.sleep(0.02)

    def _execution_s(self, model: str | None, output: _Output | None) -> float:
        """Wall seconds a new job runs: as set, else its modelled render time (public endpoints are modelled by
        their endpoint id, worker-comfyui by the graph's model) over the pace's scale."""
        if self.execution_s is not None:
            return self.execution_s
        modelled = self.pace.render_s(model, output.width, output.height, output.frames) if output else None
        return self.pace.wall(modelled) if modelled is not None else EXECUTION_S

    def _status(self, request: Request) -> Response:
        refused = self._gate(request, "get", HTTP_FAULTS)
        if isinstance(refused, Response):
            return refused
        view = self.job_state(request.params["job"])
        if view is None:
            return Response(404, {"error": "job not found"})
        return Response(200, view)

    def _cancel(self, request: Request) -> Response:
        refused = self._gate(request, "get", HTTP_FAULTS)
        if isinstance(refused, Response):
            return refused
        with self._lock:
            now = self.clock()
            found = self._live_job(request.params["job"], now)
            if isinstance(found, Response):
                return found
            job, view = found
            if view["status"] not in TERMINAL:
                job.cancelled_at = now
        return Response(200, {"id": job.id, "status": self._state(job, now)[0]})

    def _retry(self, request: Request) -> Response:
        refused = self._gate(request, "get", HTTP_FAULTS)
        if isinstance(refused, Response):
            return refused
        with self._lock:
            found = self._live_job(request.params["job"], self.clock())
            if isinstance(found, Response):
                return found
            job, view = found
            status = view["status"]
            if status not in ("FAILED", "TIMED_OUT"):
                return Response(400, {"error": f"only FAILED or TIMED_OUT jobs can be retried, not {status}"})
            # Same id, back in the queue; the retry is a fresh run (a scripted FAILED does not repeat).
            job.created, job.fate, job.notified, job.cancelled_at = self.clock(), None, False, None
            self.retried += 1
        return Response(200, {"id": job.id, "status": "IN_QUEUE"})

    def _live_job(self, job_id: str, now: float) -> tuple[_Job, dict[str, Any]] | Response:
        """A job /status can still see, with its view; else the 404 RunPod answers. Callers hold the lock."""
        job = self._jobs.get(job_id)
        view = self._view(job, now) if job is not None else None
        if job is None or view is None:
            return Response(404, {"error": "job not found"})
        return job, view

    def _purge(self, request: Request) -> Response:
        refused = self._gate(request, "get", HTTP_FAULTS)
        if isinstance(refused, Response):
            return refused
        removed = 0
        with self._lock:
            now = self.clock()
            for job in list(self._jobs.values()):
                view = self._view(job, now)
                if job.endpoint == request.params["endpoint"] and view is not None and view["status"] == "IN_QUEUE":
                    job.cancelled_at = now
                    removed += 1
        return Response(200, {"removed": removed, "status": "completed"})

    def _health(self, request: Request) -> Response:
        refused = self._gate(request, "get", HTTP_FAULTS)
        if isinstance(refused, Response):
            return refused
        counts = {"completed": 0, "failed": 0, "inProgress": 0, "inQueue": 0, "retried": self.retried}
        key = {"COMPLETED": "completed", "FAILED": "failed", "TIMED_OUT": "failed", "IN_PROGRESS": "inProgress",
               "IN_QUEUE": "inQueue"}
        with self._lock:
            now = self.clock()
            for job in list(self._jobs.values()):
                view = self._view(job, now)
                if job.endpoint == request.params["endpoint"] and view is not None and view["status"] in key:
                    counts[key[view["status"]]] += 1
            running = min(self.workers, counts["inProgress"])
            free = max(0, self.workers - running)
            if self.idle_timeout_s is not None:
                free = min(free, self._recently_idle(request.params["endpoint"], now))
        return Response(200, {"jobs": counts, "workers": {"idle": free, "running": running}})

    def _recently_idle(self, endpoint: str, now: float) -> int:
        """Workers still up after their last job: jobs that ended within the idle timeout. Callers hold the lock."""
        assert self.idle_timeout_s is not None
        ended = 0
        for job in self._jobs.values():
            status, end = self._state(job, now)
            if job.endpoint == endpoint and status in TERMINAL and now - end <= self.idle_timeout_s:
                ended += 1
        return ended

    def _download(self, request: Request) -> Response:
        fault = self.plan.next("download", (Fault.OUTPUT_EXPIRED, Fault.SERVER_ERROR, Fault.TIMEOUT))
        if fault is Fault.TIMEOUT:
            return Response(hang_s=self.hang_s, drop=True)
        if fault is Fault.SERVER_ERROR:
            return Response(503, b"upstream error", {"content-type": "text/plain"})
        with self._lock:
            job = self._outputs.get(request.params["job"])
            now = self.clock()
            live = (job is not None and job.output is not None and self._state(job, now)[0] == "COMPLETED"
                    and job.fate is not Fault.OUTPUT_EXPIRED and now < job.end + self.output_ttl_s)
        if not live or fault is Fault.OUTPUT_EXPIRED:
            return Response(404, b"<Error><Code>NoSuchKey</Code></Error>", {"content-type": "application/xml"})
        assert job is not None and job.output is not None
        return Response(200, self._render(job.output), {"content-type": "video/mp4"})

    # --- helpers ---------------------------------------------------------------------------------------------

    def _gate(self, request: Request, call: str, allowed: tuple[Fault, ...]) -> Response | Fault | None:
        """Auth, the endpoint's existence, then the HTTP-level fault of this call: a Response ends the call."""
        header = request.headers.get("authorization", "")
        # The SDK sends `Bearer <key>`; the docs' curl examples send the raw key. Both are accepted.
        if header.removeprefix("Bearer ").strip() != self.api_key:
            return Response(401, {"error": "Unauthorized"})
        if request.params["endpoint"] not in self.endpoints and request.params["endpoint"] not in self.comfy_endpoints:
            return Response(404, {"error": f"endpoint {request.params['endpoint']} not found"})
        fault = self.plan.next(call, allowed)
        if fault is Fault.RATE_LIMIT:
            return Response(429, {"error": "rate limit exceeded"}, {"Retry-After": str(self.retry_after_s)})
        if fault is Fault.SERVER_ERROR:
            return Response(500, {"error": "internal server error"})
        if fault is Fault.TIMEOUT:
            return Response(hang_s=self.hang_s, drop=True)
        return fault

    def _plan_output(self, spec: EndpointSpec, endpoint: str, given: dict[str, Any]) -> tuple[str | None,
                                                                                            _Output | None]:
        """(the worker's error for an invalid input, or the video it will deliver)."""
        missing = [name for name in spec.required if not given.get(name)]
        if missing:
            return f"missing required input: {', '.join(missing)}", None
        size = str(given.get("size") or spec.default_size)
        if size not in spec.sizes:
            return f"invalid size {size!r}: one of {', '.join(spec.sizes)}", None
        if spec.durations is None:
            duration: float = self.talk_duration_s
        else:
            duration = given.get("duration", 5)
            if duration not in spec.durations:
                return f"invalid duration {duration!r}: one of {spec.durations}", None
        for name in ("image", "audio"):
            value = given.get(name)
            if value is not None and not str(value).startswith(("http://", "https://")):
                return f"Invalid {name} URL", None
        if size in _TIER_SIZES:
            width, height = _TIER_SIZES[size]
        else:
            width, height = (int(side) for side in size.split("*"))
        frames = round(duration * spec.fps)
        if spec.four_n_plus_one:
            frames = 4 * round((frames - 1) / 4) + 1
        return None, _Output(width, height, frames, spec.fps, endpoint, str(given.get("prompt", "")))

    def _view(self, job: _Job, now: float) -> dict[str, Any] | None:
        """The status object of a job at `now`, or None once RunPod would have deleted it (dropped here).
        Callers hold the lock."""
        status, end = self._state(job, now)
        if status in TERMINAL:
            retention = self.sync_result_ttl_s if job.sync else self.result_ttl_s
            deleted_at = min(job.created + job.ttl_s, end + retention)
        else:
            deleted_at = job.created + job.ttl_s  # TTL covers queue and run: the job vanishes, whatever it was doing
        if now >= deleted_at:
            self._jobs.pop(job.id, None)
            return None
        view: dict[str, Any] = {"id": job.id, "status": status}
        started = min(job.start, end, now)
        # Reported in the pace's modelled milliseconds: the stack's renders run scaled down, their bills don't.
        view["delayTime"] = round(self.pace.modelled(started - job.created) * 1000)
        if status != "IN_QUEUE":
            view["workerId"] = f"sbx{job.id[:10].replace('-', '')}"
            view["executionTime"] = round(self.pace.modelled(min(end, now) - started) * 1000)
            if job.overbill is not None and status in TERMINAL and now >= end + self.plan.overbill_after_s:
                view["executionTime"] = round(view["executionTime"] * job.overbill)  # the bill revised later
        if job.comfy:
            if status == "FAILED":
                view.update(self._comfy_failure(job))
        elif status == "COMPLETED" and job.output is not None:
            view["output"] = {"video_url": f"{self.url}/outputs/{job.id}.mp4",
                              "cost": self._cost(job.endpoint, job.output)}
        elif status == "FAILED":
            view["error"] = job.error or "worker error: the handler raised (sandbox FAILED fault)"
        return view

    def _state(self, job: _Job, now: float) -> tuple[str, float]:
        end = job.end
        if job.cancelled_at is not None and job.cancelled_at < end:
            return "CANCELLED", job.cancelled_at
        if now < job.start:
            return "IN_QUEUE", end
        if now < end:
            return "IN_PROGRESS", end
        if job.timed_out:
            return "TIMED_OUT", end
        if job.error is not None or job.fate is Fault.FAILED:
            return "FAILED", end
        return "COMPLETED", end

    def _cost(self, endpoint: str, output: _Output) -> float:
        spec = self.endpoints[endpoint]
        tier = min((480, 720, 1080), key=lambda t: abs(t - min(output.width, output.height)))
        if spec.usd_per_video:
            return spec.usd_per_video.get(tier, 0.0)
        return round(spec.usd_per_second.get(tier, 0.0) * round(output.frames / output.fps), 4)

    def _render(self, output: _Output) -> bytes:
        key = (output.width, output.height, output.frames, output.fps, output.label, output.prompt)
        with self._render_lock:  # one encode per distinct video, and never two at once on a small box
            if key not in self._rendered:
                path = self.workdir / f"{uuid.uuid4()}.mp4"
                render_mp4(path, output.width, output.height, output.frames, output.fps, output.label, output.prompt)
                self._rendered[key] = path.read_bytes()
                path.unlink()
            return self._rendered[key]

    # --- worker-comfyui endpoints ----------------------------------------------------------------------------

    def _model_files(self) -> Any:
        if self._files is None:
            from router.workflows.models import ModelFiles

            self._files = ModelFiles.load()
        return self._files

    def _plan_comfy(self, given: dict[str, Any]) -> _ComfyPlan:
        """What worker-comfyui would make of this input: its error, or the video the graph renders."""
        workflow = given.get("workflow")
        if isinstance(workflow, str):  # worker-comfyui parses a JSON string too
            try:
                workflow = json.loads(workflow)
            except ValueError:
                return _ComfyPlan(error="Invalid 'workflow': not JSON")
        if not isinstance(workflow, dict):
            return _ComfyPlan(error="Missing 'workflow' parameter")
        images = given.get("images") or []
        if not isinstance(images, list) or not all(isinstance(i, dict) and "name" in i and "image" in i
                                                   for i in images):
            return _ComfyPlan(error="'images' must be a list of objects with 'name' and 'image' keys")
        sizes: dict[str, tuple[int, int] | None] = {}
        for item in images:
            encoded = str(item["image"])
            encoded = encoded.partition(",")[2] if encoded.startswith("data:") else encoded
            try:
                sizes[str(item["name"])] = _image_size(base64.b64decode(encoded, validate=True))
            except binascii.Error as exc:
                return _ComfyPlan(error="Failed to upload one or more input images",
                                  details=[f"Error decoding base64 for {item['name']}: {exc}"])
        result = default_schema().validate(workflow, files={INPUT_FOLDER: list(sizes)})
        if not result.ok:
            return _ComfyPlan(error=_validation_error(result))
        sampler = next((nid for nid, node in workflow.items() if node.get("class_type") in SAMPLERS), None)
        saves = [nid for nid in result.outputs if workflow[nid].get("class_type") == "SaveVideo"]
        if not saves:
            return _ComfyPlan(sampler=sampler)  # "success_no_images": what a VHS_VideoCombine graph gets
        video = GraphShapes(workflow, sizes.get).video(saves[0])
        if video is None:
            return _ComfyPlan(error="Job processing failed", details=[
                f"Workflow execution error: Node Type: SaveVideo, Node ID: {saves[0]}, Message: sandbox cannot "
                "work out the video's size, length and fps from this graph"])
        prefix = str(workflow[saves[0]].get("inputs", {}).get("filename_prefix") or "ComfyUI")
        prompt = next((str(node["inputs"]["text"]) for node in workflow.values()
                       if node.get("class_type") == "CLIPTextEncode"
                       and isinstance(node.get("inputs", {}).get("text"), str)), "")
        output = _Output(video.width, video.height, video.frames, video.fps, "runpod worker-comfyui", prompt)
        return _ComfyPlan(output=output, filename=f"{prefix.rpartition('/')[2]}_00001_.mp4", sampler=sampler,
                          model=graph_model(workflow, self._model_files()) if self.pace.render else None)

    def _comfy_failure(self, job: _Job) -> dict[str, Any]:
        """The handler's `error` at the top, the rest (`details`) as the output, as the SDK reports it."""
        if job.error is not None:
            failure: dict[str, Any] = {"error": job.error}
            if job.details:
                failure["output"] = {"details": job.details}
            return failure
        where = f"Node ID: {job.sampler}, " if job.sampler else ""
        return {"error": "Job processing failed", "output": {"details": [
            f"Workflow execution error: Node Type: KSampler, {where}Message: Allocation on device 0 would exceed "
            "allowed memory. (out of memory) (sandbox FAILED fault)"]}}

    def _with_comfy_output(self, job: _Job, view: dict[str, Any]) -> dict[str, Any]:
        """A finished comfy job's `output.images`; rendered here, outside the job lock, since encoding is slow."""
        if not job.comfy or view.get("status") != "COMPLETED":
            return view
        if job.output is None:
            return {**view, "output": {"status": "success_no_images", "images": []}}
        if self.comfy_output == "s3_url":
            item = {"filename": job.filename, "type": "s3_url", "data": f"{self.url}/outputs/{job.id}.mp4"}
        else:
            item = {"filename": job.filename, "type": "base64",
                    "data": base64.b64encode(self._render(job.output)).decode()}
        return {**view, "output": {"images": [item]}}

    # --- webhooks --------------------------------------------------------------------------------------------

    def _tick_forever(self) -> None:
        while not self._stopping.wait(0.02):
            due: list[tuple[_Job, dict[str, Any]]] = []
            with self._lock:
                now = self.clock()
                for job in list(self._jobs.values()):
                    if job.notified or job.webhook is None:
                        continue
                    view = self._view(job, now)
                    if view is not None and view["status"] in TERMINAL:
                        job.notified = True
                        due.append((job, view))
            # Outside the lock: a comfy output is rendered (and base64-encoded) into the body.
            due = [(job, self._with_comfy_output(job, view)) for job, view in due]
            for job, view in due:
                threading.Thread(target=self._notify, args=(job, view), daemon=True).start()

    def _notify(self, job: _Job, final: dict[str, Any]) -> None:
        assert job.webhook is not None
        fault: Fault | None = job.fate if job.fate in WEBHOOK_FAULTS else None
        fault = self.plan.next("webhook", WEBHOOK_FAULTS) or fault
        if fault is Fault.DELAYED_WEBHOOK and self._stopping.wait(self.plan.webhook_delay_s):
            return
        self._deliver(job.webhook, final)
        if fault is Fault.DUPLICATE_WEBHOOK:
            self._deliver(job.webhook, final)
        elif fault is Fault.OUT_OF_ORDER_WEBHOOK:
            stale: dict[str, Any] = {key: final[key] for key in ("id", "delayTime", "workerId") if key in final}
            self._deliver(job.webhook, {**stale, "status": "IN_PROGRESS"})

    def _deliver(self, url: str, body: dict[str, Any]) -> None:
        """POST the status object; RunPod retries a non-200 up to 2 more times, 10 s apart (send-requests.mdx)."""
        for attempt in range(3):
            try:
                status: int | None = httpx.post(url, json=body, timeout=5.0, verify=tls()).status_code
            except httpx.HTTPError:
                status = None
            self.webhooks.append(WebhookDelivery(url, body, status))
            if status == 200 or attempt == 2 or self._stopping.wait(self.webhook_retry_delay_s):
                return


@dataclass
class _ComfyPlan:
    error: str | None = None
    details: list[str] | None = None
    output: _Output | None = None
    filename: str = ""
    sampler: str | None = None
    model: str | None = None  # the model the graph loads (models.yaml), for the pace's render time


def _image_size(data: bytes) -> tuple[int, int] | None:
    """Unreadable bytes upload fine (worker-comfyui doesn't look); only the shapes then can't use the size."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            return image.size
    except OSError:
        return None


def _validation_error(result: Validation) -> str:
    """worker-comfyui's message for ComfyUI's 400 on /prompt: one line per node error entry."""
    lines = [f"Node {node_id} ({key}): {value}" for node_id, entry in result.node_errors.items()
             for key, value in entry.items()]
    if not lines and result.error is not None:
        lines.append(f"{result.error.get('message')}: {result.error.get('details')}")
    return "Workflow validation failed:\n" + "\n".join(f"• {line}" for line in lines)


def _int(text: str, default: int) -> int:
    try:
        return int(text)
    except ValueError:
        return default
