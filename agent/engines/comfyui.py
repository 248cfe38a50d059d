"""The comfyui engine: queue the job's workflow on a ComfyUI (HTTP + WebSocket, docs/providers.md §4) and fetch its MP4.

Each job's prompt id is derived from its attempt id and sent as ComfyUI's client-chosen `prompt_id` (with the
attempt id in `extra_data` too, for builds that ignore it), so an agent that restarts mid-render finds the prompt
again — queued, running or finished — and follows it instead of rendering twice. The WebSocket is opened before
the prompt is queued, so no message is missed; when it is quiet the engine polls `/history` and `/queue`, so a
dropped socket costs latency, never the job.

GPU-seconds are what ComfyUI's own history stamps say (execution_start to the last message), which also holds for a
prompt that ran while the agent was down. VRAM needs come from the router's catalog (the local offers' `vram_mb`
at their reference size) and are checked against `/system_stats` before a job is accepted.
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
from websockets.exceptions import WebSocketException
from websockets.sync.client import ClientConnection, connect

from agent.engines.base import Engine, EngineCancelled, EngineError, ProgressFn, RenderResult
from agent.schemas import CreateJobRequest, Vram
from router.media.camera_render import CameraRenderError, RenderPlan, find_plan, render_mp4
from router.models.common import ProviderKind
from router.policy.catalog import DEFAULT_CATALOG, load_catalog
from router.providers.download import UnsafeDownload, fetch_bytes
from router.workflows import INPUT_FILES, ModelFiles, required_roles, supported_pairs
from router.workflows.models import ROLE_FOLDERS
from router.workflows.schema import Validation

log = logging.getLogger("hvr.agent.comfyui")

_NAMESPACE = uuid.UUID("5b0f4c39-55b4-4b8e-9a53-0c7d3c4f1a10")
_MB = 1024 * 1024
SAMPLERS = frozenset({"KSampler", "KSamplerAdvanced", "SamplerCustomAdvanced", "SamplerCustom"})
VIDEO_SUFFIXES = (".mp4", ".webm", ".mkv", ".mov")
# Share of a model's catalog VRAM figure that grows with the frame area (activations); the rest is weights.
# An estimate: the catalog gives one figure per model, at its reference size.
ACTIVATION_SHARE = 0.25
# The ComfyUI folder each loader lists in /object_info: how the engine learns which model files are present.
FOLDER_LOADERS = {
    "diffusion_models": ("UNETLoader", "unet_name"),
    "text_encoders": ("CLIPLoader", "clip_name"),
    "vae": ("VAELoader", "vae_name"),
    "clip_vision": ("CLIPVisionLoader", "clip_name"),
    "audio_encoders": ("AudioEncoderLoader", "audio_encoder_name"),
    "model_patches": ("ModelPatchLoader", "name"),
    "checkpoints": ("CheckpointLoaderSimple", "ckpt_name"),
    "animatediff_models": ("ADE_LoadAnimateDiffModel", "model_name"),
}
MAX_INPUT_BYTES = 512 * _MB
CANCEL_WAIT_S = 10.0
RUNNABLE_TTL_S = 30.0  # the router asks on every health check; the files and the card change far less often


@dataclass(frozen=True)
class _VramFigure:
    mb: int
    ref_pixels: int

    def need(self, width: int, height: int) -> int:
        scale = (width * height) / self.ref_pixels
        return math.ceil(self.mb * (1 - ACTIVATION_SHARE + ACTIVATION_SHARE * scale))


@dataclass(frozen=True)
class _Found:
    prompt_id: str
    state: str  # "pending", "running" or "done"
    entry: dict[str, Any] | None = None


class ComfyUIEngine(Engine):
    name = "comfyui"

    def __init__(
        self,
        base_url: str,
        models_file: Path | None = None,
        *,
        catalog_file: Path = DEFAULT_CATALOG,
        poll_s: float = 1.0,
        timeout_s: float = 30.0,
        allow_loopback_inputs: bool = False,
        runnable_ttl_s: float = RUNNABLE_TTL_S,
    ) -> None:
        """`allow_loopback_inputs`: input URLs may be literal loopback (the embedded stack's S3; tests).
        `runnable_ttl_s`: how long the runnable models are cached (a test changing the card shortens it)."""
        self._base = base_url.rstrip("/")
        self._runnable_ttl_s = runnable_ttl_s
        self._allow_loopback_inputs = allow_loopback_inputs
        self._models = ModelFiles.load(models_file)
        offers = [o for o in load_catalog(catalog_file).offers if o.provider is ProviderKind.LOCAL]
        self._vram = {o.model: _VramFigure(o.vram_mb, o.latency.ref_width * o.latency.ref_height)
                      for o in offers if o.vram_mb}
        # The hardware fit where the catalog states one: the least a render runs in, offloading included (a card
        # below the recommendation still runs the model, slower), rather than the recommendation.
        self._fit = {o.model: o.vram for o in offers if o.vram is not None}
        self._latency = {o.model: o.latency for o in offers}
        self._http = httpx.Client(base_url=self._base, timeout=httpx.Timeout(timeout_s, connect=5.0))
        self._poll_s = poll_s
        self._lock = threading.Lock()
        self._stats: tuple[float, dict[str, Any] | None] = (0.0, None)
        self._runnable: tuple[float, dict[str, list[str]]] | None = None

    # -- what the agent asks outside a render -------------------------------------------------------------

    def estimate_gpu_seconds(self, request: CreateJobRequest) -> float:
        latency = self._latency.get(request.model)
        if latency is None:
            raise EngineError(f"no catalog figures for model {request.model!r}")
        spec = request.spec
        return latency.compute_seconds(spec.width, spec.height, spec.frames, p90=False)

    def vram(self) -> Vram:
        device = self._device(max_age_s=2.0)
        if device is None:
            return Vram(total_mb=0, free_mb=0)
        return Vram(total_mb=int(device["vram_total"]) // _MB, free_mb=int(device["vram_free"]) // _MB)

    def _least_mb(self, model: str, width: int | None = None, height: int | None = None) -> int | None:
        """The least VRAM `model` runs in (at that size; at any size where none is given), offloading allowed."""
        fit = self._fit.get(model)
        if fit is not None:
            tiers = [fit.tier(min(width, height))] if width and height else list(fit.tiers.values())
            return min(t.offload_min_mb or t.min_mb for t in tiers)
        figure = self._vram.get(model)
        if figure is None:
            return None
        return figure.need(width, height) if width and height else figure.mb

    def refusal(self, request: CreateJobRequest) -> str | None:
        need = self._least_mb(request.model, request.spec.width, request.spec.height)
        device = self._device(max_age_s=0.0) if need is not None else None
        if need is None or device is None:
            return None  # no figure to check, or ComfyUI unreachable: the render will say what is wrong
        total = int(device["vram_total"]) // _MB
        if need <= total:
            return None
        return (f"insufficient VRAM: {request.model} at {request.spec.width}x{request.spec.height} needs about "
                f"{need} MB, the GPU ({device.get('name', 'unknown')}) has {total} MB")

    def runnable_models(self) -> dict[str, list[str]]:
        """Models (and their modes) whose files ComfyUI lists and whose VRAM need at the catalog's reference
        size fits the card; cached, as the router asks on every health check."""
        now = time.monotonic()
        with self._lock:
            if self._runnable is not None and now - self._runnable[0] < self._runnable_ttl_s:
                return self._runnable[1]
        device = self._device(max_age_s=2.0)
        total = int(device["vram_total"]) // _MB if device else 0
        present = self._present_files()
        runnable: dict[str, list[str]] = {}
        for model, mode in supported_pairs():
            least = self._least_mb(model)
            fits = least is None or least <= total
            roles = required_roles(model, mode)
            if fits and all(self._models.has(model, r) and self._models.file(model, r) in present.get(
                    ROLE_FOLDERS[r], ()) for r in roles):
                runnable.setdefault(model, []).append(mode.value)
        with self._lock:
            self._runnable = (now, runnable)
        return runnable

    def _device(self, max_age_s: float) -> dict[str, Any] | None:
        with self._lock:
            fetched_at, stats = self._stats
        if stats is None or time.monotonic() - fetched_at > max_age_s:
            try:
                response = self._http.get("/system_stats", timeout=5.0)
                response.raise_for_status()
                stats = response.json()
            except (httpx.HTTPError, ValueError) as exc:
                log.warning("ComfyUI /system_stats failed: %s", exc)
                return None
            with self._lock:
                self._stats = (time.monotonic(), stats)
        devices = stats.get("devices") or []
        return devices[0] if devices else None

    def _present_files(self) -> dict[str, set[str]]:
        present: dict[str, set[str]] = {}
        for folder, (class_type, input_name) in FOLDER_LOADERS.items():
            try:
                response = self._http.get(f"/object_info/{class_type}", timeout=10.0)
                response.raise_for_status()
                info = response.json().get(class_type) or {}
            except (httpx.HTTPError, ValueError):
                info = {}
            present[folder] = _combo_values((info.get("input") or {}).get("required", {}).get(input_name))
        return present

    # -- rendering -----------------------------------------------------------------------------------------

    def render(
        self, request: CreateJobRequest, out_path: Path, progress: ProgressFn, cancel: threading.Event
    ) -> RenderResult:
        if request.workflow is None:
            raise EngineError("the comfyui engine runs a workflow graph and this job has none "
                              "(the router builds one for each local offer and mode)")
        unknown = sorted(set(request.inputs) - set(INPUT_FILES))
        if unknown:
            raise EngineError(f"unknown job inputs {unknown} (known: {sorted(INPUT_FILES)})")
        files: dict[str, bytes | str] = {INPUT_FILES[role]: url for role, url in request.inputs.items()}
        return self.run(request.attempt_id, request.workflow, files, out_path, progress, cancel)

    def run(
        self, key: str, graph: Mapping[str, Any], files: Mapping[str, bytes | str], out_path: Path,
        progress: ProgressFn, cancel: threading.Event,
    ) -> RenderResult:
        """Queue `graph` (or find it queued under `key`), follow it to the end and write its video to `out_path`.
        `files` maps the graph's input file names to their bytes or a URL to fetch them from."""
        prompt_id = prompt_id_for(key)
        client_id = f"hvr-{prompt_id}"
        try:
            with self._socket(client_id) as ws:
                found = self._find(prompt_id, key)
                if found is None or found.state != "done":
                    if found is None:
                        staged = self._stage_inputs(graph, files, prompt_id)
                        prompt_id = self._submit(staged, client_id, prompt_id, key)
                    else:
                        prompt_id = found.prompt_id
                        log.info("re-attached to ComfyUI prompt %s (%s) for %s", prompt_id, found.state, key)
                    entry = self._follow(ws, prompt_id, graph, progress, cancel)
                else:
                    entry = found.entry or {}
        except (httpx.HTTPError, ValueError) as exc:  # ValueError: a body that isn't the JSON ComfyUI sends
            # What the GPU did before the failure is unknown here; ComfyUI's history would say, but it is unreachable.
            raise EngineError(f"ComfyUI at {self._base} failed: {type(exc).__name__}: {exc}") from exc
        gpu_seconds = _gpu_seconds(entry)
        self._raise_for_failure(entry, gpu_seconds, cancel)
        self._download_output(entry, out_path, gpu_seconds)
        return RenderResult(gpu_seconds=gpu_seconds)

    @contextmanager
    def _socket(self, client_id: str) -> Iterator[ClientConnection | None]:
        parts = urlsplit(self._base)
        scheme = "wss" if parts.scheme == "https" else "ws"
        url = f"{scheme}://{parts.netloc}{parts.path}/ws?clientId={client_id}"
        with ExitStack() as stack:
            try:
                ws = stack.enter_context(connect(url, open_timeout=10, proxy=None, max_size=64 * _MB,
                                                 compression=None))
            except (OSError, WebSocketException) as exc:
                log.warning("ComfyUI WebSocket %s unavailable (%s); following by polling", url, exc)
                ws = None
            yield ws

    def _find(self, prompt_id: str, key: str) -> _Found | None:
        """The prompt for this job if ComfyUI has it: by id, else by the key in its extra_data."""
        history = self._get("/history/" + prompt_id)
        if history.get(prompt_id):
            return _Found(prompt_id, "done", history[prompt_id])
        queue = self._get("/queue")
        for state, items in (("running", queue.get("queue_running") or []),
                             ("pending", queue.get("queue_pending") or [])):
            for item in items:
                if len(item) > 3 and (item[1] == prompt_id or (item[3] or {}).get("hvr_key") == key):
                    return _Found(str(item[1]), state)
        for found_id, entry in self._get("/history", params={"max_items": 64}).items():
            prompt = entry.get("prompt") or []
            if len(prompt) > 3 and (prompt[3] or {}).get("hvr_key") == key:
                return _Found(found_id, "done", entry)
        return None

    def _stage_inputs(self, graph: Mapping[str, Any], files: Mapping[str, bytes | str],
                      prompt_id: str) -> dict[str, Any]:
        """Upload each input under a name of this prompt's (two jobs may share a ComfyUI) and point the graph's
        references to it; a graph loading one of the router's input names the job lacks is an error here. A graph
        that carries a camera render plan (Uni3C) gets its render made here from the job's image, unless sent."""
        staged: dict[str, Any] = json.loads(json.dumps(graph))
        uploaded: dict[str, str] = {}
        sources = {placeholder: source if isinstance(source, bytes) else _download(source, self._allow_loopback_inputs)
                   for placeholder, source in files.items()}
        plan = _render_plan(staged)
        if plan is not None and INPUT_FILES["camera_render"] not in sources:
            sources[INPUT_FILES["camera_render"]] = _camera_render(sources, plan)
        for placeholder, data in sources.items():
            name = f"{prompt_id[:13]}-{placeholder}"
            response = self._http.post("/upload/image", files={"image": (name, data)},
                                       data={"overwrite": "true", "type": "input"})
            response.raise_for_status()
            answer = response.json()
            uploaded[placeholder] = f"{answer['subfolder']}/{answer['name']}" if answer.get("subfolder") \
                else answer["name"]
        placeholders = set(INPUT_FILES.values())
        missing: set[str] = set()
        for node in staged.values():
            inputs = node.get("inputs") or {}
            for input_name, value in inputs.items():
                if not isinstance(value, str):
                    continue
                if value in uploaded:
                    inputs[input_name] = uploaded[value]
                elif value in placeholders:
                    missing.add(value)
        if missing:
            roles = [role for role, name in INPUT_FILES.items() if name in missing]
            raise EngineError(f"the workflow loads {sorted(missing)} but the job has no {roles} input")
        return staged

    def _submit(self, graph: dict[str, Any], client_id: str, prompt_id: str, key: str) -> str:
        body = {"prompt": graph, "client_id": client_id, "prompt_id": prompt_id, "extra_data": {"hvr_key": key}}
        response = self._http.post("/prompt", json=body)
        if response.status_code == 400:
            raise EngineError(f"ComfyUI refused the workflow: {_describe_refusal(response)}")
        response.raise_for_status()
        answer = response.json()
        if answer.get("node_errors"):
            log.warning("ComfyUI queued %s with errors in some branches: %s", prompt_id, answer["node_errors"])
        return str(answer.get("prompt_id") or prompt_id)

    def _follow(self, ws: ClientConnection | None, prompt_id: str, graph: Mapping[str, Any],
                progress: ProgressFn, cancel: threading.Event) -> dict[str, Any]:
        tracker = _Progress(graph, progress)
        while True:
            if cancel.is_set():
                raise self._cancel(prompt_id)
            message = self._next_message(ws)
            if message is _CLOSED:
                ws = None
                continue
            if message is None:  # quiet: the socket may have missed the end, so ask
                entry = self._get("/history/" + prompt_id).get(prompt_id)
                if entry:
                    return dict(entry)
                continue
            data = message.get("data") or {}
            if data.get("prompt_id") != prompt_id:
                continue
            kind = message.get("type")
            if kind == "progress":
                tracker.step(str(data.get("node")), data.get("value"), data.get("max"))
            elif kind == "executing" and data.get("node") is not None:
                tracker.executing(str(data["node"]))
            elif kind == "executing":
                entry = self._await_history(prompt_id)
                if entry is not None:
                    return entry

    def _next_message(self, ws: ClientConnection | None) -> Any:
        """A decoded JSON message; None when nothing came in a poll interval; _CLOSED when the socket died."""
        if ws is None:
            time.sleep(self._poll_s)
            return None
        try:
            raw = ws.recv(timeout=self._poll_s)
        except TimeoutError:
            return None
        except WebSocketException:
            log.warning("ComfyUI WebSocket closed; following by polling")
            return _CLOSED
        if not isinstance(raw, str):
            return None  # a binary preview frame
        try:
            message = json.loads(raw)
        except ValueError:
            return None
        return message if isinstance(message, dict) else None

    def _await_history(self, prompt_id: str) -> dict[str, Any] | None:
        # ComfyUI writes history before `executing: null`; a short retry covers a proxy reordering them.
        for _ in range(5):
            entry = self._get("/history/" + prompt_id).get(prompt_id)
            if entry:
                return dict(entry)
            time.sleep(0.1)
        return None

    def _cancel(self, prompt_id: str) -> EngineCancelled:
        if self.shutting_down:
            # The agent is stopping: ComfyUI keeps the prompt, and the next start finds it again by id.
            return EngineCancelled(gpu_seconds=0.0)
        deadline = time.monotonic() + CANCEL_WAIT_S
        while time.monotonic() < deadline:
            queue = self._get("/queue")
            if any(item[1] == prompt_id for item in queue.get("queue_pending") or []):
                self._http.post("/queue", json={"delete": [prompt_id]}).raise_for_status()
            elif any(item[1] == prompt_id for item in queue.get("queue_running") or []):
                self._http.post("/interrupt", json={"prompt_id": prompt_id}).raise_for_status()
            else:
                break
            time.sleep(0.1)
        entry = self._get("/history/" + prompt_id).get(prompt_id) or {}
        return EngineCancelled(gpu_seconds=_gpu_seconds(entry))

    def _raise_for_failure(self, entry: Mapping[str, Any], gpu_seconds: float, cancel: threading.Event) -> None:
        status = entry.get("status") or {}
        if status.get("status_str", "success") == "success":
            return
        messages = dict((m[0], m[1]) for m in status.get("messages") or [] if len(m) == 2)
        if "execution_error" in messages:
            error = messages["execution_error"]
            raise EngineError(
                f"ComfyUI execution error in node {error.get('node_id')} ({error.get('node_type')}): "
                f"{error.get('exception_type')}: {error.get('exception_message')}", gpu_seconds=gpu_seconds)
        if "execution_interrupted" in messages:
            if cancel.is_set():
                raise EngineCancelled(gpu_seconds=gpu_seconds)
            raise EngineError("the prompt was interrupted in ComfyUI, not by the agent", gpu_seconds=gpu_seconds)
        raise EngineError(f"ComfyUI ended the prompt with status {status.get('status_str')!r}",
                          gpu_seconds=gpu_seconds)

    def _download_output(self, entry: Mapping[str, Any], out_path: Path, gpu_seconds: float) -> None:
        item = _video_output(entry.get("outputs") or {})
        if item is None:
            raise EngineError(f"ComfyUI finished without saving a video (outputs: {entry.get('outputs')})",
                              gpu_seconds=gpu_seconds)
        params = {"filename": item["filename"], "subfolder": item.get("subfolder", ""),
                  "type": item.get("type", "output")}
        out_path.parent.mkdir(parents=True, exist_ok=True)
        with self._http.stream("GET", "/view", params=params, timeout=120.0) as response:
            if response.status_code != 200:
                raise EngineError(f"ComfyUI /view {item['filename']} answered HTTP {response.status_code}",
                                  gpu_seconds=gpu_seconds)
            with out_path.open("wb") as handle:
                for chunk in response.iter_bytes(1 << 20):
                    handle.write(chunk)

    def _get(self, path: str, params: Mapping[str, Any] | None = None) -> dict[str, Any]:
        response = self._http.get(path, params=params)
        response.raise_for_status()
        body = response.json()
        return body if isinstance(body, dict) else {}


_CLOSED = object()


def prompt_id_for(key: str) -> str:
    """The ComfyUI prompt id a job runs under: the same on every start, so a restarted agent finds it."""
    return str(uuid.uuid5(_NAMESPACE, key))


class _Progress:
    """Maps ComfyUI's per-node step counts onto 0-1 for the whole job: sampling is nearly all of the GPU time,
    so each sampler node gets an equal share of 0.05-0.95; loading comes before, decoding and saving after."""

    def __init__(self, graph: Mapping[str, Any], report: ProgressFn) -> None:
        self._samplers = [nid for nid, node in graph.items() if node.get("class_type") in SAMPLERS]
        self._done: dict[str, float] = {}
        self._report = report
        self._last = 0.0

    def step(self, node_id: str, value: Any, maximum: Any) -> None:
        if node_id in self._samplers and isinstance(value, int | float) and isinstance(maximum, int | float) \
                and maximum > 0:
            self._done[node_id] = min(1.0, value / maximum)
            self._emit(0.05 + 0.9 * sum(self._done.values()) / len(self._samplers))

    def executing(self, node_id: str) -> None:
        if not self._samplers:
            return
        if node_id in self._samplers:
            self._emit(0.05)
        elif len(self._done) == len(self._samplers) and all(v >= 1.0 for v in self._done.values()):
            self._emit(0.95)

    def _emit(self, value: float) -> None:
        if value > self._last:
            self._last = value
            self._report(value)


def _combo_values(declared: Any) -> set[str]:
    """A combo's values from /object_info, in the old (`[[...], {...}]`) or new (`["COMBO", {"options"}]`) form."""
    if not isinstance(declared, list) or not declared:
        return set()
    if isinstance(declared[0], list):
        return {str(v) for v in declared[0]}
    if declared[0] == "COMBO" and len(declared) > 1 and isinstance(declared[1], dict):
        return {str(v) for v in declared[1].get("options") or []}
    return set()


def _gpu_seconds(entry: Mapping[str, Any]) -> float:
    stamps: list[float] = []
    for message in (entry.get("status") or {}).get("messages") or []:
        stamp = message[1].get("timestamp") if len(message) == 2 and isinstance(message[1], dict) else None
        if isinstance(stamp, int | float):
            stamps.append(float(stamp))
    return max(0.0, (max(stamps) - min(stamps)) / 1000.0) if len(stamps) >= 2 else 0.0


def _video_output(outputs: Mapping[str, Any]) -> dict[str, Any] | None:
    # SaveVideo reports under `images` (with `animated`); VHS_VideoCombine under `gifs`.
    for node_output in outputs.values():
        for key in ("images", "gifs", "videos"):
            for item in node_output.get(key) or []:
                if str(item.get("filename", "")).lower().endswith(VIDEO_SUFFIXES) and item.get("type") != "temp":
                    return dict(item)
    return None


def _describe_refusal(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return f"HTTP 400: {response.text[:300]}"
    result = Validation(error=body.get("error"), node_errors=body.get("node_errors") or {})
    return result.describe() or f"HTTP 400: {response.text[:300]}"


def _render_plan(graph: Mapping[str, Any]) -> RenderPlan | None:
    try:
        return find_plan(graph)
    except CameraRenderError as exc:
        raise EngineError(f"the workflow's camera render plan is unusable: {exc}") from exc


def _camera_render(inputs: Mapping[str, bytes], plan: RenderPlan) -> bytes:
    """Uni3C's render_video from the job's image (router/media/camera_render.py): made here, where the image is."""
    image = inputs.get(INPUT_FILES["image"])
    if image is None:
        raise EngineError("the workflow needs a camera render of the job's image, and the job has no image input")
    started = time.monotonic()
    try:
        video = render_mp4(image, plan)
    except CameraRenderError as exc:
        raise EngineError(f"camera render failed: {exc}") from exc
    except ImportError as exc:  # numpy, Pillow and PyAV come with the agent's lock (the sim extra)
        raise EngineError(f"camera render needs numpy, Pillow and PyAV on the agent: {exc}") from exc
    log.info("rendered the %s camera path (%dx%d, %d frames) in %.1f s", plan.motion.value, plan.width,
             plan.height, plan.frames, time.monotonic() - started)
    return video


def _download(url: str, allow_loopback: bool) -> bytes:
    """An input through the router's checked downloader: the URL may be a client's, and this box runs ComfyUI (no
    auth of its own) on loopback, so every hop must resolve to public addresses only and is connected to pinned."""
    try:
        return fetch_bytes(url, MAX_INPUT_BYTES, allow_loopback=allow_loopback, timeout_s=120.0)
    except UnsafeDownload as exc:
        raise EngineError(f"input refused: {exc}") from exc
    except httpx.HTTPError as exc:
        raise EngineError(f"input download failed: {type(exc).__name__}: {exc}") from exc

