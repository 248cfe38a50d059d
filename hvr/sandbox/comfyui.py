"""ComfyUI on loopback: the HTTP routes and WebSocket messages of docs/providers.md §4, with a simulated GPU.

Graphs are validated with the builders' node schema (router/workflows/node_schema.json) and refused with ComfyUI's
400 `node_errors` body; model combos list the files of the agent's models.yaml (`remove_file` takes one away, so
a test can see `value_not_in_list`). Queued prompts run one at a time on an executor thread that walks the graph,
emits `execution_start`, `executing`, per-step `progress` for samplers, `executed`, then writes history and sends
`executing` with `node: null`. The SaveVideo node's output is a real H.264 MP4 from the sim encoder at the size,
frames and fps the graph itself works out to (router/workflows/shapes.py).

The WebSocket shares the HTTP port, as ComfyUI's `/ws` does: the sandbox's threaded HTTP server hands an upgrade
request to the `websockets` library's Sans-I/O server protocol, which does the handshake and framing (pings and
close included) over that connection's socket.

Time: with a `Pace` (the embedded stack) and `step_s=None`, a graph's sampling steps together take its model's
modelled render time over the scale, and its message timestamps advance by that modelled time (encoding the MP4,
real CPU time here, adds nothing), so the agent's GPU-seconds (first to last timestamp) are modelled seconds, as
its sim engine reports them. Other timestamps run on the pace's clock.

Test hooks: `paused` holds the queue (a busy GPU), `step_s` is the wall time per sampling step, `vram_total_mb` is
what `/system_stats` reports (48 GB by default, so every local offer fits; the studio's 5090 has 24 GB, where the
agent refuses the WAN 2.2 14B models as the catalog sizes them), `[sim:fail]` in a prompt text fails the first
sampler with a CUDA out-of-memory `execution_error`. Fault call kinds:

    prompt    POST /prompt: SERVER_ERROR (500), TIMEOUT
    execute   a prompt's run: FAILED (execution_error), STUCK (never leaves the queue)
"""

from __future__ import annotations

import json
import re
import threading
import time
import uuid
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from email.parser import BytesParser
from email.policy import HTTP
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from PIL import Image
from websockets.frames import Opcode
from websockets.http11 import Request as WsRequest
from websockets.protocol import State
from websockets.server import ServerProtocol

from hvr.sandbox.base import Fault, FaultPlan, Pace, Request, Response, SandboxServer, graph_model, render_mp4
from router.workflows.models import ModelFiles
from router.workflows.schema import INPUT_FOLDER, NodeSchema, default_schema
from router.workflows.shapes import GraphShapes

SAMPLERS = frozenset({"KSampler", "KSamplerAdvanced", "SamplerCustomAdvanced"})
FAIL_MARKER = "[sim:fail]"
STEP_S = 0.01  # wall seconds per sampling step, where nothing models the render
_MB = 1024 * 1024
_API = "(?:/api)?"


@dataclass
class _Prompt:
    prompt_id: str
    number: int
    graph: dict[str, Any]
    client_id: str | None
    extra_data: dict[str, Any]
    outputs: list[str]
    fault: Fault | None = None
    messages: list[list[Any]] = field(default_factory=list)
    step_s: float = STEP_S  # wall seconds per sampling step, set when it starts
    modelled_step_s: float | None = None  # modelled seconds per step, where the pace models the graph's model
    started_ms: int = 0
    spent_s: float = 0.0  # modelled seconds its steps have taken

    def queue_item(self) -> list[Any]:
        return [self.number, self.prompt_id, self.graph, self.extra_data, self.outputs]


class _Interrupted(Exception):
    def __init__(self, node_id: str) -> None:
        super().__init__(node_id)
        self.node_id = node_id


class _ExecutionError(Exception):
    def __init__(self, node_id: str, exception_type: str, message: str) -> None:
        super().__init__(message)
        self.node_id = node_id
        self.exception_type = exception_type
        self.message = message


