"""The agent on its comfyui engine (a real process) against the ComfyUI sandbox, with graphs from the builders.

A loopback file server stands in for S3: it serves the job's inputs (presigned GETs) and takes the output PUT.
Renders are tiny (96x64, a few frames, draft steps), so each takes well under a second; waits are bounded polls
and nothing asserts on elapsed time.
"""

from __future__ import annotations

import ast
import base64
import io
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image

from agent.engines.comfyui import prompt_id_for
from agent.launcher import AgentProcess
from hvr.sandbox.base import silent_wav
from hvr.sandbox.comfyui import ComfyUISandbox
from router.media.probe import check_against_spec, probe
from router.models.common import Mode, ProviderKind, Quality
from router.models.decision import DeliveredSpec
from router.models.request import MODE_INPUTS, Camera, CameraMotion, VideoRequest
from router.policy.catalog import load_catalog
from router.signing import sign
from router.workflows import ModelFiles, build_workflow, supported_pairs

SECRET = "comfyui-agent-secret"
WAIT_S = 30.0
TERMINAL = {"succeeded", "failed", "cancelled"}
WIDTH, HEIGHT, FPS = 96, 64, 8.0
CATALOG = load_catalog()
MODELS = ModelFiles.load()
LOCAL = {offer.model: offer for offer in CATALOG.offers if offer.provider is ProviderKind.LOCAL}
PROJECT_ROOT = Path(__file__).resolve().parents[2]


def _png(color: tuple[int, int, int], size: tuple[int, int] = (120, 80)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, format="PNG")
    return buffer.getvalue()


def _mp4() -> bytes:
    """A short real H.264 MP4 (a driving or continued video), from the sim engine's encoder."""
    import tempfile

    from agent.engines.sim import encode_video

    with tempfile.TemporaryDirectory(prefix="hvr-engine-") as folder:
        path = Path(folder) / "in.mp4"
        encode_video(path, 160, 96, 9, 16.0, "driving", "video")
        return path.read_bytes()


def _wav(seconds: float = 1.0) -> bytes:
    return silent_wav(seconds)


class Store:
    """Loopback stand-in for S3: GET serves the inputs, PUT records uploads."""

    def __init__(self) -> None:
        image = _png((200, 90, 40))
        self.objects: dict[str, bytes] = {"/in/image.png": image, "/in/mask.png": _png((255, 255, 255)),
                                          "/in/audio.wav": _wav(), "/in/last_image.png": _png((40, 90, 200)),
                                          "/in/video.mp4": _mp4(),
                                          **{f"/in/reference_image_{n}.png": image for n in (1, 2)}}
        self.uploads: dict[str, bytes] = {}
        store = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = store.objects.get(self.path)
                self.send_response(200 if body is not None else 404)
                self.send_header("Content-Length", str(len(body or b"")))
                self.end_headers()
                self.wfile.write(body or b"")

            def do_PUT(self) -> None:
                store.uploads[self.path] = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                return None

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture(scope="module")
def sandbox() -> Iterator[ComfyUISandbox]:
    server = ComfyUISandbox(step_s=0.005).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def store() -> Iterator[Store]:
    server = Store()
    yield server
    server.close()


@pytest.fixture(scope="module")
def agent(tmp_path_factory: pytest.TempPathFactory, sandbox: ComfyUISandbox) -> Iterator[AgentProcess]:
    # A short cache: tests change the card under the agent and wait to see it.
    env = {"HVR_AGENT_ENGINE": "comfyui", "HVR_AGENT_COMFYUI_URL": sandbox.url, "HVR_AGENT_ALLOW_LOOPBACK_INPUTS": "1",
           "HVR_AGENT_COMFYUI_CACHE_S": "0.5"}
    with AgentProcess(tmp_path_factory.mktemp("comfy-agent") / "agent.db", secrets=[SECRET], env=env) as process:
        yield process


def call(agent: AgentProcess, method: str, path: str, payload: Any = None) -> httpx.Response:
    body = b"" if payload is None else json.dumps(payload).encode()
    headers = {**sign(SECRET, method, path, body), "Content-Type": "application/json"}
    return httpx.request(method, agent.url + path, content=body, headers=headers, timeout=15)


