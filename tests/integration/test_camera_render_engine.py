"""The comfyui engine makes Uni3C's camera render where the image is: staging a wan21-uni3c-14b graph against the
ComfyUI sandbox renders the MP4 from the job's image (at the delivered size, frames and fps), uploads it under the
prompt's own name and points the graph's LoadVideo at it; a render the caller sent is used as given."""

from __future__ import annotations

import io
import threading
from collections.abc import Iterator
from pathlib import Path

import av
import httpx
import numpy as np
import pytest
from PIL import Image

from agent.engines.base import EngineError
from agent.engines.comfyui import ComfyUIEngine, prompt_id_for
from hvr.sandbox.comfyui import ComfyUISandbox
from router.media.probe import check_against_spec, probe
from router.models.common import ProviderKind
from router.models.decision import DeliveredSpec
from router.models.request import Camera, CameraMotion, VideoRequest
from router.policy.catalog import load_catalog
from router.workflows import INPUT_FILES, ModelFiles, build_workflow

WIDTH, HEIGHT, FRAMES, FPS = 96, 64, 9, 8.0
OFFER = next(o for o in load_catalog().offers if o.provider is ProviderKind.LOCAL and o.model == "wan21-uni3c-14b")


@pytest.fixture(scope="module")
def sandbox() -> Iterator[ComfyUISandbox]:
    server = ComfyUISandbox(step_s=0.001).start()
    yield server
    server.stop()


def png() -> bytes:
    pixels = np.random.default_rng(1).integers(40, 255, size=(80, 120, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def graph(motion: CameraMotion = CameraMotion.PAN_LEFT) -> dict[str, object]:
    request = VideoRequest(mode="camera", prompt="a lighthouse at dusk", seed=3, image="s3://hvr-in/t/i.png",
                           camera=Camera(motion=motion))
    return build_workflow(OFFER, request, DeliveredSpec(WIDTH, HEIGHT, FRAMES, FPS), ModelFiles.load())


def run(sandbox: ComfyUISandbox, key: str, files: dict[str, bytes | str], out: Path) -> None:
    engine = ComfyUIEngine(sandbox.url)
    engine.run(key, graph(), files, out, lambda _: None, threading.Event())


def staged_render(sandbox: ComfyUISandbox) -> list[Path]:
    return sorted(sandbox.input_dir.rglob(f"*{INPUT_FILES['camera_render']}"))


def test_the_engine_renders_the_camera_path_from_the_jobs_image(sandbox: ComfyUISandbox, tmp_path: Path) -> None:
    run(sandbox, "att_uni3c_render", {INPUT_FILES["image"]: png()}, tmp_path / "out.mp4")

    assert check_against_spec(probe(tmp_path / "out.mp4"), WIDTH, HEIGHT, FRAMES, FPS) == []
    prompt_id = prompt_id_for("att_uni3c_render")
    render = sandbox.input_dir / f"{prompt_id[:13]}-{INPUT_FILES['camera_render']}"
    assert check_against_spec(probe(render), WIDTH, HEIGHT, FRAMES, FPS) == []
    with av.open(str(render)) as container:
        frames = [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]
    assert frames[0].mean() > 40  # the image, whole
    assert frames[-1][:, : WIDTH // 4 - 2].max() < 24  # Pan Left: the scene slid right, its left quarter unseen
    queued = httpx.get(f"{sandbox.url}/history/{prompt_id}").json()[prompt_id]["prompt"][2]
    (load,) = [node for node in queued.values() if node["class_type"] == "LoadVideo"]
    assert load["inputs"]["file"] == render.name


def test_a_render_the_caller_sent_is_used_as_given(sandbox: ComfyUISandbox, tmp_path: Path) -> None:
    from router.media.camera_render import RenderPlan, render_mp4

    own = render_mp4(png(), RenderPlan(CameraMotion.ZOOM_OUT, 1.0, WIDTH, HEIGHT, FRAMES, FPS))
    before = set(staged_render(sandbox))
    run(sandbox, "att_uni3c_given", {INPUT_FILES["image"]: png(), INPUT_FILES["camera_render"]: own},
        tmp_path / "out.mp4")

    (new,) = set(staged_render(sandbox)) - before
    assert new.read_bytes() == own


def test_a_camera_graph_without_an_image_fails_naming_it(sandbox: ComfyUISandbox, tmp_path: Path) -> None:
    with pytest.raises(EngineError, match="camera render of the job's image"):
        run(sandbox, "att_uni3c_noimage", {}, tmp_path / "out.mp4")