class _Socket:
    """One WebSocket client; the executor thread sends while the connection's own thread reads."""

    def __init__(self, http: BaseHTTPRequestHandler, protocol: ServerProtocol) -> None:
        self._http = http
        self._protocol = protocol
        self._lock = threading.Lock()

    def send(self, message: dict[str, Any]) -> None:
        with self._lock:
            if self._protocol.state is not State.OPEN:
                return
            self._protocol.send_text(json.dumps(message).encode())
            self._flush()

    def _flush(self) -> None:
        for chunk in self._protocol.data_to_send():
            if chunk:
                self._http.connection.sendall(chunk)

    def serve(self) -> None:
        """Read until the client goes away; the protocol answers pings and closes by itself."""
        while True:
            try:
                data = self._http.rfile.read1(65536)
            except OSError:
                data = b""
            with self._lock:
                if data:
                    self._protocol.receive_data(data)
                else:
                    self._protocol.receive_eof()
                events = self._protocol.events_received()
                try:
                    self._flush()
                except OSError:
                    return
                if not data or self._protocol.state is State.CLOSED:
                    return
                if any(getattr(event, "opcode", None) is Opcode.CLOSE for event in events):
                    return

    def close(self) -> None:
        try:
            self._http.connection.close()
        except OSError:
            return


