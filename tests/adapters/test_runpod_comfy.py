"""The studio's own RunPod worker-comfyui endpoint: the router sends the graph the local agent gets, the sandbox
validates and renders it as worker-comfyui would, and the adapter reads the video back out of `images`."""

from __future__ import annotations

import base64
import io
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image

from hvr.sandbox.base import Fault, FaultPlan, render_mp4, silent_wav
from hvr.sandbox.runpod import RunPodSandbox
from router.media.probe import probe
from router.models.common import ProviderKind
from router.models.request import VideoRequest
from router.policy.catalog import load_catalog
from router.policy.constraints import deliver
from router.providers.base import ProviderState, ProviderStatus, Submission
from router.providers.errors import Rejected
from router.providers.registry import build_providers
from router.providers.runpod import RunPodProvider, job_ref
from router.providers.runpod_comfy import RunPodComfyProvider
from router.settings import Settings
from router.workflows import INPUT_FILES, ModelFiles, build_workflow

CATALOG = load_catalog()
COMFY_OFFER = "runpod/wan22-14b-comfy"
ENDPOINT = "studio-wan22"


def png(width: int = 64, height: int = 48) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (200, 40, 40)).save(buffer, format="PNG")
    return buffer.getvalue()


class Bucket:
    """Our presigned input URLs' stand-in: serves one PNG over loopback http and counts the reads."""

    def __init__(self, body: bytes) -> None:
        self.reads = 0
        bucket = self

        class _Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                bucket.reads += 1
                self.send_response(200)
                self.send_header("content-type", "image/png")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                return None

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        self.url = f"http://127.0.0.1:{self._server.server_port}/inputs/in.png?sig=1"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture(scope="module")
def server() -> Iterator[RunPodSandbox]:
    with RunPodSandbox(comfy_endpoints=(ENDPOINT,)) as running:
        yield running


@pytest.fixture
def sandbox(server: RunPodSandbox) -> RunPodSandbox:
    server.reset()
    server.plan, server.clock, server.comfy_output = FaultPlan(), time.monotonic, "base64"
    server.queue_s, server.execution_s = 0.05, 0.2
    return server


@pytest.fixture
def bucket() -> Iterator[Bucket]:
    serving = Bucket(png())
    yield serving
    serving.close()


def provider(sandbox: RunPodSandbox) -> RunPodComfyProvider:
    return RunPodComfyProvider(sandbox.api_key, ENDPOINT, f"{sandbox.url}/v2", allow_http_inputs=True)


def submission(mode: str, inputs: dict[str, str], size: tuple[int, int] = (720, 720)) -> Submission:
    offer = CATALOG.get(COMFY_OFFER)
    assert offer is not None
    refs = {"image": "https://inputs.example.com/in.png"} if mode == "i2v" else {}
    # One second: 17 frames at 16 fps, so the rendered MP4 stays small.
    request = VideoRequest.model_validate({"mode": mode, "prompt": "a red fox in snow", "duration_s": 1, "seed": 3,
                                           **refs})
    return Submission(attempt_id="att_1", job_id="job_1", tenant="t1", offer=offer, request=request,
                      delivered=deliver(offer, request, size), inputs=inputs)


def poll_until_ended(adapter: RunPodProvider, job: str) -> ProviderStatus:
    for _ in range(500):
        status = adapter.status(job)
        if status.state.ended:
            return status
        time.sleep(0.02)
    raise AssertionError("the job never ended")


def probed(data: bytes, tmp_path: Path) -> tuple[int, int, int, float]:
    path = tmp_path / "out.mp4"
    path.write_bytes(data)
    info = probe(path)
    return info.width, info.height, info.frames, info.fps


# --- end to end -----------------------------------------------------------------------------------------------


def test_t2v_sends_the_agents_graph_and_the_base64_video_probes_to_the_delivered_spec(
        sandbox: RunPodSandbox, tmp_path: Path) -> None:
    adapter = provider(sandbox)
    sub = submission("t2v", {})
    started = adapter.submit(sub)
    assert started.provider_job_id.startswith(f"{ENDPOINT}/")

    sent = sandbox.submitted[0]["input"]
    assert "images" not in sent  # t2v loads no image
    assert sent["workflow"] == build_workflow(sub.offer, sub.request, sub.delivered, ModelFiles.load())

    done = poll_until_ended(adapter, started.provider_job_id)
    assert done.state is ProviderState.SUCCEEDED, done.error
    assert done.output_url is None and done.output_bytes is not None
    spec = sub.delivered
    assert probed(done.output_bytes, tmp_path) == (spec.width, spec.height, spec.frames, pytest.approx(spec.fps))
    # GPU-second pricing: no stated cost, the bill is the run time.
    assert done.cost_usd is None
    assert done.billed.gpu_seconds == pytest.approx(sandbox.execution_s, abs=0.1)


