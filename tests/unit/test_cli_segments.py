"""`hvr submit`'s progress line says which segment of a long-form job is rendering."""

from __future__ import annotations

import io
from datetime import UTC, datetime
from decimal import Decimal

from hvr.cli import Progress
from router.models.common import ProviderKind
from router.models.decision import DeliveredSpec
from router.models.job import Attempt, AttemptStatus, JobStatus, JobView, Segment, Segments
from router.models.request import VideoRequest

NOW = datetime(2026, 12, 4, 12, tzinfo=UTC)


def job(done: int, status: JobStatus = JobStatus.RUNNING) -> JobView:
    attempts = [Attempt(n=n + 1, id=f"att_1_{n + 1}", offer="local/wan21-1.3b", provider=ProviderKind.LOCAL,
                        target="agent-1", started_at=NOW, delivered=DeliveredSpec(832, 480, 81, 16.0),
                        estimated_cost_usd=Decimal("0.1"),
                        status=AttemptStatus.SUCCEEDED if n < done else AttemptStatus.RUNNING)
                for n in range(done + 1)]
    segments = [Segment(attempt_id=a.id, s3_uri="s3://b/k.mp4", frames=81) for a in attempts[:done]]
    return JobView(id="job_1", status=status, created_at=NOW, updated_at=NOW, progress=done / 6,
                   request=VideoRequest.model_validate({"mode": "t2v", "prompt": "p", "duration_s": 30}),
                   attempts=attempts, segments=Segments(width=832, height=480, fps=16.0, frames=486, done=segments))


def line(view: JobView) -> str:
    out = io.StringIO()
    Progress(out).update(view)
    return out.getvalue()


def test_the_progress_line_names_the_segment_rendering_and_how_many_there_are() -> None:
    assert line(job(0)).rstrip().endswith("running, segment 1 of 6")
    assert line(job(2)).rstrip().endswith("running, segment 3 of 6")
    assert "segment" not in line(job(5, JobStatus.SUCCEEDED))
