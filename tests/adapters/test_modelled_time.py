"""Sandboxes in the embedded stack's modelled time: a render runs its catalog time over the time scale, and the
provider's reported times (what the router bills and learns from) are modelled seconds, as the agent reports them.

Each test would have failed before: the sandboxes waited fixed wall times and reported them as they were, so a
WAN 2.1 480p clip billed 0.15 s of H100 time against a 41 s estimate."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest

from hvr.sandbox.all import START_S, paced
from hvr.sandbox.base import Pace, catalog_render_model
from hvr.sandbox.comfyui import ComfyUISandbox
from hvr.sandbox.replicate import ReplicateSandbox, Timing
from hvr.sandbox.runpod import RunPodSandbox
from router.models.request import VideoRequest
from router.policy.catalog import load_catalog
from router.policy.constraints import deliver
from router.providers.base import Submission
from router.providers.runpod_comfy import RunPodComfyProvider
from router.workflows import ModelFiles, build_workflow
from tests.waiting import until

CATALOG = load_catalog()
SCALE = 100.0
TOKEN = "r8_sandbox"
RUNPOD_KEY = "sandbox-runpod-key"
COMFY_ENDPOINT = "studio-wan22"


def p50(offer_id: str, width: int, height: int, frames: int) -> float:
    offer = CATALOG.get(offer_id)
    assert offer is not None
    return offer.latency.compute_seconds(width, height, frames, p90=False)


def test_the_catalog_render_model_is_the_offers_p50_by_model_name() -> None:
    render = catalog_render_model("replicate", CATALOG)
    # wavespeedai WAN 2.1 480p: 5 s overhead + 0.45 s/frame at 832x480.
    assert render("wavespeedai/wan-2.1-t2v-480p", 832, 480, 81) == pytest.approx(5 + 0.45 * 81)
    assert render("no/such-model", 832, 480, 81) is None
    assert Pace(SCALE).render_s("wavespeedai/wan-2.1-t2v-480p", 832, 480, 81) is None  # nothing modelled
    assert Pace(SCALE).modelled(0.5) == 50 and Pace(SCALE).wall(50) == 0.5


@pytest.fixture
def replicate() -> Iterator[ReplicateSandbox]:
    with ReplicateSandbox((TOKEN,), pace=paced("replicate", SCALE),
                          timing=Timing(start_s=START_S / SCALE, run_s=None)) as server:
        yield server


def test_a_paced_replicate_prediction_reports_its_modelled_render_seconds(replicate: ReplicateSandbox) -> None:
    http = httpx.Client(base_url=replicate.url, headers={"Authorization": f"Bearer {TOKEN}"})
    created = http.post("/v1/models/wavespeedai/wan-2.1-t2v-480p/predictions",
                        json={"input": {"prompt": "a paper plane", "num_frames": 81}})
    assert created.status_code == 201
    began = time.monotonic()
    done = until(lambda: (body := http.get(f"/v1/predictions/{created.json()['id']}").json())["status"]
                 == "succeeded" and body)
    wall = time.monotonic() - began
    modelled = p50("replicate/wan-2.1-t2v-480p", 832, 480, 81)  # 41.45 s
    assert done["metrics"]["predict_time"] == pytest.approx(modelled, rel=1e-6)
    assert done["metrics"]["total_time"] == pytest.approx(modelled + START_S, abs=1.0)
    assert modelled / SCALE <= wall < modelled / SCALE + 2.0, "it waited the modelled time over the scale"


def test_an_explicit_run_time_wins_over_the_model_and_is_reported_scaled(replicate: ReplicateSandbox) -> None:
    replicate.timing.run_s = 0.1  # tests hold predictions running this way; reported, it is 0.1 s x 100
    http = httpx.Client(base_url=replicate.url, headers={"Authorization": f"Bearer {TOKEN}"})
    created = http.post("/v1/models/wavespeedai/wan-2.1-t2v-480p/predictions", json={"input": {"prompt": "a kite"}})
    done = until(lambda: (body := http.get(f"/v1/predictions/{created.json()['id']}").json())["status"]
                 == "succeeded" and body)
    assert 10.0 <= done["metrics"]["predict_time"] < 10.0 + 0.5 * SCALE


@pytest.fixture
def runpod() -> Iterator[RunPodSandbox]:
    pace = paced("runpod", SCALE)
    with RunPodSandbox(RUNPOD_KEY, comfy_endpoints=(COMFY_ENDPOINT,), queue_s=pace.wall(START_S),
                       execution_s=None, pace=pace) as server:
        yield server


def test_a_paced_runpod_public_endpoint_reports_modelled_delay_and_execution_ms(runpod: RunPodSandbox) -> None:
    http = httpx.Client(base_url=f"{runpod.url}/v2", headers={"Authorization": f"Bearer {RUNPOD_KEY}"})
    job = http.post("/wan-2-6-t2v/run", json={"input": {"prompt": "waves", "size": "1280*720", "duration": 5}})
    done = until(lambda: (body := http.get(f"/wan-2-6-t2v/status/{job.json()['id']}").json())["status"]
                 == "COMPLETED" and body)
    # WAN 2.6 720p, 5 s at 24 fps = 120 frames: 15 s + 0.75 s/frame.
    assert done["executionTime"] == pytest.approx(p50("runpod/wan-2-6-t2v", 1280, 720, 120) * 1000, abs=1)
    assert done["delayTime"] == pytest.approx(START_S * 1000, abs=1)


def test_a_paced_worker_comfyui_job_bills_its_graphs_model_time(runpod: RunPodSandbox) -> None:
    offer = CATALOG.get("runpod/wan21-14b-comfy")
    assert offer is not None
    request = VideoRequest.model_validate({"mode": "t2v", "prompt": "a red fox in snow", "duration_s": 1, "seed": 3})
    delivered = deliver(offer, request, (832, 480))  # 17 frames
    adapter = RunPodComfyProvider(RUNPOD_KEY, COMFY_ENDPOINT, f"{runpod.url}/v2", allow_http_inputs=True)
    started = adapter.submit(Submission(attempt_id="att_1", job_id="job_1", tenant="t1", offer=offer,
                                        request=request, delivered=delivered, inputs={}))
    assert runpod.submitted[0]["input"]["workflow"] == build_workflow(offer, request, delivered, ModelFiles.load())
    done = until(lambda: (status := adapter.status(started.provider_job_id)).state.ended and status)
    modelled = p50("runpod/wan21-14b-comfy", 832, 480, 17)  # 45 s + 5 s/frame x 17 x 0.43 = 81.9 s
    assert done.billed.gpu_seconds == pytest.approx(modelled, abs=0.01)


def test_a_paced_comfyui_reports_timestamps_in_modelled_time() -> None:
    offer = CATALOG.get("local/animatediff-sd15")
    assert offer is not None
    request = VideoRequest.model_validate({"mode": "t2v", "prompt": "a paper boat", "resolution": "512x512",
                                           "aspect_ratio": "1:1", "duration_s": 2, "seed": 1})
    delivered = deliver(offer, request, (512, 512))  # 16 frames at 8 fps
    graph = build_workflow(offer, request, delivered, ModelFiles.load())
    scale = 2000.0
    with ComfyUISandbox(step_s=None, pace=paced("local", scale)) as sandbox:
        http = httpx.Client(base_url=sandbox.url)
        prompt_id = http.post("/prompt", json={"prompt": graph}).json()["prompt_id"]
        entry = until(lambda: http.get(f"/history/{prompt_id}").json().get(prompt_id))
    stamps = [m[1]["timestamp"] for m in entry["status"]["messages"] if "timestamp" in m[1]]
    gpu_seconds = (max(stamps) - min(stamps)) / 1000  # what the agent's comfyui engine bills
    # 20 s + 150 s/frame x 16 = 2,420 modelled seconds, however long encoding the MP4 took here.
    assert gpu_seconds == pytest.approx(p50("local/animatediff-sd15", 512, 512, 16), abs=0.01)
