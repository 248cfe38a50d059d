"""Long-form jobs through the real worker on the twins: each segment an attempt of its own, the next one continuing
from the last frame of the one before, a failed segment rendered again from the last good one, and the segments
joined into the job's one video."""

from __future__ import annotations

from decimal import Decimal

import pytest

from router.models.common import Mode, ProviderKind
from router.models.job import CLIENT_VIDEO, AttemptStatus, Job, JobStatus
from router.models.outcome import AttemptOutcome
from router.models.request import VideoRequest
from router.services import cancel, submit
from router.services.uploads import own_upload_key, upload_prefix
from router.store.artifacts import output_key
from tests.twins import ScriptedGpu, Twins, twins, video

# 12 s at 16 fps is 192 frames; one WAN render makes at most 81, so three segments of 65 (4n+1).
REQUEST = {"mode": "t2v", "prompt": "a slow walk along the harbour", "resolution": "480p", "duration_s": 12,
           "model": "local/wan21-1.3b"}


def started(endings: list[str], **request: object) -> tuple[Twins, ScriptedGpu, Job]:
    gpu = ScriptedGpu(endings)
    world = twins({ProviderKind.LOCAL: gpu}, HVR_EXPLORATION_SHARE="0")
    job = submit.accept(VideoRequest.parse_at_edge({**REQUEST, **request}), "acme", world.deps)
    return world, gpu, job


def test_a_video_longer_than_one_render_is_rendered_as_segments_each_continuing_the_last_and_joined() -> None:
    world, gpu, job = started(["ok", "ok", "ok"])
    world.run()
    done = world.jobs.get("acme", job.id)
    assert done.status is JobStatus.SUCCEEDED, done.error
    assert done.segments is not None and [s.frames for s in done.segments.done] == [65, 65, 65]
    assert done.output is not None and (done.output.frames, done.output.fps) == (195, 16.0)
    assert done.output.duration_s == pytest.approx(195 / 16, abs=1e-3)
    assert done.output.s3_uri.endswith(output_key("acme", job.id, "joined")) and done.segments.joined == "copied"
    assert world.artifacts.size(output_key("acme", job.id, "joined")) == done.output.bytes
    first, second, third = gpu.submissions()
    # The first segment is the request's own mode; each next one an i2v from the frame the one before ended on.
    assert first.request.mode is Mode.T2V and first.request.image is None
    for before, after in ((done.segments.done[0], second), (done.segments.done[1], third)):
        assert after.request.mode is Mode.I2V and after.request.image == before.last_frame
        assert own_upload_key(before.last_frame or "", "acme", world.artifacts.bucket) is not None
        assert "image" in after.inputs and after.delivered == first.delivered
    assert done.segments.done[2].last_frame is None
    assert [a.delivered.frames for a in done.attempts] == [65, 65, 65]
    rows = world.deps.ledger.for_job("acme", job.id)
    assert [r.outcome for r in rows] == [AttemptOutcome.SUCCEEDED] * 3
    assert done.cost.actual_usd == sum((r.actual_usd for r in rows), Decimal(0)) > 0
    assert done.progress == 1.0


def test_a_failed_segment_is_rendered_again_from_the_last_good_one_not_from_zero() -> None:
    world, gpu, job = started(["ok", "crash", "ok", "ok"])
    world.run()
    done = world.jobs.get("acme", job.id)
    assert done.status is JobStatus.SUCCEEDED, done.error
    assert [a.status for a in done.attempts] == [AttemptStatus.SUCCEEDED, AttemptStatus.FAILED,
                                                 AttemptStatus.SUCCEEDED, AttemptStatus.SUCCEEDED]
    _, failed, retried, _ = gpu.submissions()
    assert done.segments is not None
    assert failed.request.image == retried.request.image == done.segments.done[0].last_frame
    assert [s.attempt_id for s in done.segments.done] == [done.attempts[i].id for i in (0, 2, 3)]
    assert done.output is not None and done.output.frames == 195
    outcomes = [r.outcome for r in world.deps.ledger.for_job("acme", job.id)]
    assert outcomes == [AttemptOutcome.SUCCEEDED, AttemptOutcome.FAILED, AttemptOutcome.SUCCEEDED,
                        AttemptOutcome.SUCCEEDED]