def wait(agent: AgentProcess, attempt_id: str, until: set[str] = TERMINAL,
         check: Any = lambda job: True) -> dict[str, Any]:
    deadline = time.monotonic() + WAIT_S
    while True:
        job = call(agent, "GET", f"/v1/jobs/{attempt_id}").json()
        if job["status"] in until and check(job):
            return dict(job)
        assert time.monotonic() < deadline, f"{attempt_id} still {job}"
        time.sleep(0.02)


def job_body(store: Store, attempt_id: str, model: str, mode: Mode, *, frames: int = 9,
             quality: Quality = Quality.DRAFT, prompt: str = "a paper kite") -> dict[str, Any]:
    offer = LOCAL[model]
    # Every input the mode takes (s2v's optional identity image too), as the contract names them.
    needs = (*MODE_INPUTS.get(mode, ()), *(("image",) if mode is Mode.S2V else ()))
    fields: dict[str, Any] = {name: ["s3://hvr-in/t/r1", "s3://hvr-in/t/r2"] if name == "reference_images"
                              else "s3://hvr-in/t/x" for name in needs}
    request = VideoRequest(mode=mode, prompt=prompt, seed=5, quality=quality,
                           camera=Camera(motion=CameraMotion.ZOOM_IN) if mode is Mode.CAMERA else None, **fields)
    extension = {"audio": "wav", "video": "mp4"}
    inputs = {key: f"{store.url}/in/{key}.{extension.get(key, 'png')}" for _, key, _ in request.input_refs()}
    workflow = build_workflow(offer, request, DeliveredSpec(WIDTH, HEIGHT, frames, FPS), MODELS)
    return {"attempt_id": attempt_id, "job_id": f"job_{attempt_id}", "model": model, "prompt": prompt,
            "spec": {"width": WIDTH, "height": HEIGHT, "frames": frames, "fps": FPS}, "seed": 5,
            "workflow": workflow, "inputs": inputs,
            "output": {"put_url": f"{store.url}/out/{attempt_id}.mp4", "content_type": "video/mp4"}}


@contextmanager
def slow_steps(sandbox: ComfyUISandbox, step_s: float) -> Iterator[None]:
    before, sandbox.step_s = sandbox.step_s, step_s
    try:
        yield
    finally:
        sandbox.step_s = before


FAMILIES = [(model, mode, 20 if model == "animatediff-sd15" else 10 if mode is Mode.S2V and "22" in model else 9)
            for model, mode in supported_pairs()]


@pytest.mark.parametrize(("model", "mode", "frames"), FAMILIES, ids=[f"{m}-{mode.value}" for m, mode, _ in FAMILIES])
def test_each_family_renders_end_to_end(agent: AgentProcess, store: Store, model: str, mode: Mode,
                                        frames: int) -> None:
    attempt_id = f"att_{model}_{mode.value}".replace(".", "_")
    assert call(agent, "POST", "/v1/jobs", job_body(store, attempt_id, model, mode, frames=frames)).status_code == 201

    job = wait(agent, attempt_id)

    assert job["status"] == "succeeded", job
    assert job["progress"] == 1.0 and job["gpu_seconds"] > 0
    result = probe(store.uploads[f"/out/{attempt_id}.mp4"])
    assert (result.container, result.codec) == ("mp4", "h264")
    assert check_against_spec(result, WIDTH, HEIGHT, frames, FPS) == []


def test_progress_is_reported_while_comfyui_samples(agent: AgentProcess, store: Store,
                                                    sandbox: ComfyUISandbox) -> None:
    body = job_body(store, "att_progress", "wan21-1.3b", Mode.T2V, quality=Quality.STANDARD)
    with slow_steps(sandbox, 0.05):
        assert call(agent, "POST", "/v1/jobs", body).status_code == 201
        running = wait(agent, "att_progress", {"running"}, lambda job: 0.05 < job["progress"] < 0.95)
        done = wait(agent, "att_progress")

    assert running["status"] == "running"
    assert done["status"] == "succeeded" and done["progress"] == 1.0


