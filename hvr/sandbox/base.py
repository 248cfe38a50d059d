"""What every provider sandbox shares: a threaded HTTP server on loopback, a fault plan, and real MP4 outputs.

A sandbox is a state machine that follows its provider's real protocol closely enough that the provider's own
SDK works against it, pointed only by base URL. Faults are injected per call (`plan.queue(...)`, consumed in
order) or by rate (`plan.rates`), so a test can script "429 then success" as easily as a soak can ask for 5 % 5xx.
A `Pace` puts a sandbox in the embedded stack's modelled time.

`plan.overbill` makes a share of jobs bill, later, more than they reported when they finished (what reconciliation,
router.services.reconcile, is there to catch): `{"rate": 0.05, "factor": 1.3, "after_s": 60}` draws each new job with
probability `rate`, and once the job has been over for `after_s` seconds of the sandbox's clock its record says
`factor` times the GPU-seconds it reported at its end. The draws come from a generator of their own, seeded by the
plan's `seed`, so they don't move the fault draws, and the sandbox lists the jobs drawn (`overbilled`).
"""

from __future__ import annotations

import io
import json
import os
import random
import re
import shutil
import tempfile
import threading
import time
import wave
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

from hvr.loopback import LoopbackServer

if TYPE_CHECKING:
    from router.models.offer import Latency
    from router.policy.catalog import Catalog


class Fault(StrEnum):
    RATE_LIMIT = "rate_limit"  # 429 with Retry-After
    SERVER_ERROR = "server_error"  # 500/503
    TIMEOUT = "timeout"  # the request hangs past the client's timeout, then the connection drops
    ACCEPT_THEN_DROP = "accept_then_drop"  # the job is created, the response never arrives ("paid but unknown")
    STUCK = "stuck"  # the job never leaves the queue
    FAILED = "failed"  # the job ends in the provider's failed state
    CONTENT_FILTER = "content_filter"  # the provider's safety filter drops the output
    OUTPUT_EXPIRED = "output_expired"  # the output URL answers 403/404 by the time it is fetched
    DUPLICATE_WEBHOOK = "duplicate_webhook"  # the completion webhook is sent twice
    OUT_OF_ORDER_WEBHOOK = "out_of_order_webhook"  # a stale status webhook arrives after the final one
    DELAYED_WEBHOOK = "delayed_webhook"  # the completion webhook comes `FaultPlan.webhook_delay_s` late, after the poll


OVERBILL_FACTOR = 1.3
OVERBILL_AFTER_S = 60.0


@dataclass
class FaultPlan:
    """Faults for the next calls of a kind ("create", "get", "download", "webhook"…), then by rate."""

    scripted: dict[str, list[Fault]] = field(default_factory=dict)
    rates: dict[Fault, float] = field(default_factory=dict)
    seed: int = 0
    overbill: dict[str, float] = field(default_factory=dict)  # {"rate", "factor", "after_s"}: see the module's doc
    webhook_delay_s: float = 3.0  # wall seconds a DELAYED_WEBHOOK is held: longer than the scaled poll delays
    _rng: random.Random = field(init=False, repr=False)
    _overbill_rng: random.Random = field(init=False, repr=False)
    _lock: threading.Lock = field(init=False, repr=False, default_factory=threading.Lock)
    injected: Counter[Fault] = field(init=False, default_factory=Counter)  # what was done, scripted or drawn

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)
        self._overbill_rng = random.Random(f"overbill:{self.seed}")

    def overbilled(self) -> float | None:
        """For a new job: the factor its record's billed figure is revised by later, or None (no revision)."""
        with self._lock:
            rate = float(self.overbill.get("rate", 0.0))
            if rate > 0 and self._overbill_rng.random() < rate:
                return float(self.overbill.get("factor", OVERBILL_FACTOR))
        return None

    @property
    def overbill_after_s(self) -> float:
        """Seconds of the sandbox's clock after a job's end before its record shows the revised figure."""
        return float(self.overbill.get("after_s", OVERBILL_AFTER_S))

    def queue(self, call: str, *faults: Fault) -> None:
        with self._lock:
            self.scripted.setdefault(call, []).extend(faults)

    def next(self, call: str, allowed: tuple[Fault, ...]) -> Fault | None:
        """The fault for this call, if any; rate faults are drawn only among those this call can suffer."""
        with self._lock:
            pending = self.scripted.get(call)
            if pending:
                self.injected[pending[0]] += 1
                return pending.pop(0)
            for fault, rate in self.rates.items():
                if fault in allowed and self._rng.random() < rate:
                    self.injected[fault] += 1
                    return fault
        return None


RenderModel = Callable[[str, int, int, int], float | None]  # (model, width, height, frames) → modelled seconds


@dataclass(frozen=True)
class Pace:
    """A sandbox's time as the embedded stack's `--time-scale` runs it (modelled seconds per wall second).

    The router learns from billed units, and the GPU agent's sim engine reports modelled GPU-seconds while it
    waits only a fraction of them; a sandbox that reported the wall seconds it waited would bill and teach
    1,000 times less than the agent does. So a paced sandbox waits wall time and reports its provider's times
    (Replicate's `predict_time`, RunPod's `delayTime`/`executionTime`, ComfyUI's message timestamps) in
    modelled seconds, and, where `render` models the provider, runs each job for the modelled render time over
    the scale. Unpaced (a sandbox alone in a test) the scale is 1 and nothing is modelled: times are wall times.
    """

    time_scale: float = 1.0
    render: RenderModel | None = None

    def modelled(self, wall_s: float) -> float:
        return wall_s * self.time_scale

    def wall(self, modelled_s: float) -> float:
        return modelled_s / self.time_scale

    def render_s(self, model: str | None, width: int, height: int, frames: int) -> float | None:
        """Modelled seconds this provider takes to render; None where nothing models it."""
        if self.render is None or model is None:
            return None
        return self.render(model, width, height, frames)


