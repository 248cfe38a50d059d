"""What hvr adds on top of each provider, measured on its sandbox (issue 5's figure). `make bench` prints it.

For every job: turnaround (accepted → succeeded, from the job's own timestamps) minus the provider's own time
(its reported render time). What is left is routing, submission, polling or webhook wake-up, the download into S3
and the probe.
"""

import statistics
import tempfile
from pathlib import Path

import pytest

from hvr.local.embedded import EmbeddedStack
from router.models.request import VideoRequest
from router.services.submit import accept
from tests.bench.conftest import Record

JOBS = {
    "runpod": {"mode": "t2v", "prompt": "waves", "resolution": "720p", "duration_s": 5, "quality": "premium",
               "providers": ["runpod"], "deadline_s": 3600},
    "replicate": {"mode": "t2v", "prompt": "plane", "resolution": "480p", "duration_s": 5, "quality": "standard",
                  "providers": ["replicate"], "deadline_s": 3600},
    "veo": {"mode": "t2v", "prompt": "bottle", "resolution": "720p", "duration_s": 8, "quality": "premium",
            "providers": ["veo"], "deadline_s": 3600},
}


@pytest.mark.slow
def test_overhead_per_provider(bench_record: Record) -> None:
    with EmbeddedStack(Path(tempfile.mkdtemp()), time_scale=5000.0) as stack:
        deps = stack.deps
        for provider, body in JOBS.items():
            overheads, turnarounds = [], []
            for _ in range(5):
                job = accept(VideoRequest.parse_at_edge(body), "bench", deps)
                assert stack.drain(lambda j=job: deps.jobs.get("bench", j.id).status.terminal, timeout_s=60)
                done = deps.jobs.get("bench", job.id)
                assert done.status.value == "succeeded", done.error
                attempt = done.attempts[-1]
                found = deps.providers[attempt.provider].status(attempt.provider_job_id)
                turnaround = (done.updated_at - done.created_at).total_seconds()
                turnarounds.append(turnaround)
                overheads.append(turnaround - (found.render_s or 0.0))
            print(f"\n{provider}: turnaround median {statistics.median(turnarounds):.2f} s, "
                  f"hvr overhead median {statistics.median(overheads):.2f} s (max {max(overheads):.2f} s)")
            bench_record("provider_overhead", str(provider), {
                "jobs": len(turnarounds), "turnaround_median_s": round(statistics.median(turnarounds), 3),
                "overhead_median_s": round(statistics.median(overheads), 3),
                "overhead_max_s": round(max(overheads), 3)})
