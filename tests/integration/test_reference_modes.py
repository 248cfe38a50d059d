"""Issue 17: an r2v (Phantom) and an animate (WAN 2.2 Animate) job through the embedded stack, rendered by the
local GPU agent (sim engine), each delivered as a probed MP4 of the delivered size. The router builds each job's
ComfyUI graph and checks it against the node schema derived from the real server's /object_info."""

from __future__ import annotations

import io
import uuid
from pathlib import Path

from agent.engines.sim import encode_video
from router.media.probe import probe
from router.models.job import JobStatus
from router.models.request import VideoRequest
from router.services.submit import accept

TENANT = "acme"
# A 1x1 PNG: the sim engine never reads it; the router checks the upload exists and fits its cap.
PNG = bytes.fromhex("89504e470d0a1a0a0000000d4948445200000001000000010806000000"
                    "1f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082")


def upload(deps, data: bytes, extension: str, content_type: str) -> str:
    key = f"uploads/{TENANT}/{uuid.uuid4().hex}{extension}"
    deps.artifacts.upload_stream(key, io.BytesIO(data), content_type=content_type)
    return f"s3://{deps.artifacts.bucket}/{key}"


def driving_video(tmp_path: Path) -> bytes:
    path = tmp_path / "drive.mp4"
    encode_video(path, 320, 240, 17, 16.0, "driving video", "pose")
    return path.read_bytes()


def render(stack, deps, body: dict) -> tuple:
    job = accept(VideoRequest.parse_at_edge(body), TENANT, deps)
    assert stack.drain(lambda: deps.jobs.get(TENANT, job.id).status.terminal, timeout_s=60)
    job = deps.jobs.get(TENANT, job.id)
    assert job.status is JobStatus.SUCCEEDED, job.error
    assert job.output is not None
    return job, probe(deps.artifacts.download(job.output.s3_uri.split("/", 3)[3]))


BASE = {"prompt": "the mug from the photos on a sunny kitchen table", "resolution": "832x480", "duration_s": 2,
        "quality": "draft", "deadline_s": 30 * 86400, "providers": ["local"]}


def test_an_r2v_job_renders_on_phantom_with_every_reference_image(stack, deps, spy) -> None:
    refs = [upload(deps, PNG, ".png", "image/png") for _ in range(3)]
    job, video = render(stack, deps, {**BASE, "mode": "r2v", "reference_images": refs})

    (attempt,) = job.attempts
    assert attempt.offer == "local/wan21-phantom-14b"
    delivered = attempt.delivered
    assert (video.width, video.height, video.frames, video.fps) == (delivered.width, delivered.height,
                                                                    delivered.frames, delivered.fps)
    assert (video.width, video.height) == (832, 480)
    assert spy.submits == 1


def test_an_animate_job_renders_on_wan22_animate_from_an_uploaded_mp4(stack, deps, spy, tmp_path: Path) -> None:
    image = upload(deps, PNG, ".png", "image/png")
    video_ref = upload(deps, driving_video(tmp_path), ".mp4", "video/mp4")
    job, video = render(stack, deps, {**BASE, "mode": "animate", "image": image, "video": video_ref})

    (attempt,) = job.attempts
    assert attempt.offer == "local/wan22-animate-14b"
    delivered = attempt.delivered
    assert (video.width, video.height, video.frames, video.fps) == (delivered.width, delivered.height,
                                                                    delivered.frames, delivered.fps)
    assert (video.width, video.height) == (832, 480)


def test_the_worker_presigns_each_reference_image_under_its_own_key(stack, deps) -> None:
    from router.services.route import input_urls

    refs = [upload(deps, PNG, ".png", "image/png") for _ in range(2)]
    job = accept(VideoRequest.parse_at_edge({**BASE, "mode": "r2v", "reference_images": refs}), TENANT, deps)
    urls = input_urls(deps.jobs.get(TENANT, job.id), deps)
    assert sorted(urls) == ["reference_image_1", "reference_image_2"]
    assert stack.drain(lambda: deps.jobs.get(TENANT, job.id).status.terminal, timeout_s=60)


def test_a_reference_image_of_another_tenant_is_refused_by_its_index(deps) -> None:
    from router.services.uploads import check_input_refs

    own = upload(deps, PNG, ".png", "image/png")
    theirs = f"s3://{deps.artifacts.bucket}/uploads/globex/{uuid.uuid4().hex}.png"
    request = VideoRequest.parse_at_edge({**BASE, "mode": "r2v", "reference_images": [own, theirs]})
    assert check_input_refs(request, TENANT, deps) == [
        {"field": "reference_images[1]", "message": "must be a ref returned by POST /v1/uploads"}]
