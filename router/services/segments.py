"""Long-form jobs (docs/architecture.md, "Long-form"): a delivered segment either hands its last frame to the next
segment's attempt, or, being the last, is joined with the others into the job's video.

Each segment is an attempt like any other (its own decision, money held, ledger row, fallback hops), so a failed
segment is rendered again from the last good one, never from zero: `Job.work_request` is what is left to render.
"""

from __future__ import annotations

import io
import tempfile
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING

from router.media.probe import ProbeError, check_against_spec
from router.models.job import (
    CLIENT_VIDEO,
    Attempt,
    AttemptStatus,
    Job,
    JobError,
    JobOutput,
    JobStatus,
    Segment,
    Segments,
)
from router.models.outcome import AttemptCode, AttemptReason, Billed
from router.services import lifecycle
from router.services.deps import Deps
from router.services.uploads import own_upload_key, upload_prefix
from router.store.artifacts import key_of, output_key, s3_uri

if TYPE_CHECKING:
    from router.media.stitch import StitchMethod


def take_client_video(job: Job, deps: Deps) -> Job:
    """An `extend` job's first segment is the client's video: brought into our bucket (an https one fetched under
    the download rules), probed, and its last frame stored for the first render to continue from. The job as it
    is now: with its segments, or rejected saying why the video can't be continued."""
    import httpx

    from router.media.stitch import last_frame_png
    from router.providers.download import UnsafeDownload, fetch_to_s3

    ref = job.request.video
    assert ref is not None  # the edge requires it for extend
    key = own_upload_key(ref, job.tenant, deps.artifacts.bucket)
    try:
        if key is None:
            key = f"inputs/{job.tenant}/{job.id}/client-video.mp4"
            fetch_to_s3(ref, None, deps.artifacts, key, allow_loopback=deps.settings.allow_loopback_downloads)
        path = deps.artifacts.download(key)
        try:
            probed = deps.probe(path)
            png = last_frame_png(path)
        finally:
            Path(path).unlink(missing_ok=True)
    except (ProbeError, UnsafeDownload, httpx.HTTPError) as exc:
        return _reject(job, deps, f"video: can't be continued: {exc}")
    frame_key = f"{upload_prefix(job.tenant)}{job.id}-client-last.png"
    deps.artifacts.upload_stream(frame_key, io.BytesIO(png), "image/png")
    plan = Segments(width=probed.width, height=probed.height, fps=probed.fps, frames=probed.frames, done=[
        Segment(attempt_id=CLIENT_VIDEO, s3_uri=s3_uri(deps.artifacts.bucket, key), frames=probed.frames,
                last_frame=s3_uri(deps.artifacts.bucket, frame_key))])

    def take(draft: Job) -> JobStatus | None:
        if draft.segments is not None:
            return None
        draft.segments = plan
        return draft.status

    return lifecycle.update(deps, job.tenant, job.id, take)


def _reject(job: Job, deps: Deps, why: str) -> Job:
    def reject(draft: Job) -> JobStatus | None:
        draft.error = JobError(code="invalid_input", message=why)
        return JobStatus.REJECTED

    return lifecycle.update(deps, job.tenant, job.id, reject)


def finish_segment(job: Job, attempt: Attempt, key: str, local: Path, deps: Deps,
                   ) -> str | Joined | AttemptReason | None:
    """For a long-form job's delivered (and checked) segment, at `key` in our bucket and already downloaded to
    `local`: the last frame handed over (its ref), or, for the last segment, the joined video; or why neither could
    be made. None for a job rendered in one go."""
    plan = job.segments
    if plan is None:
        return None
    if plan.done_frames + attempt.delivered.frames >= plan.frames:
        return join(job, attempt, key, local, deps)
    return hand_over(job, attempt, local, deps)


def hand_over(job: Job, attempt: Attempt, local: Path, deps: Deps) -> str | AttemptReason:
    """Store the segment's last frame among the tenant's uploads (where the next attempt's `image` may point);
    its ref, or why the segment can't be continued from."""
    from router.media.stitch import last_frame_png

    try:
        png = last_frame_png(local)
    except ProbeError as exc:
        return AttemptReason(AttemptCode.OUTPUT_UNPLAYABLE, f"no last frame to continue from: {exc}")
    frame_key = f"{upload_prefix(job.tenant)}{job.id}-{attempt.id}-last.png"
    deps.artifacts.upload_stream(frame_key, io.BytesIO(png), "image/png")
    return s3_uri(deps.artifacts.bucket, frame_key)


def continue_after(job: Job, attempt: Attempt, key: str, last_frame: str, billed: Billed, actual: Decimal,
                   deps: Deps) -> None:
    """Close the delivered segment's attempt and route the next segment."""
    from router.services.route import route_next

    def close(draft: Job) -> JobStatus | None:
        current = draft.attempt(attempt.id)
        if current is None or current.status.ended or draft.segments is None:
            return None
        current.close(deps.clock(), AttemptStatus.SUCCEEDED, None, billed, actual)
        draft.segments.done.append(Segment(attempt_id=attempt.id, s3_uri=s3_uri(deps.artifacts.bucket, key),
                                           frames=current.delivered.frames, last_frame=last_frame))
        draft.cost.actual_usd = draft.total_actual()
        draft.progress = round(draft.overall_progress(0.0), 3)  # the done segments; the next hasn't begun
        return JobStatus.ROUTED  # the next segment's hop

    job = lifecycle.update(deps, job.tenant, job.id, close)
    if job.status is JobStatus.ROUTED:
        route_next(job, deps)


@dataclass(frozen=True)
class Joined:
    output: JobOutput
    last: Segment
    method: StitchMethod


def join(job: Job, attempt: Attempt, key: str, local: Path, deps: Deps) -> Joined | AttemptReason:
    """The job's video: every segment, this last one included, joined in our bucket and checked against the
    whole plan; or why it can't be made (the attempt then fails like any output that didn't check out)."""
    from router.media.stitch import stitch

    plan = job.segments
    assert plan is not None
    last = Segment(attempt_id=attempt.id, s3_uri=s3_uri(deps.artifacts.bucket, key), frames=attempt.delivered.frames)
    parts = [*plan.done, last]
    with tempfile.TemporaryDirectory() as directory:
        paths = [*(deps.artifacts.download(key_of(part.s3_uri), directory) for part in plan.done), local]
        target = Path(directory) / "joined.mp4"
        try:
            method = stitch(paths, target, (plan.width, plan.height, plan.fps))
            probed = deps.probe(target)
        except ProbeError as exc:
            return AttemptReason(AttemptCode.OUTPUT_UNPLAYABLE, f"the segments can't be joined: {exc}")
        frames = sum(part.frames for part in parts)
        mismatches = check_against_spec(probed, plan.width, plan.height, frames, plan.fps)
        if mismatches:
            return AttemptReason(AttemptCode.OUTPUT_MISMATCH, "joined video: " + "; ".join(mismatches))
        joined = output_key(job.tenant, job.id, "joined")
        with target.open("rb") as stream:
            deps.artifacts.upload_stream(joined, stream)
    output = JobOutput(s3_uri=s3_uri(deps.artifacts.bucket, joined), bytes=probed.bytes, width=probed.width,
                       height=probed.height, frames=probed.frames, fps=probed.fps,
                       duration_s=round(probed.duration_s, 3))
    return Joined(output, last, method)
