"""The wan21-uni3c-14b camera builder (router/workflows/uni3c.py): WAN 2.1 14B I2V patched by core's Uni3C
controlnet, steered by the camera render the agent stages, whose plan the graph carries; and the sim engine renders
the offer end to end."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

from agent.config import DEFAULT_MODELS_FILE
from agent.engines.sim import SimEngine
from agent.schemas import CreateJobRequest
from router.media.camera_render import META_KEY, RenderPlan, find_plan
from router.media.probe import check_against_spec, probe
from router.models.common import Mode, ProviderKind
from router.models.decision import DeliveredSpec
from router.models.request import Camera, CameraMotion, VideoRequest
from router.policy.catalog import load_catalog
from router.workflows import INPUT_FILES, ModelFiles, build_workflow, required_roles
from router.workflows.schema import default_schema

MODELS = ModelFiles.load()
OFFER = next(o for o in load_catalog().offers if o.provider is ProviderKind.LOCAL and o.model == "wan21-uni3c-14b")


def build(motion: CameraMotion, speed: float = 1.0, width: int = 832, height: int = 480,
          frames: int = 33) -> dict[str, Any]:
    request = VideoRequest(mode=Mode.CAMERA, prompt="a lighthouse at dusk", seed=11, image="s3://hvr-in/t/img.png",
                           camera=Camera(motion=motion, speed=speed))
    return build_workflow(OFFER, request, DeliveredSpec(width, height, frames, OFFER.fps.default), MODELS)


def only(graph: dict[str, Any], class_type: str) -> tuple[str, dict[str, Any]]:
    (found,) = [(node_id, node) for node_id, node in graph.items() if node["class_type"] == class_type]
    return found


def test_the_offer_is_a_local_camera_offer_as_good_as_fun_camera_14b() -> None:
    fun_camera = next(o for o in load_catalog().offers if o.id == "local/wan21-14b")
    assert OFFER.id == "local/wan21-uni3c-14b" and list(OFFER.modes) == [Mode.CAMERA]
    assert OFFER.quality == fun_camera.quality
    assert "estimate" in OFFER.latency.source
    assert required_roles("wan21-uni3c-14b", Mode.CAMERA) == ("i2v", "model_patch", "clip_vision", "text_encoder",
                                                              "vae")


@pytest.mark.parametrize("motion", list(CameraMotion))
def test_uni3c_patches_the_sampled_model_with_the_staged_render_and_its_plan(motion: CameraMotion) -> None:
    graph = build(motion, speed=1.5, width=1280, height=720, frames=49)

    uni3c_id, uni3c = only(graph, "WanUni3CControlnetApply")
    _, sampler = only(graph, "KSampler")
    assert sampler["inputs"]["model"] == [uni3c_id, 0]
    patch = graph[uni3c["inputs"]["model_patch"][0]]
    assert patch == {"class_type": "ModelPatchLoader", "inputs": {"name": MODELS.file("wan21-uni3c-14b",
                                                                                      "model_patch")}}
    assert graph[uni3c["inputs"]["model"][0]]["class_type"] == "ModelSamplingSD3"
    scaled = graph[uni3c["inputs"]["render_video"][0]]
    assert (scaled["class_type"], scaled["inputs"]["width"], scaled["inputs"]["height"]) == ("ImageScale", 1280, 720)
    components = graph[scaled["inputs"]["image"][0]]
    video = graph[components["inputs"]["video"][0]]
    assert video["class_type"] == "LoadVideo" and video["inputs"]["file"] == INPUT_FILES["camera_render"]
    assert RenderPlan.from_meta(video["_meta"][META_KEY]) == RenderPlan(motion, 1.5, 1280, 720, 49, 16.0)
    assert find_plan(graph) == RenderPlan(motion, 1.5, 1280, 720, 49, 16.0)
    spec = default_schema().nodes["WanUni3CControlnetApply"].inputs
    assert set(uni3c["inputs"]) == set(spec)
    _, i2v = only(graph, "WanImageToVideo")
    assert (i2v["inputs"]["width"], i2v["inputs"]["height"], i2v["inputs"]["length"]) == (1280, 720, 49)
    loaded = graph[graph[i2v["inputs"]["start_image"][0]]["inputs"]["image"][0]]
    assert loaded["inputs"]["image"] == INPUT_FILES["image"]


def test_the_sim_engine_renders_the_offer(tmp_path: Path) -> None:
    request = CreateJobRequest.model_validate({
        "attempt_id": "att_uni3c_sim", "job_id": "job_uni3c", "model": "wan21-uni3c-14b", "prompt": "a lighthouse",
        "spec": {"width": 96, "height": 64, "frames": 9, "fps": 16},
        "workflow": build(CameraMotion.ZOOM_IN, width=96, height=64, frames=9),
        "inputs": {"image": "https://inputs.example.com/i.png"},
        "output": {"put_url": "http://127.0.0.1:9/unused"},
    })
    engine = SimEngine(DEFAULT_MODELS_FILE, time_scale=1e12)
    out = tmp_path / "out.mp4"

    result = engine.render(request, out, lambda _: None, threading.Event())

    assert result.gpu_seconds > 0
    assert check_against_spec(probe(out), 96, 64, 9, 16) == []