class ComfyUISandbox(SandboxServer):
    name = "comfyui"

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        models: ModelFiles | None = None,
        schema: NodeSchema | None = None,
        plan: FaultPlan | None = None,
        vram_total_mb: int = 49152,
        step_s: float | None = STEP_S,
        pace: Pace | None = None,
    ) -> None:
        super().__init__(host, port)
        self.plan = plan or FaultPlan()
        self.schema = schema or default_schema()
        self.vram_total_mb = vram_total_mb
        self.step_s = step_s  # None: from the pace's modelled render time
        self.pace = pace or Pace()
        self._epoch = time.time()
        self.paused = threading.Event()
        self.model_files = models or ModelFiles.load()
        self.files: dict[str, set[str]] = {
            folder: set(names) for folder, names in self.model_files.by_folder().items()
        }
        self.input_dir = self.workdir / "input"
        self.output_dir = self.workdir / "output"
        self.input_dir.mkdir(parents=True, exist_ok=True)
        self.output_dir.mkdir(parents=True, exist_ok=True)
        self.submitted: list[str] = []  # prompt ids in the order POST /prompt accepted them
        self._cond = threading.Condition()
        self._pending: deque[_Prompt] = deque()
        self._running: _Prompt | None = None
        self._history: dict[str, dict[str, Any]] = {}
        self._interrupt = threading.Event()
        self._sockets: dict[str, _Socket] = {}
        self._counter = 0
        self._number = 0
        self._stopping = threading.Event()
        self._executor = threading.Thread(target=self._execute_loop, name="comfyui-sandbox-exec", daemon=True)
        self._routes_added()

    # -- server lifecycle ----------------------------------------------------------------------------------

    def start(self) -> ComfyUISandbox:
        super().start()
        self._executor.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        self._interrupt.set()
        with self._cond:
            self._cond.notify_all()
        for sock in list(self._sockets.values()):
            sock.close()
        super().stop()

    def remove_file(self, folder: str, name: str) -> None:
        self.files.get(folder, set()).discard(name)

    def add_file(self, folder: str, name: str) -> None:
        self.files.setdefault(folder, set()).add(name)

    def history_entry(self, prompt_id: str) -> dict[str, Any] | None:
        with self._cond:
            return self._history.get(prompt_id)

    def _dispatch(self, http: BaseHTTPRequestHandler) -> None:
        path = urlsplit(http.path).path
        if re.fullmatch(f"{_API}/ws", path) and http.headers.get("upgrade", "").lower() == "websocket":
            self.calls.append((http.command, path))
            self._serve_websocket(http)
            return
        super()._dispatch(http)

    def _serve_websocket(self, http: BaseHTTPRequestHandler) -> None:
        http.close_connection = True
        protocol = ServerProtocol()
        # http.server has parsed the handshake already; replay it so the protocol moves on to frames by itself.
        head = f"{http.requestline}\r\n" + "".join(f"{k}: {v}\r\n" for k, v in http.headers.items()) + "\r\n"
        protocol.receive_data(head.encode("latin-1"))
        handshake = [event for event in protocol.events_received() if isinstance(event, WsRequest)]
        if not handshake:
            for chunk in protocol.data_to_send():
                http.connection.sendall(chunk)
            return
        response = protocol.accept(handshake[0])
        protocol.send_response(response)
        for chunk in protocol.data_to_send():
            http.connection.sendall(chunk)
        if response.status_code != 101:
            return
        client_id = parse_qs(urlsplit(http.path).query).get("clientId", [""])[0] or uuid.uuid4().hex
        sock = _Socket(http, protocol)
        self._sockets[client_id] = sock  # a reconnect with the same id replaces the old socket, as ComfyUI does
        sock.send({"type": "status", "data": {"status": self._exec_info(), "sid": client_id}})
        try:
            sock.serve()
        finally:
            if self._sockets.get(client_id) is sock:
                del self._sockets[client_id]

    def _send(self, prompt: _Prompt, kind: str, data: dict[str, Any], *, history: bool = False) -> None:
        if history:
            prompt.messages.append([kind, data])
        sock = self._sockets.get(prompt.client_id or "")
        if sock is not None:
            sock.send({"type": kind, "data": data})

    # -- routes --------------------------------------------------------------------------------------------

    def _routes_added(self) -> None:
        self.route("POST", f"{_API}/prompt", self._post_prompt)
        self.route("GET", f"{_API}/prompt", lambda _r: Response(200, {"exec_info": self._exec_info()["exec_info"]}))
        self.route("GET", f"{_API}/queue", self._get_queue)
        self.route("POST", f"{_API}/queue", self._post_queue)
        self.route("POST", f"{_API}/interrupt", self._post_interrupt)
        self.route("GET", f"{_API}/history", self._get_history)
        self.route("GET", f"{_API}/history/(?P<prompt_id>[^/]+)", self._get_history_one)
        self.route("POST", f"{_API}/history", self._post_history)
        self.route("GET", f"{_API}/view", self._view)
        self.route("POST", f"{_API}/upload/image", self._upload)
        self.route("GET", f"{_API}/system_stats", self._system_stats)
        self.route("GET", f"{_API}/object_info", lambda _r: Response(200, self._object_info()))
        self.route("GET", f"{_API}/object_info/(?P<class_type>[^/]+)", self._object_info_one)
        self.route("POST", f"{_API}/free", lambda _r: Response(200, None))

    def _exec_info(self) -> dict[str, Any]:
        with self._cond:
            remaining = len(self._pending) + (1 if self._running else 0)
        return {"exec_info": {"queue_remaining": remaining}}

    def _post_prompt(self, request: Request) -> Response:
        fault = self.plan.next("prompt", (Fault.SERVER_ERROR, Fault.TIMEOUT))
        if fault is Fault.SERVER_ERROR:
            return Response(500, {"error": "sandbox: injected server error"})
        if fault is Fault.TIMEOUT:
            return Response(hang_s=30.0, drop=True)
        try:
            body = request.json()
        except ValueError:
            return Response(400, {"error": {"type": "invalid_json", "message": "invalid JSON", "details": "",
                                            "extra_info": {}}, "node_errors": {}})
        graph = body.get("prompt") if isinstance(body, dict) else None
        result = self.schema.validate(graph, files={**self.files, INPUT_FOLDER: self._input_files()})
        if not result.ok or not isinstance(graph, dict):
            return Response(400, result.body())
        prompt_id = str(body.get("prompt_id") or uuid.uuid4())
        extra = dict(body.get("extra_data") or {})
        client_id = body.get("client_id")
        if client_id:
            extra["client_id"] = client_id
        with self._cond:
            self._number += 1
            prompt = _Prompt(prompt_id, self._number, graph, client_id, extra, result.outputs,
                             fault=self.plan.next("execute", (Fault.FAILED, Fault.STUCK)))
            self._pending.append(prompt)
            self.submitted.append(prompt_id)
            self._cond.notify_all()
        return Response(200, {"prompt_id": prompt_id, "number": prompt.number, "node_errors": result.node_errors})

    def _get_queue(self, _request: Request) -> Response:
        with self._cond:
            running = [self._running.queue_item()] if self._running else []
            pending = [p.queue_item() for p in self._pending]
        return Response(200, {"queue_running": running, "queue_pending": pending})

    def _post_queue(self, request: Request) -> Response:
        body = request.json() or {}
        with self._cond:
            if body.get("clear"):
                self._pending.clear()
            doomed = set(body.get("delete") or [])
            self._pending = deque(p for p in self._pending if p.prompt_id not in doomed)
        return Response(200, None)

    def _post_interrupt(self, request: Request) -> Response:
        body = request.json() if request.body else None
        wanted = body.get("prompt_id") if isinstance(body, dict) else None
        with self._cond:
            running = self._running
            if running is not None and (wanted is None or wanted == running.prompt_id):
                self._interrupt.set()
        return Response(200, None)

    def _get_history(self, request: Request) -> Response:
        with self._cond:
            items = list(self._history.items())
        max_items = request.query.get("max_items", [None])[0]
        if max_items:
            items = items[-int(max_items):]
        return Response(200, dict(items))

    def _get_history_one(self, request: Request) -> Response:
        entry = self.history_entry(request.params["prompt_id"])
        return Response(200, {request.params["prompt_id"]: entry} if entry else {})

    def _post_history(self, request: Request) -> Response:
        body = request.json() or {}
        with self._cond:
            if body.get("clear"):
                self._history.clear()
            for prompt_id in body.get("delete") or []:
                self._history.pop(prompt_id, None)
        return Response(200, None)

    def _view(self, request: Request) -> Response:
        name = request.query.get("filename", [""])[0]
        subfolder = request.query.get("subfolder", [""])[0]
        kind = request.query.get("type", ["output"])[0]
        if not name or ".." in name or name.startswith("/"):
            return Response(400, None)
        root = (self.input_dir if kind == INPUT_FOLDER else self.output_dir).resolve()
        path = (root / subfolder / name).resolve()
        if root not in path.parents:
            return Response(403, None)
        if not path.is_file():
            return Response(404, None)
        content_type = "video/mp4" if path.suffix == ".mp4" else "application/octet-stream"
        return Response(200, path.read_bytes(), headers={"content-type": content_type,
                                                          "content-disposition": f'filename="{name}"'})

    def _upload(self, request: Request) -> Response:
        message = BytesParser(policy=HTTP).parsebytes(
            b"Content-Type: " + request.headers.get("content-type", "").encode() + b"\r\n\r\n" + request.body
        )
        fields: dict[str, Any] = {}
        for part in message.iter_parts():
            name = part.get_param("name", header="content-disposition")
            fields[str(name)] = (part.get_filename(), part.get_payload(decode=True) or b"")
        if "image" not in fields or not fields["image"][0]:
            return Response(400, None)
        filename, data = fields["image"]
        subfolder = (fields.get("subfolder", (None, b""))[1] or b"").decode()
        overwrite = (fields.get("overwrite", (None, b""))[1] or b"").decode().lower() in ("true", "1")
        target_dir = self.input_dir / subfolder
        target_dir.mkdir(parents=True, exist_ok=True)
        target = target_dir / Path(filename).name
        stem, suffix, counter = target.stem, target.suffix, 1
        while target.exists() and not overwrite and target.read_bytes() != data:
            target = target_dir / f"{stem} ({counter}){suffix}"
            counter += 1
        target.write_bytes(data)
        return Response(200, {"name": target.name, "subfolder": subfolder, "type": INPUT_FOLDER})

    def _input_files(self) -> set[str]:
        return {str(p.relative_to(self.input_dir)) for p in self.input_dir.rglob("*") if p.is_file()}

    def _system_stats(self, _request: Request) -> Response:
        total = self.vram_total_mb * _MB
        free = total if self._running is None else total * 3 // 10
        device = {"name": "cuda:0 Sandbox GPU (simulated)", "type": "cuda", "index": 0, "vram_total": total,
                  "vram_free": free, "torch_vram_total": total, "torch_vram_free": free}
        system = {"os": "posix", "ram_total": 64 * 1024 * _MB, "ram_free": 48 * 1024 * _MB,
                  "comfyui_version": "sandbox", "python_version": "", "pytorch_version": "", "embedded_python": False,
                  "argv": ["main.py"]}
        return Response(200, {"system": system, "devices": [device]})

    def _object_info(self) -> dict[str, Any]:
        return {name: self._node_info(name) for name in self.schema.nodes}

    def _object_info_one(self, request: Request) -> Response:
        name = request.params["class_type"]
        return Response(200, {name: self._node_info(name)} if name in self.schema.nodes else {})

    def _node_info(self, class_type: str) -> dict[str, Any]:
        spec = self.schema.nodes[class_type]
        required: dict[str, Any] = {}
        optional: dict[str, Any] = {}
        for name, item in spec.inputs.items():
            config: dict[str, Any] = {k: v for k, v in (("min", item.min), ("max", item.max)) if v is not None}
            if item.folder is not None:
                declared: Any = sorted(self.files.get(item.folder, ()))
            elif item.upload is not None:
                declared, config[f"{item.upload}_upload"] = sorted(self._input_files()), True
            elif item.options is not None:
                declared = list(item.options)
            else:
                declared = item.type
            (required if item.required else optional)[name] = [declared, config]
        return {"input": {"required": required, "optional": optional}, "input_order": {
                    "required": list(required), "optional": list(optional)},
                "output": list(spec.outputs), "output_is_list": [False] * len(spec.outputs),
                "output_name": list(spec.outputs), "name": class_type, "display_name": class_type,
                "description": "", "python_module": spec.custom_node or "nodes", "category": "sandbox",
                "output_node": spec.output_node}

    # -- execution -----------------------------------------------------------------------------------------

    def _execute_loop(self) -> None:
        while not self._stopping.is_set():
            with self._cond:
                prompt = self._next_prompt()
                if prompt is None:
                    self._cond.wait(0.1)
                    continue
                self._running = prompt
                self._interrupt.clear()
            try:
                self._execute(prompt)
            finally:
                with self._cond:
                    self._running = None
                    self._cond.notify_all()

    def _next_prompt(self) -> _Prompt | None:
        if self.paused.is_set():
            return None
        for prompt in self._pending:
            if prompt.fault is not Fault.STUCK:
                self._pending.remove(prompt)
                return prompt
        return None

    def _ms(self) -> int:
        """ComfyUI's message clock, in the pace's modelled time (wall time when unpaced)."""
        return int((self._epoch + self.pace.modelled(time.time() - self._epoch)) * 1000)

    def _stamp(self, prompt: _Prompt) -> int:
        if prompt.modelled_step_s is None:
            return self._ms()
        return prompt.started_ms + round(prompt.spent_s * 1000)

    def _modelled_step_s(self, prompt: _Prompt) -> float | None:
        """Modelled seconds per sampling step for the graph's model to take its modelled render time in all."""
        saves = [nid for nid in prompt.outputs if prompt.graph[nid].get("class_type") == "SaveVideo"]
        video = GraphShapes(prompt.graph, self._image_size).video(saves[0]) if saves else None
        steps = sum(_sampler_steps(node) for node in prompt.graph.values() if node.get("class_type") in SAMPLERS)
        model = graph_model(prompt.graph, self.model_files)
        modelled = self.pace.render_s(model, video.width, video.height, video.frames) if video else None
        return modelled / steps if modelled is not None and steps else None

    def _execute(self, prompt: _Prompt) -> None:
        pid = prompt.prompt_id
        prompt.started_ms = self._ms()
        if self.step_s is None:
            prompt.modelled_step_s = self._modelled_step_s(prompt)
            if prompt.modelled_step_s is not None:
                prompt.step_s = self.pace.wall(prompt.modelled_step_s)
        self._send(prompt, "execution_start", {"prompt_id": pid, "timestamp": self._stamp(prompt)}, history=True)
        self._send(prompt, "execution_cached", {"nodes": [], "prompt_id": pid, "timestamp": self._stamp(prompt)},
                   history=True)
        executed: list[str] = []
        outputs: dict[str, Any] = {}
        status = "success"
        try:
            for node_id in _execution_order(prompt.graph, prompt.outputs):
                self._run_node(prompt, node_id, outputs)
                executed.append(node_id)
            self._send(prompt, "execution_success", {"prompt_id": pid, "timestamp": self._stamp(prompt)}, history=True)
        except _Interrupted as stop:
            status = "error"
            self._send(prompt, "execution_interrupted", {
                "prompt_id": pid, "node_id": stop.node_id, "node_type": prompt.graph[stop.node_id]["class_type"],
                "executed": executed, "timestamp": self._stamp(prompt)}, history=True)
        except _ExecutionError as exc:
            status = "error"
            self._send(prompt, "execution_error", {
                "prompt_id": pid, "node_id": exc.node_id, "node_type": prompt.graph[exc.node_id]["class_type"],
                "executed": executed, "exception_message": exc.message, "exception_type": exc.exception_type,
                "traceback": [], "current_inputs": {}, "current_outputs": {}, "timestamp": self._stamp(prompt)},
                history=True)
        entry = {
            "prompt": prompt.queue_item(),
            "outputs": outputs,
            "status": {"status_str": status, "completed": status == "success", "messages": prompt.messages},
            "meta": {nid: {"node_id": nid, "display_node": nid, "parent_node": None, "real_node_id": nid}
                     for nid in outputs},
        }
        with self._cond:
            self._history[pid] = entry
        # ComfyUI sends this after writing history: a client that sees it can read the result at once.
        self._send(prompt, "executing", {"node": None, "display_node": None, "prompt_id": pid})

    def _run_node(self, prompt: _Prompt, node_id: str, outputs: dict[str, Any]) -> None:
        if self._interrupt.is_set():
            raise _Interrupted(node_id)
        pid = prompt.prompt_id
        node = prompt.graph[node_id]
        class_type = node["class_type"]
        self._send(prompt, "executing", {"node": node_id, "display_node": node_id, "prompt_id": pid})
        if class_type in SAMPLERS:
            if prompt.fault is Fault.FAILED or _asks_to_fail(prompt.graph):
                prompt.fault = None  # the first sampler fails; one error per prompt
                raise _ExecutionError(node_id, "torch.OutOfMemoryError",
                                      "Allocation on device 0 would exceed allowed memory. (out of memory)")
            steps = _sampler_steps(node)
            for step in range(steps):
                if self._interrupt.wait(self.step_s if self.step_s is not None else prompt.step_s):
                    raise _Interrupted(node_id)
                prompt.spent_s += prompt.modelled_step_s or 0.0
                self._send(prompt, "progress", {"value": step + 1, "max": steps, "prompt_id": pid, "node": node_id})
        if class_type == "SaveVideo":
            ui = self._save_video(prompt, node_id)
            outputs[node_id] = ui
            self._send(prompt, "executed", {"node": node_id, "display_node": node_id, "output": ui,
                                            "prompt_id": pid})

    def _save_video(self, prompt: _Prompt, node_id: str) -> dict[str, Any]:
        shapes = GraphShapes(prompt.graph, self._image_size)
        video = shapes.video(node_id)
        if video is None:
            raise _ExecutionError(node_id, "RuntimeError", "sandbox: cannot work out the video's size, length "
                                                           "and fps from this graph")
        prefix = str(prompt.graph[node_id]["inputs"].get("filename_prefix") or "ComfyUI")
        subfolder, _, stem = prefix.rpartition("/")
        with self._cond:
            self._counter += 1
            counter = self._counter
        filename = f"{stem}_{counter:05d}_.mp4"
        render_mp4(self.output_dir / subfolder / filename, video.width, video.height, video.frames, video.fps,
                   "comfyui sandbox", _prompt_text(prompt.graph))
        return {"images": [{"filename": filename, "subfolder": subfolder, "type": "output"}], "animated": [True]}

    def _image_size(self, name: str) -> tuple[int, int] | None:
        path = self.input_dir / name
        if not path.is_file():
            return None
        try:
            with Image.open(path) as image:
                return image.size
        except OSError:
            return None


