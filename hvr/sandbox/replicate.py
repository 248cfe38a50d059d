"""Replicate's HTTP API on loopback, close enough that the official `replicate` SDK runs against it unchanged.

Follows docs/providers.md §1: `POST /v1/models/{owner}/{name}/predictions` and `POST /v1/predictions` (with `version`),
`GET /v1/predictions/{id}`, `POST /v1/predictions/{id}/cancel`, `GET /v1/predictions` (newest first, 100 a page,
absolute `next` URLs, `created_after`/`created_before`), `Prefer: wait[=n]`, Bearer auth, RFC 7807 errors (422 for
input that breaks the model's schema), 429 with `Retry-After`, `GET /v1/webhooks/default/secret`, and webhooks
signed with the Standard Webhooks scheme that honour `webhook_events_filter`. A prediction goes starting →
processing → succeeded / failed / canceled; its `output` is a URL on the sandbox serving a real MP4 of the size,
frame count and fps the model's inputs ask for (rendered on first fetch), removed after `output_ttl_s` like
Replicate's one hour (then `data_removed` is true and the file answers 404).

The prediction JSON echoes `webhook` and `webhook_events_filter` as captured Replicate webhook bodies do (the
OpenAPI schema leaves them out; the docs say a webhook body is the GET object). Fault call kinds:

    create      POST a prediction: RATE_LIMIT, SERVER_ERROR, TIMEOUT (nothing created), ACCEPT_THEN_DROP (created,
                the response never arrives)
    run         the new prediction's fate, drawn when it is created: STUCK, FAILED, OUTPUT_EXPIRED
    get         GET one / cancel / account / secret: RATE_LIMIT, SERVER_ERROR, TIMEOUT
    list        GET /v1/predictions: RATE_LIMIT, SERVER_ERROR, TIMEOUT
    download    the output file: OUTPUT_EXPIRED (from then on), SERVER_ERROR, TIMEOUT
    webhook     a completion webhook: DUPLICATE_WEBHOOK (same webhook-id twice), OUT_OF_ORDER_WEBHOOK (a stale
                `starting` body, with its own id, after the final one), DELAYED_WEBHOOK (held back
                `plan.webhook_delay_s`, so the poll sees the end first)

`plan.overbill` (hvr/sandbox/base.py): a drawn prediction's `metrics.predict_time` is `factor` times what it ran once
it has been over `after_s` seconds of `now()` (`advance()` moves it on); the predictions drawn are in `overbilled`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import json
import os
import queue
import re
import secrets
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import unquote_to_bytes, urlencode

import httpx

from hvr.sandbox.base import Fault, FaultPlan, Pace, Request, Response, SandboxServer, render_mp4
from router.providers.download import tls

PROBLEM = "application/problem+json"
HTTP_FAULTS = (Fault.RATE_LIMIT, Fault.SERVER_ERROR, Fault.TIMEOUT)
RUN_FAULTS = (Fault.STUCK, Fault.FAILED, Fault.OUTPUT_EXPIRED)
WEBHOOK_FAULTS = (Fault.DUPLICATE_WEBHOOK, Fault.OUT_OF_ORDER_WEBHOOK, Fault.DELAYED_WEBHOOK)
TERMINAL = frozenset({"succeeded", "failed", "canceled"})
EVENTS = frozenset({"start", "output", "logs", "completed"})
DEFAULT_EVENTS = frozenset({"output", "completed"})  # no filter: new outputs and completion (receive-webhook docs)
MAX_WAIT_S = 60  # `Prefer: wait` holds the request at most 60 s (§1.2)
PAGE_SIZE = 100
_ID_CHARS = "abcdefghijklmnopqrstuvwxyz0123456789"
_SIZE = re.compile(r"^(\d+)x(\d+)$")
_HEX64 = re.compile(r"^[0-9a-f]{64}$")


# --- model input schemas (docs/providers.md §1.7; fields marked "third-party" there are taken as reported) ------------


@dataclass(frozen=True)
class Field:
    kind: str  # "str", "uri", "int", "num", "bool", "enum"
    required: bool = False
    default: Any = None
    min: float | None = None
    max: float | None = None
    choices: tuple[str, ...] = ()


def _wan_fast(image: bool) -> dict[str, Field]:
    fields = {
        "prompt": Field("str", required=True),
        "num_frames": Field("int", default=81, min=81, max=100),
        "resolution": Field("enum", default="480p", choices=("480p", "720p")),
        "frames_per_second": Field("int", default=16, min=5, max=24),
        "go_fast": Field("bool", default=True),
        "sample_shift": Field("num", default=12, min=1, max=20),
        "seed": Field("int"),
    }
    if image:
        fields |= {"image": Field("uri", required=True), "interpolate_output": Field("bool", default=False)}
    else:
        fields["aspect_ratio"] = Field("enum", default="16:9", choices=("16:9", "9:16"))
    return fields


def _wan21_i2v(sizes: tuple[str, ...], frames_min: int, fast_mode: str, shift: float) -> dict[str, Field]:
    return {
        "prompt": Field("str", required=True),
        "image": Field("uri", required=True),
        "num_frames": Field("int", default=81, min=frames_min, max=100),
        "max_area": Field("enum", default=sizes[0], choices=sizes),
        "frames_per_second": Field("int", default=16, min=5, max=24),
        "fast_mode": Field("enum", default=fast_mode, choices=("Off", "Balanced", "Fast")),
        "sample_steps": Field("int", default=30, min=1, max=40),
        "sample_guide_scale": Field("num", default=5, min=0, max=10),
        "sample_shift": Field("num", default=shift, min=1, max=10),
        "seed": Field("int"),
        "lora_weights": Field("str"),
    }


SCHEMAS: dict[str, dict[str, Field]] = {
    "wan-video/wan-2.2-t2v-fast": _wan_fast(image=False),
    "wan-video/wan-2.2-i2v-fast": _wan_fast(image=True),
    "wavespeedai/wan-2.1-t2v-480p": {
        "prompt": Field("str", required=True),
        "num_frames": Field("int", default=81, min=5, max=100),
        "aspect_ratio": Field("enum", default="16:9", choices=("16:9", "9:16")),
        "frames_per_second": Field("int", default=16, min=5, max=24),
        "sample_steps": Field("int", default=30, min=1, max=40),
        "sample_guide_scale": Field("num", default=5, min=0, max=10),
        "sample_shift": Field("num", default=5, min=1, max=10),
        "seed": Field("int"),
    },
    "wavespeedai/wan-2.1-i2v-480p": _wan21_i2v(("832x480", "480x832"), 81, "Balanced", 3),
    "wavespeedai/wan-2.1-i2v-720p": _wan21_i2v(("1280x720", "720x1280"), 5, "Off", 5),
    "wan-video/wan-2.2-s2v": {
        "prompt": Field("str", required=True),
        "image": Field("uri", required=True),
        "audio": Field("uri", required=True),
    },
}
_TIERS = {"480p": (832, 480), "720p": (1280, 720)}


def version_id(model: str) -> str:
    """A stable 64-hex version id per model, as `POST /v1/predictions` `version` takes."""
    return hashlib.sha256(f"sandbox:{model}".encode()).hexdigest()


def _check(name: str, spec: Field, value: Any) -> str | None:
    if spec.kind in ("str", "uri"):
        if not isinstance(value, str):
            return f"Invalid type. Expected: string, given: {type(value).__name__}"
        if spec.kind == "uri" and not value.startswith(("http://", "https://", "data:")):
            return "Does not match format 'uri'"
        return None
    if spec.kind == "bool":
        return None if isinstance(value, bool) else "Invalid type. Expected: boolean"
    if spec.kind == "enum":
        allowed = ", ".join(f'"{c}"' for c in spec.choices)
        return None if value in spec.choices else f"{name} must be one of the following: {allowed}"
    integral = isinstance(value, int) or (isinstance(value, float) and value.is_integer())
    if isinstance(value, bool) or not isinstance(value, int | float) or (spec.kind == "int" and not integral):
        return f"Invalid type. Expected: {'integer' if spec.kind == 'int' else 'number'}"
    if spec.min is not None and value < spec.min:
        return f"Must be greater than or equal to {spec.min:g}"
    if spec.max is not None and value > spec.max:
        return f"Must be less than or equal to {spec.max:g}"
    return None


def validate_input(model: str, given: dict[str, Any]) -> tuple[dict[str, Any], list[dict[str, str]]]:
    """(input with defaults filled, invalid fields). Unknown keys pass through unused, as cog ignores them."""
    schema = SCHEMAS[model]
    merged = dict(given)
    invalid: list[dict[str, str]] = []
    for name, spec in schema.items():
        if name not in given or given[name] is None:
            if spec.required:
                invalid.append({"type": "required", "field": "input", "description": f"{name} is required"})
            elif spec.default is not None:
                merged[name] = spec.default
            continue
        problem = _check(name, spec, given[name])
        if problem:
            invalid.append({"type": "invalid", "field": f"input.{name}", "description": problem})
    return merged, invalid


# --- predictions --------------------------------------------------------------------------------------------


RUN_S = 0.15  # processing → terminal, where nothing models the render


@dataclass
class Timing:
    """How long each phase takes, in wall seconds. Fast by default; `hvr dev` may slow it down to look real."""

    start_s: float = 0.05  # starting → processing (cold boot)
    run_s: float | None = RUN_S  # processing → terminal; None: the pace's modelled render time, over its scale
    hang_s: float = 5.0  # how long a TIMEOUT fault holds the connection before dropping it
    retry_after_s: int = 30  # the Retry-After a RATE_LIMIT fault answers ("resets in ~30s" in the docs)
    webhook_retries: int = 3  # completion webhooks are retried on failure; intermediate ones never are
    webhook_retry_s: float = 0.05  # first retry delay, doubling


@dataclass
class Prediction:
    id: str
    model: str
    version: str
    input: dict[str, Any]
    created_at: float  # wall clock
    webhook: str | None
    events: frozenset[str]
    events_given: list[str] | None
    fault: Fault | None
    status: str = "starting"
    logs: str = ""
    output: str | None = None
    error: str | None = None
    started_at: float | None = None
    completed_at: float | None = None
    expired: bool = False
    done: threading.Event = field(default_factory=threading.Event)
    canceled: threading.Event = field(default_factory=threading.Event)
    render_lock: threading.Lock = field(default_factory=threading.Lock)
    plan: tuple[int, int, int, float] | None = None  # width, height, frames, fps of the output
    first_body: bytes = b""
    predict_s: float | None = None  # the modelled render time it ran for, when the pace models it
    overbill: float | None = None  # plan.overbill drew it: its record later bills this times its predict_time


@dataclass
class WebhookDelivery:
    url: str
    event: str
    headers: dict[str, str]
    body: bytes
    status: int | None = None  # the receiver's answer; None when it could not be reached
    error: str | None = None


def _iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _problem(status: int, title: str, detail: str, **extra: Any) -> Response:
    return Response(status, {"title": title, "detail": detail, "status": status, **extra}, {"content-type": PROBLEM})


class InputUnreadable(Exception):
    """An image or audio input the model cannot load: the prediction fails, as the real model's would."""


