"""The agent's queue order (agent/store.py): earliest deadline first, jobs without one last, ties by creation."""

from pathlib import Path

from agent.schemas import CreateJobRequest
from agent.store import JobStore


def body(attempt_id: str, deadline: str | None) -> CreateJobRequest:
    return CreateJobRequest.model_validate({
        "attempt_id": attempt_id, "job_id": f"job_{attempt_id}", "model": "animatediff-sd15", "prompt": "a kite",
        "spec": {"width": 512, "height": 512, "frames": 16, "fps": 8}, "output": {"put_url": "http://sink/x.mp4"},
        "deadline": deadline,
    })


def test_jobs_run_earliest_deadline_first(tmp_path: Path) -> None:
    store = JobStore(tmp_path / "agent.db")
    for attempt_id, deadline in (("none", None), ("tomorrow", "2026-11-26T12:00:00Z"),
                                 ("soon", "2026-11-25T13:00:00+00:00"), ("soon_too", "2026-11-25T15:00:00+02:00"),
                                 ("later_today", "2026-11-25T18:00:00.250Z")):
        store.create(body(attempt_id, deadline))

    # 15:00+02:00 is 13:00Z: a tie, which the older job wins.
    assert [r.attempt_id for r in store.active()] == ["soon", "soon_too", "later_today", "tomorrow", "none"]
    assert [r.job.queue_position for r in store.active()] == [0, 1, 2, 3, 4]
    first = store.claim_next()
    assert first is not None and first.attempt_id == "soon"
    assert [(r.attempt_id, r.job.queue_position) for r in store.active()][:2] == [("soon", 0), ("soon_too", 0)]
    store.create(body("sooner", "2026-11-25T12:30:00Z"))  # a newcomer due first overtakes the queue, not the render
    assert [r.attempt_id for r in store.active()][:3] == ["soon", "sooner", "soon_too"]
    claimed = [store.claim_next() for _ in range(5)]
    assert [r.attempt_id for r in claimed if r is not None] == ["sooner", "soon_too", "later_today", "tomorrow", "none"]
    store.close()
