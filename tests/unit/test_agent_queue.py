"""The agent's job store (agent/store.py): its queue order (earliest deadline first, jobs without one last, ties by
creation), and the busy time its health check reports as utilization."""

from datetime import UTC, datetime
from pathlib import Path

import pytest

from agent.schemas import CreateJobRequest, utc_stamp
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


def test_busy_seconds_sum_each_jobs_wall_time_inside_the_window(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    stamp = utc_stamp(datetime(2027, 1, 8, 10, 0, tzinfo=UTC))
    monkeypatch.setattr("agent.store.utc_now", lambda: stamp)  # the store's every start and end is stamped here

    def at(hour: int, minute: int) -> float:
        nonlocal stamp
        moment = datetime(2027, 1, 8, hour, minute, tzinfo=UTC)
        stamp = utc_stamp(moment)
        return moment.timestamp()

    store = JobStore(tmp_path / "agent.db")
    for attempt_id in ("before", "across", "inside", "running", "never_started", "cancelled_queued"):
        store.create(body(attempt_id, None))

    def run(attempt_id: str) -> None:
        claimed = store.claim_next()
        assert claimed is not None and claimed.attempt_id == attempt_id

    at(10, 0)
    run("before")
    at(10, 30)
    store.finish("before", "succeeded", gpu_seconds=99_999)  # GPU-seconds are not wall time: never read here
    run("across")
    at(11, 15)
    store.finish("across", "failed", gpu_seconds=1, error="boom")
    at(11, 20)
    run("inside")
    at(11, 30)
    store.cancel("cancelled_queued")  # ended without ever starting
    at(11, 40)
    run("running")
    at(11, 50)
    store.finish("inside", "succeeded", gpu_seconds=1)
    noon = at(12, 0)

    # Window 11:00 to 12:00: `across` from 11:00 (15 min), `inside` 30 min, `running` 20 min so far; the rest nothing.
    assert store.busy_seconds(3600, now=noon) == pytest.approx((15 + 30 + 20) * 60)
    # Half an hour on, 11:30 to 12:30: `inside` 20 min, `running` 50 min and counting.
    assert store.busy_seconds(3600, now=noon + 1800) == pytest.approx((20 + 50) * 60)
    # 11:50 to 12:00: only `running`; `inside` ended as the window opened.
    assert store.busy_seconds(600, now=noon) == pytest.approx(600)
    store.close()