def _fetch(url: str) -> bytes:
    if url.startswith("data:"):
        header, _, payload = url.partition(",")
        try:
            return base64.b64decode(payload, validate=True) if header.endswith(";base64") else unquote_to_bytes(payload)
        except binascii.Error as exc:
            raise InputUnreadable(f"bad data URI: {exc}") from exc
    try:
        response = httpx.get(url, timeout=5.0, follow_redirects=True, verify=tls())
        response.raise_for_status()
    except httpx.HTTPError as exc:
        raise InputUnreadable(f"could not download {url[:80]}: {exc}") from exc
    return response.content


def _image_size(url: str) -> tuple[int, int]:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(_fetch(url))) as image:
            return image.size
    except (UnidentifiedImageError, OSError) as exc:
        raise InputUnreadable(f"cannot identify image file: {exc}") from exc


def _audio_seconds(url: str) -> float:
    import av

    try:
        with av.open(io.BytesIO(_fetch(url)), mode="r") as container:
            stream = container.streams.audio[0]
            if stream.duration is not None and stream.time_base is not None:
                return float(stream.duration * stream.time_base)
            return float(container.duration or 0) / 1_000_000
    except (av.FFmpegError, IndexError) as exc:
        raise InputUnreadable(f"cannot read audio: {exc}") from exc