def _sampler_steps(node: Mapping[str, Any]) -> int:
    inputs = node.get("inputs") or {}
    steps = inputs.get("steps")
    steps = steps if isinstance(steps, int) else 20
    if node["class_type"] == "KSamplerAdvanced":
        start = inputs.get("start_at_step", 0)
        end = inputs.get("end_at_step", steps)
        if isinstance(start, int) and isinstance(end, int):
            return max(1, min(end, steps) - start)
    return max(1, steps)


def _prompt_text(graph: Mapping[str, Any]) -> str:
    for node in graph.values():
        if node.get("class_type") == "CLIPTextEncode" and isinstance(node["inputs"].get("text"), str):
            return str(node["inputs"]["text"])
    return ""


def _asks_to_fail(graph: Mapping[str, Any]) -> bool:
    return any(FAIL_MARKER in str(node.get("inputs", {}).get("text", "")) for node in graph.values())


def _execution_order(graph: Mapping[str, Any], outputs: list[str]) -> list[str]:
    """Upstream-first order over what the outputs need (ComfyUI executes nothing else)."""
    order: list[str] = []
    seen: set[str] = set()

    def visit(node_id: str) -> None:
        if node_id in seen or node_id not in graph:
            return
        seen.add(node_id)
        for value in (graph[node_id].get("inputs") or {}).values():
            if isinstance(value, list) and len(value) == 2 and isinstance(value[0], str):
                visit(value[0])
        order.append(node_id)

    for output in outputs:
        visit(output)
    return order