def test_i2v_uploads_the_image_under_the_graphs_load_image_name(sandbox: RunPodSandbox, bucket: Bucket,
                                                               tmp_path: Path) -> None:
    adapter = provider(sandbox)
    sub = submission("i2v", {"image": bucket.url}, size=(1280, 720))
    started = adapter.submit(sub)

    sent = sandbox.submitted[0]["input"]
    assert bucket.reads == 1
    assert [image["name"] for image in sent["images"]] == [INPUT_FILES["image"]]
    assert base64.b64decode(sent["images"][0]["image"]) == png()
    loads = [node for node in sent["workflow"].values() if node["class_type"] == "LoadImage"]
    assert [node["inputs"]["image"] for node in loads] == [INPUT_FILES["image"]]

    done = poll_until_ended(adapter, started.provider_job_id)
    assert done.state is ProviderState.SUCCEEDED, done.error
    assert done.output_bytes is not None
    spec = sub.delivered
    assert probed(done.output_bytes, tmp_path) == (1280, 720, spec.frames, pytest.approx(spec.fps))


def test_an_s3_url_output_becomes_the_output_url(sandbox: RunPodSandbox, tmp_path: Path) -> None:
    sandbox.comfy_output = "s3_url"
    adapter = provider(sandbox)
    sub = submission("t2v", {})
    done = poll_until_ended(adapter, adapter.submit(sub).provider_job_id)
    assert done.state is ProviderState.SUCCEEDED and done.output_bytes is None and done.output_url is not None
    spec = sub.delivered
    assert probed(httpx.get(done.output_url).content, tmp_path) == (spec.width, spec.height, spec.frames,
                                                                    pytest.approx(spec.fps))


def test_an_i2v_without_its_image_is_refused_before_anything_is_sent(sandbox: RunPodSandbox) -> None:
    with pytest.raises(Rejected, match="image"):
        provider(sandbox).submit(submission("i2v", {}))
    assert sandbox.created == 0


# --- failures -------------------------------------------------------------------------------------------------


def test_an_invalid_graph_fails_with_the_node_named(sandbox: RunPodSandbox) -> None:
    sub = submission("i2v", {})
    graph = build_workflow(sub.offer, sub.request, sub.delivered, ModelFiles.load())
    load_image = next(nid for nid, node in graph.items() if node["class_type"] == "LoadImage")
    # The image the graph loads was never sent: ComfyUI refuses the prompt, worker-comfyui fails the job.
    response = httpx.post(f"{sandbox.url}/v2/{ENDPOINT}/run", json={"input": {"workflow": graph}},
                          headers={"Authorization": f"Bearer {sandbox.api_key}"})
    done = poll_until_ended(provider(sandbox), job_ref(ENDPOINT, response.json()["id"]))
    assert done.state is ProviderState.FAILED
    assert done.error is not None and "Workflow validation failed" in done.error
    assert f"Node {load_image} (class_type): LoadImage" in done.error
    assert INPUT_FILES["image"] in done.error


def test_an_execution_error_reports_the_sampler_from_details(sandbox: RunPodSandbox) -> None:
    sandbox.plan = FaultPlan({"create": [Fault.FAILED]})
    adapter = provider(sandbox)
    sub = submission("t2v", {})
    done = poll_until_ended(adapter, adapter.submit(sub).provider_job_id)
    sampler = next(nid for nid, node in sandbox.submitted[0]["input"]["workflow"].items()
                   if node["class_type"] in ("KSampler", "KSamplerAdvanced"))
    assert done.state is ProviderState.FAILED and done.error is not None
    assert done.error.startswith("Job processing failed: Workflow execution error")
    assert f"Node ID: {sampler}" in done.error
    assert done.billed.gpu_seconds > 0  # a failed run is still paid GPU time


# --- wiring ---------------------------------------------------------------------------------------------------