def test_cancel_while_queued_in_comfyui_deletes_the_prompt(agent: AgentProcess, store: Store,
                                                           sandbox: ComfyUISandbox) -> None:
    prompt_id = prompt_id_for("att_queued")
    sandbox.paused.set()  # the GPU is busy with someone else's prompt
    try:
        assert call(agent, "POST", "/v1/jobs", job_body(store, "att_queued", "wan21-1.3b", Mode.T2V)).status_code \
            == 201
        deadline = time.monotonic() + WAIT_S
        while prompt_id not in sandbox.submitted:
            assert time.monotonic() < deadline, "the engine never queued its prompt"
            time.sleep(0.02)

        call(agent, "POST", "/v1/jobs/att_queued/cancel")
        job = wait(agent, "att_queued")
    finally:
        sandbox.paused.clear()

    assert job["status"] == "cancelled"
    queue = httpx.get(f"{sandbox.url}/queue", timeout=5).json()
    assert all(item[1] != prompt_id for item in queue["queue_pending"] + queue["queue_running"])
    assert ("POST", "/queue") in sandbox.calls
    assert sandbox.history_entry(prompt_id) is None  # it never ran
    assert "/out/att_queued.mp4" not in store.uploads


def test_cancel_while_running_interrupts_comfyui(agent: AgentProcess, store: Store, sandbox: ComfyUISandbox) -> None:
    prompt_id = prompt_id_for("att_interrupt")
    with slow_steps(sandbox, 0.05):
        body = job_body(store, "att_interrupt", "wan21-1.3b", Mode.T2V, quality=Quality.STANDARD)
        assert call(agent, "POST", "/v1/jobs", body).status_code == 201
        wait(agent, "att_interrupt", {"running"}, lambda job: job["progress"] > 0.05)

        call(agent, "POST", "/v1/jobs/att_interrupt/cancel")
        job = wait(agent, "att_interrupt")

    assert job["status"] == "cancelled"
    assert job["gpu_seconds"] > 0
    assert ("POST", "/interrupt") in sandbox.calls
    entry = sandbox.history_entry(prompt_id)
    assert entry is not None and entry["status"]["messages"][-1][0] == "execution_interrupted"
    assert "/out/att_interrupt.mp4" not in store.uploads


def test_comfyui_validation_error_fails_the_job_naming_node_and_input(agent: AgentProcess, store: Store,
                                                                      sandbox: ComfyUISandbox) -> None:
    missing = MODELS.file("wan21-1.3b", "t2v")
    sandbox.remove_file("diffusion_models", missing)
    try:
        assert call(agent, "POST", "/v1/jobs", job_body(store, "att_invalid", "wan21-1.3b", Mode.T2V)).status_code \
            == 201
        job = wait(agent, "att_invalid")
    finally:
        sandbox.add_file("diffusion_models", missing)

    assert job["status"] == "failed"
    assert "UNETLoader" in job["error"] and "unet_name" in job["error"] and missing in job["error"]


def test_comfyui_execution_error_fails_the_job_with_its_message(agent: AgentProcess, store: Store) -> None:
    body = job_body(store, "att_oom", "wan21-1.3b", Mode.T2V, prompt="[sim:fail] a kite")
    assert call(agent, "POST", "/v1/jobs", body).status_code == 201

    job = wait(agent, "att_oom")

    assert job["status"] == "failed"
    assert "KSampler" in job["error"] and "OutOfMemoryError" in job["error"]


def test_a_job_too_big_for_the_gpu_is_refused_at_create(agent: AgentProcess, store: Store,
                                                        sandbox: ComfyUISandbox) -> None:
    before, sandbox.vram_total_mb = sandbox.vram_total_mb, 8192
    try:
        response = call(agent, "POST", "/v1/jobs", job_body(store, "att_vram", "wan21-14b", Mode.T2V))
    finally:
        sandbox.vram_total_mb = before

    assert response.status_code == 422
    assert "insufficient VRAM" in response.json()["detail"] and "8192 MB" in response.json()["detail"]
    assert call(agent, "GET", "/v1/jobs/att_vram").status_code == 404