def _orient(size: tuple[int, int], landscape: bool) -> tuple[int, int]:
    long, short = max(size), min(size)
    return (long, short) if landscape else (short, long)


def _wan_frames(count: int) -> int:
    return (count - 1) // 4 * 4 + 1  # WAN's VAE renders 4n+1 frames


def render_plan(model: str, given: dict[str, Any]) -> tuple[int, int, int, float]:
    """(width, height, frames, fps) this model renders for a validated input; reads image/audio where the real
    model takes its aspect or length from them."""
    if model == "wan-video/wan-2.2-s2v":
        width, height = _image_size(given["image"])
        frames = max(1, round(_audio_seconds(given["audio"]) * 16))
        return (*_orient(_TIERS["480p"], width >= height), frames, 16.0)
    fps = float(given["frames_per_second"])
    frames = _wan_frames(int(given["num_frames"]))
    if "max_area" in SCHEMAS[model]:
        _image_size(given["image"])
        match = _SIZE.match(given["max_area"])
        assert match is not None
        return int(match[1]), int(match[2]), frames, fps
    tier = _TIERS[given.get("resolution", "480p")]
    if "image" in SCHEMAS[model]:
        width, height = _image_size(given["image"])
        landscape = width >= height
    else:
        landscape = given["aspect_ratio"] == "16:9"
    return (*_orient(tier, landscape), frames, fps)