def settings(**extra: str) -> Settings:
    return Settings.model_validate({"HVR_JOBS_TABLE": "jobs", "HVR_LEDGER_TABLE": "ledger", "HVR_BUCKET": "bucket",
                                    "HVR_JOBS_QUEUE_URL": "https://sqs.example.com/q", "HVR_KEYS_TABLE": "keys",
                                    "HVR_BUDGETS_TABLE": "budgets", "HVR_IDEMPOTENCY_TABLE": "nonces",
                                    "HVR_AGENTS_TABLE": "agents",
                                    "HVR_ALERTS_TOPIC_ARN": "arn:aws:sns:us-east-1:0:alerts",
                                    "HVR_EVENTS_TOPIC_ARN": "arn:aws:sns:us-east-1:0:events",
                                    "HVR_RUNPOD_API_KEY": "key", **extra})


def test_the_comfy_offer_is_supported_only_with_the_endpoint_setting() -> None:
    comfy, public = CATALOG.get(COMFY_OFFER), CATALOG.get("runpod/wan-2-5")
    assert comfy is not None and public is not None

    without = build_providers(settings())[ProviderKind.RUNPOD]
    assert not without.supports(comfy) and without.supports(public)

    with_endpoint = build_providers(settings(HVR_RUNPOD_COMFY_ENDPOINT=ENDPOINT))[ProviderKind.RUNPOD]
    assert isinstance(with_endpoint, RunPodComfyProvider)
    assert with_endpoint.supports(comfy) and with_endpoint.supports(public)


def _wav(seconds: float = 1.0) -> bytes:
    return silent_wav(seconds)


# WAN's fine-tuned families on the studio endpoint: each offer's request and the inputs it sends (by kind).
FAMILIES = [
    ("runpod/wan21-phantom-14b-comfy", {"mode": "r2v", "reference_images": ["https://in.example.com/a.png",
                                                                             "https://in.example.com/b.png"]},
     {"reference_image_1": "png", "reference_image_2": "png"}),
    ("runpod/wan21-flf2v-14b-comfy", {"mode": "flf2v", "image": "https://in.example.com/a.png",
                                      "last_image": "https://in.example.com/b.png"},
     {"image": "png", "last_image": "png"}),
    ("runpod/wan22-animate-14b-comfy", {"mode": "animate", "image": "https://in.example.com/a.png",
                                        "video": "https://in.example.com/d.mp4"},
     {"image": "png", "video": "mp4"}),
    ("runpod/humo-17b-comfy", {"mode": "s2v", "audio": "https://in.example.com/v.wav"}, {"audio": "wav"}),
]


@pytest.mark.parametrize(("offer_id", "fields", "inputs"), FAMILIES, ids=[f[0] for f in FAMILIES])
def test_each_wan_family_runs_its_core_graph_on_the_studio_endpoint(sandbox: RunPodSandbox, tmp_path: Path,
                                                                   offer_id: str, fields: dict[str, Any],
                                                                   inputs: dict[str, str]) -> None:
    offer = CATALOG.get(offer_id)
    assert offer is not None
    bodies = {"png": png(), "mp4": render_mp4(tmp_path / "drive.mp4", 160, 96, 17, 16.0, "t", "drive").read_bytes(),
              "wav": _wav()}
    buckets = {kind: Bucket(body) for kind, body in bodies.items()}
    try:
        request = VideoRequest.model_validate({"prompt": "a red fox in snow", "duration_s": 1, "seed": 3, **fields})
        sub = Submission(attempt_id="att_1", job_id="job_1", tenant="t1", offer=offer, request=request,
                         delivered=deliver(offer, request, (832, 480)),
                         inputs={name: buckets[kind].url for name, kind in inputs.items()})
        adapter = provider(sandbox)
        started = adapter.submit(sub)
        sent = sandbox.submitted[0]["input"]
        assert sent["workflow"] == build_workflow(offer, request, sub.delivered, ModelFiles.load())
        done = poll_until_ended(adapter, started.provider_job_id)
        assert done.state is ProviderState.SUCCEEDED, done.error
        assert done.output_bytes is not None
        spec = sub.delivered
        assert probed(done.output_bytes, tmp_path) == (832, 480, spec.frames, pytest.approx(spec.fps))
    finally:
        for bucket in buckets.values():
            bucket.close()