def test_progress_counts_the_segments_done_and_the_rest_is_routed_within_what_is_left_of_the_cap() -> None:
    world, gpu, job = started(["ok", "running"], max_cost_usd="50")
    while len(gpu.jobs) < 2:
        world.step()
    for _ in range(3):  # the second segment's first polls
        world.step()
    running = world.jobs.get("acme", job.id)
    assert running.segments is not None and len(running.segments.done) == 1
    assert running.progress == pytest.approx((65 + 0.5 * 65) / 195, abs=0.01)
    continuing = gpu.submissions()[1].request
    spent = running.attempts[0].actual_cost_usd
    assert spent is not None and continuing.max_cost_usd == Decimal("50") - spent
    assert continuing.duration_s == pytest.approx(130 / 16)


def test_a_segment_video_that_does_not_continue_is_refused_before_any_join() -> None:
    # Every segment must be the planned spec: a wrong-size one fails and rules its offer out; with the request
    # pinned to that offer nothing is left, and the job fails with what was done kept on record.
    world, _, job = started(["ok", "wrong_size"])
    world.run()
    done = world.jobs.get("acme", job.id)
    assert done.status is JobStatus.FAILED and done.output is None and done.error is not None
    assert done.error.message.startswith("output_mismatch: size 416x480")
    assert done.segments is not None and len(done.segments.done) == 1


def test_extend_continues_the_clients_video_from_its_last_frame_and_delivers_both_joined() -> None:
    gpu = ScriptedGpu(["ok", "ok"])
    world = twins({ProviderKind.LOCAL: gpu}, HVR_EXPLORATION_SHARE="0")
    clip = f"{upload_prefix('acme')}clip.mp4"
    world.artifacts.put(clip, video(640, 360, 48, 24.0))  # 2 s at 24 fps, smaller than what continues it
    asked = {"mode": "extend", "prompt": "the walk goes on", "video": f"s3://{world.artifacts.bucket}/{clip}",
             "duration_s": 8, "model": "local/wan21-1.3b"}
    job = submit.accept(VideoRequest.parse_at_edge(asked), "acme", world.deps)
    world.run()
    done = world.jobs.get("acme", job.id)
    assert done.status is JobStatus.SUCCEEDED, done.error
    assert done.segments is not None and done.segments.joined == "re-encoded"
    client, *rendered = done.segments.done
    assert client.attempt_id == CLIENT_VIDEO and client.frames == 32  # its 2 s at the rendered 16 fps
    first = gpu.submissions()[0].request
    assert first.mode is Mode.I2V and first.image == client.last_frame and first.video is None
    assert [s.frames for s in rendered] == [65, 65]  # 8 s more: two renders of 65 frames
    assert done.output is not None and (done.output.width, done.output.height, done.output.fps) == (832, 480, 16.0)
    assert done.output.frames == 32 + 130


def test_a_video_that_cant_be_continued_rejects_the_extend_job_naming_the_field_before_any_money() -> None:
    gpu = ScriptedGpu([])
    world = twins({ProviderKind.LOCAL: gpu}, HVR_EXPLORATION_SHARE="0")
    clip = f"{upload_prefix('acme')}broken.mp4"
    world.artifacts.put(clip, b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 500)
    asked = {"mode": "extend", "prompt": "more", "video": f"s3://{world.artifacts.bucket}/{clip}", "duration_s": 4}
    job = submit.accept(VideoRequest.parse_at_edge(asked), "acme", world.deps)
    world.run()
    done = world.jobs.get("acme", job.id)
    assert done.status is JobStatus.REJECTED and done.error is not None and done.error.code == "invalid_input"
    assert done.error.message.startswith("video: can't be continued")
    assert not done.attempts and not gpu.jobs and not world.deps.ledger.for_job("acme", job.id)


def test_a_cancel_between_segments_stops_the_one_rendering_and_keeps_what_was_paid_for_on_record() -> None:
    world, gpu, job = started(["ok", "running"])
    while len(gpu.jobs) < 2:
        world.step()
    cancelled = cancel.cancel("acme", job.id, world.deps)
    world.run()
    done = world.jobs.get("acme", job.id)
    assert done.status is JobStatus.CANCELLED and cancelled.status is JobStatus.CANCELLED
    assert done.output is None and len(gpu.jobs) == 2  # no third segment was started
    assert [a.status for a in done.attempts] == [AttemptStatus.SUCCEEDED, AttemptStatus.CANCELLED]
    assert done.segments is not None and len(done.segments.done) == 1
    outcomes = [r.outcome for r in world.deps.ledger.for_job("acme", job.id)]
    assert outcomes == [AttemptOutcome.SUCCEEDED, AttemptOutcome.CANCELLED]