class ReplicateSandbox(SandboxServer):
    """Replicate on loopback. `tokens` are the API tokens it accepts; `plan` scripts faults."""

    name = "replicate"

    def __init__(self, tokens: tuple[str, ...] = ("r8_sandbox",), *, plan: FaultPlan | None = None,
                 timing: Timing | None = None, output_ttl_s: float = 3600.0, webhook_secret: str | None = None,
                 page_size: int = PAGE_SIZE, pace: Pace | None = None, host: str = "127.0.0.1",
                 port: int = 0) -> None:
        super().__init__(host, port)
        self.tokens = set(tokens)
        self.plan = plan or FaultPlan()
        self.timing = timing or Timing()
        self.pace = pace or Pace()
        self.output_ttl_s = output_ttl_s
        self.webhook_secret = webhook_secret or "whsec_" + base64.b64encode(os.urandom(32)).decode()
        self.page_size = page_size
        self.predictions: dict[str, Prediction] = {}
        self.overbilled: dict[str, float] = {}  # prediction id -> the factor plan.overbill revises its record by
        self.webhooks: list[WebhookDelivery] = []  # every delivery attempt, for tests
        self._lock = threading.Lock()
        self._offset_s = 0.0
        self._outbox: queue.Queue[tuple[Prediction, str, bytes, str] | None] = queue.Queue()
        self._held: list[threading.Timer] = []  # DELAYED_WEBHOOK completions, put on the outbox when they fire
        self._sender: threading.Thread | None = None
        self.route("POST", r"/v1/models/(?P<owner>[^/]+)/(?P<name>[^/]+)/predictions", self._create_for_model)
        self.route("POST", r"/v1/predictions", self._create_for_version)
        self.route("GET", r"/v1/predictions", self._list)
        self.route("GET", r"/v1/predictions/(?P<id>[a-z0-9]+)", self._get)
        self.route("POST", r"/v1/predictions/(?P<id>[a-z0-9]+)/cancel", self._cancel)
        self.route("GET", r"/v1/models/(?P<owner>[^/]+)/(?P<name>[^/]+)/versions/(?P<version>[0-9a-f]{64})",
                   self._version)
        self.route("GET", r"/v1/webhooks/default/secret", self._secret)
        self.route("GET", r"/v1/account", self._account)
        self.route("GET", r"/v1/stream/(?P<id>[a-z0-9]+)", self._stream)
        self.route("GET", r"/delivery/(?P<id>[a-z0-9]+)/output\.mp4", self._download)

    # --- time and lifecycle -------------------------------------------------------------------------------

    def now(self) -> float:
        """The sandbox's clock for output expiry; `advance()` moves it without waiting."""
        return time.time() + self._offset_s

    def advance(self, seconds: float) -> None:
        self._offset_s += seconds

    def start(self) -> ReplicateSandbox:
        super().start()
        self._sender = threading.Thread(target=self._send_webhooks, name="replicate-webhooks", daemon=True)
        self._sender.start()
        return self

    def __enter__(self) -> ReplicateSandbox:
        return self.start()

    def stop(self) -> None:
        for held in self._held:
            held.cancel()
        self._outbox.put(None)
        super().stop()

    def wait_idle(self, timeout_s: float = 10.0) -> bool:
        """True once every queued webhook has been delivered (or given up on)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._outbox.unfinished_tasks == 0 and not any(held.is_alive() for held in self._held):
                return True
            time.sleep(0.01)
        return False

    # --- HTTP handlers ------------------------------------------------------------------------------------

    def _authorized(self, request: Request) -> Response | None:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme in ("Bearer", "Token") and token.strip() in self.tokens:
            return None
        return _problem(401, "Unauthenticated", "You did not pass a valid authentication token")

    def _http_fault(self, call: str, allowed: tuple[Fault, ...] = HTTP_FAULTS) -> Response | None:
        return self._fault_response(self.plan.next(call, allowed))

    def _fault_response(self, fault: Fault | None) -> Response | None:
        if fault is Fault.RATE_LIMIT:
            seconds = self.timing.retry_after_s
            return Response(429, {"detail": f"Request was throttled. Your rate limit resets in ~{seconds}s.",
                                  "status": 429}, {"content-type": PROBLEM, "retry-after": str(seconds)})
        if fault is Fault.SERVER_ERROR:
            return _problem(500, "Internal Server Error", "Something went wrong on our end.")
        if fault is Fault.TIMEOUT:
            return Response(hang_s=self.timing.hang_s, drop=True)
        return None

    def _create_for_model(self, request: Request) -> Response:
        body = self._authorized(request) or self._json_body(request)
        if isinstance(body, Response):
            return body
        return self._create(request, body, f"{request.params['owner']}/{request.params['name']}", None)

    def _create_for_version(self, request: Request) -> Response:
        body = self._authorized(request) or self._json_body(request)
        if isinstance(body, Response):
            return body
        ref = body.get("version")
        if not isinstance(ref, str) or not ref:
            return _problem(422, "Input validation failed", "- version: version is required\n",
                            invalid_fields=[{"type": "required", "field": "version",
                                             "description": "version is required"}])
        model, _, pinned = ref.partition(":")
        if _HEX64.match(ref):  # a bare version id
            model = next((m for m in SCHEMAS if version_id(m) == ref), "")
            pinned = ref
        return self._create(request, body, model, pinned or None)

    @staticmethod
    def _json_body(request: Request) -> dict[str, Any] | Response:
        try:
            body = request.json()
        except ValueError:
            return _problem(400, "Bad request", "The request body is not valid JSON.")
        if not isinstance(body, dict):
            return _problem(400, "Bad request", "The request body must be a JSON object.")
        return body

    def _create(self, request: Request, body: dict[str, Any], model: str, pinned: str | None) -> Response:
        if model not in SCHEMAS or (pinned is not None and pinned != version_id(model)):
            return _problem(404, "Not found", "The requested resource could not be found.")
        fault = self.plan.next("create", (*HTTP_FAULTS, Fault.ACCEPT_THEN_DROP))
        refused = self._fault_response(fault)
        if refused:
            return refused  # nothing was created
        prediction_or_error = self._new_prediction(model, body)
        if isinstance(prediction_or_error, Response):
            return prediction_or_error
        prediction = prediction_or_error
        if fault is Fault.ACCEPT_THEN_DROP:
            return Response(drop=True)
        wait = _prefer_wait(request.headers.get("prefer", ""))
        if wait:
            prediction.done.wait(wait)
        with self._lock:
            payload = self._json(prediction)
        if wait and payload["status"] not in TERMINAL:
            payload["status"] = "starting"  # what Replicate answers when the wait runs out (SDK run.py)
        return Response(201, payload, {"location": payload["urls"]["get"]})

    def _new_prediction(self, model: str, body: dict[str, Any]) -> Prediction | Response:
        given = body.get("input")
        if not isinstance(given, dict):
            return _problem(422, "Input validation failed", "- input: Invalid type. Expected: object\n",
                            invalid_fields=[{"type": "invalid_type", "field": "input",
                                             "description": "Invalid type. Expected: object"}])
        merged, invalid = validate_input(model, given)
        webhook = body.get("webhook") or body.get("webhook_completed")
        events_given = body.get("webhook_events_filter")
        if webhook is not None and (not isinstance(webhook, str) or not webhook.startswith(("http://", "https://"))):
            invalid.append({"type": "format", "field": "webhook", "description": "Does not match format 'uri'"})
        if events_given is not None and (not isinstance(events_given, list) or not set(events_given) <= EVENTS):
            invalid.append({"type": "enum", "field": "webhook_events_filter",
                            "description": "webhook_events_filter items must be one of start, output, logs, completed"})
        if invalid:
            detail = "".join(f"- {item['field']}: {item['description']}\n" for item in invalid)
            return _problem(422, "Input validation failed", detail, invalid_fields=invalid)
        if body.get("webhook_completed") and not body.get("webhook"):
            events = frozenset({"completed"})  # the old field: completion only
        else:
            events = frozenset(events_given) if events_given else DEFAULT_EVENTS
        prediction = Prediction(
            id="".join(secrets.choice(_ID_CHARS) for _ in range(26)), model=model, version=version_id(model),
            input=given, created_at=time.time(), webhook=webhook, events=events, events_given=events_given,
            fault=self.plan.next("run", RUN_FAULTS), overbill=self.plan.overbilled(),
        )
        with self._lock:
            self.predictions[prediction.id] = prediction
            if prediction.overbill is not None:
                self.overbilled[prediction.id] = prediction.overbill
            prediction.first_body = json.dumps(self._json(prediction)).encode()
        self._emit(prediction, "start")
        threading.Thread(target=self._drive, args=(prediction, merged), name=f"replicate-{prediction.id}",
                         daemon=True).start()
        return prediction

    def _get(self, request: Request) -> Response:
        denied = self._authorized(request) or self._http_fault("get")
        if denied:
            return denied
        with self._lock:
            prediction = self.predictions.get(request.params["id"])
            if prediction is None:
                return _problem(404, "Not found", "Not found.")
            return Response(200, self._json(prediction))

    def _cancel(self, request: Request) -> Response:
        denied = self._authorized(request) or self._http_fault("get")
        if denied:
            return denied
        with self._lock:
            prediction = self.predictions.get(request.params["id"])
            if prediction is None:
                return _problem(404, "Not found", "Not found.")
            ended = prediction.status in TERMINAL
            if not ended:
                prediction.canceled.set()
                self._finish(prediction, "canceled", None, None)
            payload = self._json(prediction)
        if not ended:
            self._completed(prediction)
        return Response(200, payload)

    def _list(self, request: Request) -> Response:
        denied = self._authorized(request) or self._http_fault("list")
        if denied:
            return denied
        after, before = (_parse_time(request.query.get(k, [""])[0]) for k in ("created_after", "created_before"))
        offset = int(request.query.get("cursor", ["0"])[0] or 0)
        with self._lock:
            rows = sorted(self.predictions.values(), key=lambda p: p.created_at, reverse=True)
            rows = [p for p in rows if (after is None or p.created_at >= after)
                    and (before is None or p.created_at < before)]
            page = [self._json(p) for p in rows[offset:offset + self.page_size]]
        nxt = None
        if offset + self.page_size < len(rows):
            query = {k: v[0] for k, v in request.query.items() if k != "cursor"}
            nxt = f"{self.url}/v1/predictions?" + urlencode({**query, "cursor": offset + self.page_size})
        previous = None
        if offset:
            query = {k: v[0] for k, v in request.query.items() if k != "cursor"}
            previous = f"{self.url}/v1/predictions?" + urlencode({**query, "cursor": max(0, offset - self.page_size)})
        return Response(200, {"next": nxt, "previous": previous, "results": page})

    def _version(self, request: Request) -> Response:
        denied = self._authorized(request)
        if denied:
            return denied
        model = f"{request.params['owner']}/{request.params['name']}"
        if model not in SCHEMAS or request.params["version"] != version_id(model):
            return _problem(404, "Not found", "Not found.")
        schema = {"openapi": "3.0.2", "components": {"schemas": {"Output": {"type": "string", "format": "uri"}}}}
        return Response(200, {"id": version_id(model), "created_at": "2025-08-01T00:00:00.000000Z",
                              "cog_version": "0.14.0", "openapi_schema": schema})

    def _secret(self, request: Request) -> Response:
        denied = self._authorized(request) or self._http_fault("get")
        return denied or Response(200, {"key": self.webhook_secret})

    def _account(self, request: Request) -> Response:
        denied = self._authorized(request) or self._http_fault("get")
        return denied or Response(200, {"type": "user", "username": "sandbox", "name": "Sandbox",
                                        "github_url": None})

    def _stream(self, request: Request) -> Response:
        """Server-sent events for one prediction: held until it ends, then its output (or error) and `done`."""
        prediction = self.predictions.get(request.params["id"])
        if prediction is None:
            return _problem(404, "Not found", "Not found.")
        prediction.done.wait(MAX_WAIT_S)
        with self._lock:
            if prediction.status == "succeeded" and prediction.output:
                events = f"event: output\nid: 1\ndata: {prediction.output}\n\n"
            elif prediction.status == "failed":
                events = f"event: error\nid: 1\ndata: {json.dumps({'detail': prediction.error})}\n\n"
            else:
                events = ""
        events += "event: done\nid: 2\ndata: {}\n\n"
        return Response(200, events.encode(), {"content-type": "text/event-stream", "cache-control": "no-store"})

    def _download(self, request: Request) -> Response:
        prediction = self.predictions.get(request.params["id"])
        fault = self.plan.next("download", (Fault.OUTPUT_EXPIRED, Fault.SERVER_ERROR, Fault.TIMEOUT))
        if fault is Fault.OUTPUT_EXPIRED and prediction is not None:
            prediction.expired = True
        refused = self._fault_response(fault)
        if refused:
            return refused
        if prediction is None or prediction.plan is None or self._removed(prediction):
            return Response(404, b"Not Found", {"content-type": "text/plain"})
        return Response(200, self._render(prediction).read_bytes(), {"content-type": "video/mp4"})

    # --- the prediction's life ----------------------------------------------------------------------------

    def _drive(self, prediction: Prediction, merged: dict[str, Any]) -> None:
        if prediction.fault is Fault.STUCK:
            return  # stays `starting` until canceled
        if prediction.canceled.wait(self.timing.start_s):
            return
        with self._lock:
            if prediction.status in TERMINAL:
                return
            prediction.status, prediction.started_at = "processing", time.time()
            if "seed" in SCHEMAS[prediction.model]:
                seed = merged.get("seed")
                prediction.logs += f"Using seed: {seed if seed is not None else secrets.randbelow(2**31)}\n"
        self._emit(prediction, "logs")
        try:
            plan = render_plan(prediction.model, merged)
        except InputUnreadable as exc:
            self._end(prediction, "failed", None, str(exc))
            return
        run_s = self.timing.run_s
        modelled = self.pace.render_s(prediction.model, *plan[:3]) if run_s is None else None
        if run_s is None:
            run_s = self.pace.wall(modelled) if modelled is not None else RUN_S
        if prediction.canceled.wait(run_s):
            return
        prediction.predict_s = modelled
        if prediction.fault is Fault.FAILED:
            self._end(prediction, "failed", None, "CUDA out of memory. Tried to allocate 2.00 GiB")
            return
        prediction.plan = plan
        width, height, frames, fps = plan
        with self._lock:
            if prediction.status in TERMINAL:
                return
            prediction.logs += f"Generating {frames} frames at {width}x{height}, {fps:g} fps\n100%|##########| " \
                               f"{frames}/{frames}\n"
            # The file exists a moment before the prediction ends: GET may show `processing` with output.
            prediction.output = f"{self.url}/delivery/{prediction.id}/output.mp4"
        self._emit(prediction, "output")
        self._end(prediction, "succeeded", prediction.output, None)
        if prediction.fault is Fault.OUTPUT_EXPIRED:
            prediction.expired = True

    def _end(self, prediction: Prediction, status: str, output: str | None, error: str | None) -> None:
        with self._lock:
            if prediction.status in TERMINAL:
                return  # canceled meanwhile
            self._finish(prediction, status, output, error)
        self._completed(prediction)

    def _finish(self, prediction: Prediction, status: str, output: str | None, error: str | None) -> None:
        """Under the lock: the terminal state, once."""
        prediction.status, prediction.output, prediction.error = status, output, error
        prediction.completed_at = time.time()
        prediction.done.set()

    def _removed(self, prediction: Prediction) -> bool:
        if prediction.expired:
            return True
        return prediction.completed_at is not None and self.now() > prediction.completed_at + self.output_ttl_s

    def _render(self, prediction: Prediction) -> Path:
        path = self.workdir / f"{prediction.id}.mp4"
        with prediction.render_lock:
            if not path.exists():
                assert prediction.plan is not None
                width, height, frames, fps = prediction.plan
                partial = path.with_suffix(".part.mp4")
                render_mp4(partial, width, height, frames, fps, prediction.model, str(prediction.input.get("prompt")))
                partial.replace(path)
        return path

    def _json(self, prediction: Prediction) -> dict[str, Any]:
        """The prediction object (docs/providers.md §1.3), as GET, list and webhooks show it. Under the lock."""
        removed = self._removed(prediction)
        metrics: dict[str, float] = {}
        if prediction.completed_at is not None:
            # In modelled seconds: wall seconds times the pace's scale, and a modelled render exactly its modelled
            # time (the wall-clock timestamps above stay wall-clock).
            modelled = self.pace.modelled
            metrics["total_time"] = round(modelled(prediction.completed_at - prediction.created_at), 6)
            if prediction.started_at is not None:
                predict = prediction.predict_s
                if predict is None:
                    predict = modelled(prediction.completed_at - prediction.started_at)
                if prediction.overbill is not None and \
                        self.now() >= prediction.completed_at + self.plan.overbill_after_s:
                    predict *= prediction.overbill  # the bill revised later
                metrics["predict_time"] = round(predict, 6)
                metrics["total_time"] = round(modelled(prediction.started_at - prediction.created_at) + predict, 6)
        base = f"{self.url}/v1/predictions/{prediction.id}"
        data: dict[str, Any] = {
            "id": prediction.id, "model": prediction.model, "version": prediction.version,
            "input": {} if removed else prediction.input, "logs": "" if removed else prediction.logs,
            "output": None if removed else prediction.output, "data_removed": removed, "error": prediction.error,
            "status": prediction.status, "source": "api", "created_at": _iso(prediction.created_at),
            "started_at": _iso(prediction.started_at), "completed_at": _iso(prediction.completed_at),
            "metrics": metrics,
            "urls": {"get": base, "cancel": f"{base}/cancel", "stream": f"{self.url}/v1/stream/{prediction.id}"},
        }
        if prediction.webhook:
            data["webhook"] = prediction.webhook
            if prediction.events_given is not None:
                data["webhook_events_filter"] = prediction.events_given
        return data

    # --- webhooks -----------------------------------------------------------------------------------------

    def _emit(self, prediction: Prediction, event: str, body: bytes | None = None) -> None:
        if not prediction.webhook or event not in prediction.events:
            return
        if body is None:
            with self._lock:
                body = json.dumps(self._json(prediction)).encode()
        self._outbox.put((prediction, event, body, "msg_" + secrets.token_hex(12)))

    def _completed(self, prediction: Prediction) -> None:
        if not prediction.webhook or "completed" not in prediction.events:
            return
        with self._lock:
            body = json.dumps(self._json(prediction)).encode()
        msg_id = "msg_" + secrets.token_hex(12)
        fault = self.plan.next("webhook", WEBHOOK_FAULTS)
        if fault is Fault.DELAYED_WEBHOOK:
            held = threading.Timer(self.plan.webhook_delay_s, self._outbox.put,
                                   args=((prediction, "completed", body, msg_id),))
            held.daemon = True
            self._held.append(held)
            held.start()
            return
        self._outbox.put((prediction, "completed", body, msg_id))
        if fault is Fault.DUPLICATE_WEBHOOK:
            self._outbox.put((prediction, "completed", body, msg_id))
        elif fault is Fault.OUT_OF_ORDER_WEBHOOK:
            self._outbox.put((prediction, "start", prediction.first_body, "msg_" + secrets.token_hex(12)))

    def _send_webhooks(self) -> None:
        from standardwebhooks.webhooks import Webhook

        signer = Webhook(self.webhook_secret)
        with httpx.Client(timeout=5.0, follow_redirects=False, verify=tls()) as http:
            while True:
                item = self._outbox.get()
                if item is None:
                    self._outbox.task_done()
                    return
                prediction, event, body, msg_id = item
                tries = 1 + (self.timing.webhook_retries if event == "completed" else 0)
                for attempt in range(tries):
                    if attempt:
                        time.sleep(self.timing.webhook_retry_s * 2 ** (attempt - 1))
                    if self._deliver(http, signer, prediction, event, body, msg_id):
                        break
                self._outbox.task_done()

    def _deliver(self, http: httpx.Client, signer: Any, prediction: Prediction, event: str, body: bytes,
                 msg_id: str) -> bool:
        stamp = datetime.fromtimestamp(int(time.time()), UTC)
        headers = {"content-type": "application/json", "webhook-id": msg_id,
                   "webhook-timestamp": str(int(stamp.timestamp())),
                   "webhook-signature": signer.sign(msg_id, stamp, body.decode())}
        assert prediction.webhook is not None
        delivery = WebhookDelivery(prediction.webhook, event, headers, body)
        self.webhooks.append(delivery)
        try:
            response = http.post(prediction.webhook, content=body, headers=headers)
        except httpx.HTTPError as exc:
            delivery.error = str(exc)
            return False
        delivery.status = response.status_code
        return 200 <= response.status_code < 300  # a redirect counts as a failure


def _prefer_wait(header: str) -> float:
    """Seconds a `Prefer: wait` / `Prefer: wait=n` header asks to hold the request (0 without one)."""
    for part in header.split(","):
        name, _, value = part.strip().partition("=")
        if name.strip().lower() == "wait":
            try:
                return float(min(MAX_WAIT_S, max(1, int(value)))) if value else float(MAX_WAIT_S)
            except ValueError:
                return float(MAX_WAIT_S)
    return 0.0


def _parse_time(text: str) -> float | None:
    if not text:
        return None
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).timestamp()