def catalog_render_model(provider: str, catalog: Catalog | None = None) -> RenderModel:
    """Render seconds as the catalog's p50 latency says for `provider`'s offer of that model (overhead included).

    The sandboxes model the providers as the router's own catalog describes them, as the agent's sim engine models
    the studio's GPU by the studio's figures: truth = catalog, unless a test says otherwise."""
    from router.policy.catalog import cached_catalog

    latencies: dict[str, Latency] = {}
    for offer in (catalog or cached_catalog()).offers:
        if offer.provider.value == provider:
            latencies.setdefault(offer.model, offer.latency)

    def render_s(model: str, width: int, height: int, frames: int) -> float | None:
        latency = latencies.get(model)
        return None if latency is None else latency.compute_seconds(width, height, frames, p90=False)

    return render_s


def graph_model(graph: Mapping[str, Any], model_files: Any) -> str | None:
    """The model a ComfyUI graph runs, told by the diffusion weights or checkpoint it loads (`ModelFiles`)."""
    from router.workflows.models import ROLE_FOLDERS

    named = {value for node in graph.values() if isinstance(node, Mapping)
             for value in (node.get("inputs") or {}).values() if isinstance(value, str)}
    for model, roles in model_files.files.items():
        weights = {name for role, name in roles.items() if ROLE_FOLDERS[role] in ("diffusion_models", "checkpoints")}
        if weights & named:
            return str(model)
    return None


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]  # lower-case names
    body: bytes
    params: dict[str, str]

    def json(self) -> Any:
        return json.loads(self.body or b"null")


@dataclass
class Response:
    status: int = 200
    body: Any = None  # dict/list → JSON; bytes → as is
    headers: dict[str, str] = field(default_factory=dict)
    hang_s: float = 0.0  # sleep before answering (timeouts); with drop=True the connection closes unanswered
    drop: bool = False


Handler = Callable[[Request], Response]


class SandboxServer:
    """A threaded loopback HTTP server routing `(method, regex)` to handlers of a sandbox."""

    name = "sandbox"

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self._routes: list[tuple[str, re.Pattern[str], Handler]] = []
        self._host, self._port = host, port
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.calls: list[tuple[str, str]] = []  # (method, path) of every request, for tests to count
        # The pid names whose it is: a test run checks it left none of its own behind (tests/leaks.py).
        self.workdir = Path(tempfile.mkdtemp(prefix=f"hvr-{self.name}-{os.getpid()}-"))

    def route(self, method: str, pattern: str, handler: Handler) -> None:
        self._routes.append((method, re.compile(f"^{pattern}$"), handler))

    @property
    def url(self) -> str:
        assert self._server is not None, "start() first"
        return f"http://{self._host}:{self._server.server_port}"

    def start(self) -> SandboxServer:
        sandbox = self

        class _Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Headers and body go out as separate writes; without this each keep-alive request waits ~40 ms.
            disable_nagle_algorithm = True

            def _serve(self) -> None:
                sandbox._dispatch(self)

            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _serve

            def log_message(self, format: str, *args: Any) -> None:
                return None

        self._server = LoopbackServer((self._host, self._port), _Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name=self.name, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        # What it rendered was only ever served from here: a stopped sandbox leaves nothing in the temp folder.
        shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> SandboxServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _dispatch(self, http: BaseHTTPRequestHandler) -> None:
        parts = urlsplit(http.path)
        length = int(http.headers.get("content-length") or 0)
        body = http.rfile.read(length) if length else b""
        self.calls.append((http.command, parts.path))
        for method, pattern, handler in self._routes:
            match = pattern.match(parts.path)
            if match and method == http.command:
                request = Request(http.command, parts.path, parse_qs(parts.query),
                                  {k.lower(): v for k, v in http.headers.items()}, body, match.groupdict())
                try:
                    response = handler(request)
                except Exception as exc:  # a sandbox bug must look like a provider 500, not hang the client
                    response = Response(500, {"error": f"sandbox error: {exc}"})
                break
        else:
            response = Response(404, {"detail": "Not found."})
        _write(http, response)


def _write(http: BaseHTTPRequestHandler, response: Response) -> None:
    if response.hang_s:
        time.sleep(response.hang_s)
    if response.drop:
        http.close_connection = True
        return
    if isinstance(response.body, bytes):
        payload, content_type = response.body, response.headers.get("content-type", "application/octet-stream")
    else:
        payload = json.dumps(response.body).encode() if response.body is not None else b""
        content_type = response.headers.get("content-type", "application/json")
    http.send_response(response.status)
    for name, value in {**response.headers, "content-type": content_type}.items():
        http.send_header(name, value)
    http.send_header("content-length", str(len(payload)))
    http.end_headers()
    http.wfile.write(payload)


def silent_wav(seconds: float, rate: int = 16000) -> bytes:
    """A mono 16-bit WAV of silence: real audio for the paths that take speech (s2v inputs)."""
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(b"\x00\x00" * int(seconds * rate))
    return buffer.getvalue()


def render_mp4(path: Path, width: int, height: int, frames: int, fps: float, label: str, text: str) -> Path:
    """A real H.264 MP4 of the requested size from the sim encoder (so the router's probe has something true)."""
    from agent.engines.sim import encode_video

    path.parent.mkdir(parents=True, exist_ok=True)
    encode_video(path, width, height, frames, fps, label, text)
    return path