def test_health_reports_comfyui_vram_and_the_models_it_can_run(agent: AgentProcess) -> None:
    deadline = time.monotonic() + WAIT_S
    # The engine caches /system_stats and, apart, the models the card can run; an earlier test may have shrunk
    # the card, so both caches must have turned over.
    while True:
        health = httpx.get(f"{agent.url}/v1/health", timeout=5).json()
        settled = health["vram"]["total_mb"] == 49152 and "wan21-1.3b" in health["models"]
        if settled or time.monotonic() > deadline:
            break
        time.sleep(0.2)

    assert health["engine"] == "comfyui"
    assert health["vram"]["total_mb"] == 49152
    assert health["models"]["wan21-1.3b"] == ["camera", "i2v", "inpaint", "t2v"]
    assert set(health["models"]) == {model for model, _mode in supported_pairs()}


def test_a_job_without_workflow_fails_clearly(agent: AgentProcess, store: Store) -> None:
    body = {**job_body(store, "att_noflow", "wan21-1.3b", Mode.T2V), "workflow": None}
    assert call(agent, "POST", "/v1/jobs", body).status_code == 201

    job = wait(agent, "att_noflow")

    assert job["status"] == "failed" and "workflow" in job["error"]


def test_a_killed_agent_reattaches_to_its_running_prompt(agent: AgentProcess, store: Store,
                                                         sandbox: ComfyUISandbox) -> None:
    prompt_id = prompt_id_for("att_crash")
    with slow_steps(sandbox, 0.03):
        body = job_body(store, "att_crash", "wan21-14b", Mode.T2V, quality=Quality.STANDARD)
        assert call(agent, "POST", "/v1/jobs", body).status_code == 201
        wait(agent, "att_crash", {"running"}, lambda job: job["progress"] > 0.05)

        agent.kill()  # ComfyUI keeps rendering
        agent.start()
        job = wait(agent, "att_crash")

    assert job["status"] == "succeeded", job
    assert sandbox.submitted.count(prompt_id) == 1  # found again by id, not queued twice
    assert check_against_spec(probe(store.uploads["/out/att_crash.mp4"]), WIDTH, HEIGHT, 9, FPS) == []


def test_a_graceful_stop_leaves_the_prompt_to_comfyui(agent: AgentProcess, store: Store,
                                                      sandbox: ComfyUISandbox) -> None:
    prompt_id = prompt_id_for("att_stop")
    interrupts = sandbox.calls.count(("POST", "/interrupt"))
    with slow_steps(sandbox, 0.03):
        body = job_body(store, "att_stop", "wan21-1.3b", Mode.T2V, quality=Quality.STANDARD)
        assert call(agent, "POST", "/v1/jobs", body).status_code == 201
        wait(agent, "att_stop", {"running"}, lambda job: job["progress"] > 0.05)

        agent.stop()
        agent.start()
        job = wait(agent, "att_stop")

    assert job["status"] == "succeeded", job
    assert sandbox.calls.count(("POST", "/interrupt")) == interrupts
    assert sandbox.submitted.count(prompt_id) == 1


def test_input_fetch_refuses_loopback_and_redirects_into_the_box(store: Store,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """The engine fetches through the router's checked downloader: ComfyUI listens on this box's loopback with no
    auth, so an input URL must never reach it, directly, by a name, or by a redirect."""
    import socket

    from agent.engines.base import EngineError
    from agent.engines.comfyui import _download

    table = {"inputs.example.com": "34.1.2.3", "sneaky.example.com": "127.0.0.1"}
    monkeypatch.setattr(socket, "getaddrinfo", lambda host, port, *a, **k: [
        (socket.AF_INET, socket.SOCK_STREAM, 6, "", (table.get(host, host), port))])
    seen: list[httpx.Request] = []

    def public_hop(self: httpx.HTTPTransport, request: httpx.Request) -> httpx.Response:
        if request.url.host != "34.1.2.3":  # anything else is the store on loopback: let it through
            return real(self, request)
        seen.append(request)
        return httpx.Response(302, headers={"location": f"{store.url}/in/image.png"})

    real = httpx.HTTPTransport.handle_request
    monkeypatch.setattr(httpx.HTTPTransport, "handle_request", public_hop)

    assert _download(f"{store.url}/in/image.png", allow_loopback=True) == store.objects["/in/image.png"]
    with pytest.raises(EngineError, match="input refused: not https"):  # off outside the embedded stack and tests
        _download(f"{store.url}/in/image.png", allow_loopback=False)
    with pytest.raises(EngineError, match="IP literal"):
        _download("https://0x7f000001:8188/view", allow_loopback=False)
    with pytest.raises(EngineError, match=r"non-public address 127\.0\.0\.1"):
        _download("https://sneaky.example.com/in.png", allow_loopback=True)
    with pytest.raises(EngineError, match="input refused: not https"):
        _download("https://inputs.example.com/in.png", allow_loopback=True)
    assert [request.url.host for request in seen] == ["34.1.2.3"]  # the redirect target was never asked


def test_runpod_worker_runs_a_builder_graph_in_the_sdk_local_test_mode(sandbox: ComfyUISandbox,
                                                                       store: Store) -> None:
    body = job_body(store, "att_runpod", "wan21-1.3b", Mode.I2V)
    job = {"id": "rp-job-1", "input": {"workflow": body["workflow"], "inputs": body["inputs"],
                                        "output_put_url": f"{store.url}/out/rp-job-1.mp4"}}
    env = {**os.environ, "HVR_COMFYUI_URL": sandbox.url, "PYTHONPATH": str(PROJECT_ROOT),
           "HVR_AGENT_ALLOW_LOOPBACK_INPUTS": "1"}
    env.pop("RUNPOD_WEBHOOK_GET_JOB", None)  # unset: the SDK runs the one --test_input job and exits

    done = subprocess.run([sys.executable, "-m", "agent.runpod_worker", "--test_input", json.dumps(job)],
                          cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=120)

    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    line = next(line for line in (done.stdout + done.stderr).splitlines() if "Job result:" in line)
    output = ast.literal_eval(line.split("Job result:", 1)[1].strip())["output"]  # the SDK logs the dict's repr
    uploaded = store.uploads["/out/rp-job-1.mp4"]
    assert output["video"]["bytes"] == len(uploaded) and output["gpu_seconds"] > 0
    assert check_against_spec(probe(uploaded), WIDTH, HEIGHT, 9, FPS) == []


def test_runpod_handler_answers_like_worker_comfyui(sandbox: ComfyUISandbox, store: Store,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    from agent import runpod_worker

    monkeypatch.setenv("HVR_COMFYUI_URL", sandbox.url)
    monkeypatch.delenv("BUCKET_ENDPOINT_URL", raising=False)
    runpod_worker._engine.cache_clear()
    workflow = job_body(store, "att_rp_inline", "wan21-1.3b", Mode.I2V)["workflow"]
    image = "data:image/png;base64," + base64.b64encode(store.objects["/in/image.png"]).decode()

    answer = runpod_worker.handler({"id": "rp-job-2", "input": {
        "workflow": json.dumps(workflow), "images": [{"name": "hvr-input-image.png", "image": image}]}})
    refused = runpod_worker.handler({"id": "rp-job-3", "input": {"images": []}})

    (item,) = answer["images"]
    assert item["type"] == "base64" and item["filename"].endswith(".mp4")
    assert check_against_spec(probe(base64.b64decode(item["data"])), WIDTH, HEIGHT, 9, FPS) == []
    assert "workflow" in refused["error"]


# -- the sandbox speaks ComfyUI's protocol (docs/providers.md §4) ---------------------------------------------------


def test_sandbox_websocket_messages_follow_comfyui_order(sandbox: ComfyUISandbox, store: Store) -> None:
    from websockets.sync.client import connect

    workflow = job_body(store, "att_ws", "wan21-1.3b", Mode.T2V)["workflow"]
    ws_url = sandbox.url.replace("http://", "ws://") + "/ws?clientId=probe-client"
    with connect(ws_url, proxy=None) as ws:
        assert json.loads(ws.recv(timeout=5))["data"]["sid"] == "probe-client"
        answer = httpx.post(f"{sandbox.url}/api/prompt", json={"prompt": workflow, "client_id": "probe-client"})
        prompt_id = answer.json()["prompt_id"]
        kinds = []
        while True:
            message = json.loads(ws.recv(timeout=10))
            kinds.append(message["type"])
            if message["type"] == "executing" and message["data"]["node"] is None:
                history = httpx.get(f"{sandbox.url}/history/{prompt_id}").json()
                break

    assert answer.status_code == 200 and answer.json()["node_errors"] == {}
    assert kinds[:2] == ["execution_start", "execution_cached"]
    assert {"executing", "progress", "executed"} <= set(kinds)
    assert kinds[-2:] == ["execution_success", "executing"]
    entry = history[prompt_id]  # written before `executing: null` is sent
    assert entry["status"]["status_str"] == "success" and entry["status"]["completed"] is True
    (output,) = entry["outputs"].values()
    assert output["animated"] == [True] and output["images"][0]["filename"].endswith(".mp4")


def test_sandbox_refuses_a_bad_graph_with_comfyui_node_errors(sandbox: ComfyUISandbox) -> None:
    graph = {"1": {"class_type": "EmptyLatentImage", "inputs": {"width": 8, "height": 64, "batch_size": 1}},
             "2": {"class_type": "SaveVideo", "inputs": {"video": ["1", 0], "filename_prefix": "x", "format": "mp4"}}}

    answer = httpx.post(f"{sandbox.url}/prompt", json={"prompt": graph})
    unknown = httpx.post(f"{sandbox.url}/prompt", json={"prompt": {"1": {"class_type": "Nope", "inputs": {}}}})

    assert answer.status_code == 400
    body = answer.json()
    assert body["error"]["type"] == "prompt_outputs_failed_validation"
    assert {e["type"] for e in body["node_errors"]["1"]["errors"]} == {"value_smaller_than_min"}
    assert body["node_errors"]["2"]["errors"][0]["type"] == "return_type_mismatch"
    assert unknown.status_code == 400 and unknown.json()["error"]["type"] == "invalid_prompt"


def test_sandbox_uploads_and_view_behave_like_comfyui(sandbox: ComfyUISandbox) -> None:
    first = httpx.post(f"{sandbox.url}/upload/image", files={"image": ("same.png", b"one")}).json()
    clash = httpx.post(f"{sandbox.url}/upload/image", files={"image": ("same.png", b"two")}).json()
    forced = httpx.post(f"{sandbox.url}/upload/image", files={"image": ("same.png", b"three")},
                        data={"overwrite": "true"}).json()

    assert (first["name"], clash["name"], forced["name"]) == ("same.png", "same (1).png", "same.png")
    assert first["type"] == "input"
    view = httpx.get(f"{sandbox.url}/view", params={"filename": "same.png", "type": "input"})
    assert view.status_code == 200 and view.content == b"three"
    assert httpx.get(f"{sandbox.url}/view", params={"filename": "../x", "type": "input"}).status_code == 400
    assert httpx.get(f"{sandbox.url}/view", params={"filename": "x", "subfolder": "../..",
                                                   "type": "input"}).status_code == 403
    assert httpx.get(f"{sandbox.url}/view", params={"filename": "absent.png", "type": "input"}).status_code == 404


def test_on_the_studios_24_gb_card_wan22_runs_offloaded_and_only_wan21_1_3b_drops_out_on_a_10_gb_one(
        agent: AgentProcess, sandbox: ComfyUISandbox) -> None:
    # WAN 2.2's recommendation is 32 GB, but 24 GB is its minimum offloading: a 24 GB card lists it (it didn't when
    # the agent compared the card with the recommendation, so WAN 2.2 never ran locally).
    def models_on(card_mb: int) -> set[str]:
        before, sandbox.vram_total_mb = sandbox.vram_total_mb, card_mb
        try:
            deadline = time.monotonic() + WAIT_S
            while True:  # the engine caches what it can run for a moment
                health = httpx.get(f"{agent.url}/v1/health", timeout=5).json()
                if health["vram"]["total_mb"] == card_mb and health["models"] is not None:
                    listed = set(health["models"])
                    if time.monotonic() > deadline or ("wan22-14b" in listed) == (card_mb >= 24576):
                        return listed
                time.sleep(0.2)
        finally:
            sandbox.vram_total_mb = before

    assert {"wan22-14b", "wan22-s2v-14b", "wan21-14b"} <= models_on(24576)
    on_a_3080 = models_on(10240)
    assert "animatediff-sd15" in on_a_3080 and not {"wan21-1.3b", "wan21-14b", "wan22-14b"} & on_a_3080
