"""A long-form job end to end on the embedded stack, over HTTP: accepted, rendered by the agent's sim engine as
chained segments (each an attempt with its own progress and ledger row, each next one an i2v from the last frame
of the one before), joined in the bucket, probed, downloaded. `make test` runs 30 s; `make bench` the full 3 min."""

from __future__ import annotations

import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import httpx
import pytest

from hvr.local.embedded import EmbeddedStack
from router.media.probe import probe

# A 3-minute job is 36 renders of 81 frames, ~19,500 modelled seconds each at the catalog's WAN 1.3B figures:
# this scale plays them in about 14 s of waiting, and the sim engine's encoding of 2,916 frames takes the rest.
TIME_SCALE = 50_000.0
KEYS = "acme:acme-key:admin"


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    with EmbeddedStack(Path(tmp_path_factory.mktemp("long")), time_scale=TIME_SCALE, api_keys=KEYS) as stack, \
            httpx.Client(base_url=stack.url, headers={"Authorization": "Bearer acme-key"}, timeout=30) as client:
        yield client


def finished(api: httpx.Client, job_id: str, timeout_s: float) -> tuple[dict, list[float]]:
    """The job once it ends, and its progress as polled on the way (it only ever moves forward)."""
    seen: list[float] = []
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        job = api.get(f"/v1/jobs/{job_id}").json()
        seen.append(job["progress"])
        if job["status"] in {"succeeded", "failed", "cancelled", "expired", "rejected"}:
            return job, seen
        time.sleep(0.2)
    raise AssertionError(f"job {job_id} did not finish in {timeout_s} s: {job}")


@pytest.mark.parametrize("duration_s", [
    30,
    pytest.param(180, marks=pytest.mark.slow),
])
def test_a_long_video_is_rendered_in_segments_joined_and_probed(api: httpx.Client, tmp_path: Path,
                                                                 duration_s: int) -> None:
    asked = {"mode": "t2v", "prompt": "one unbroken walk along the harbour at dawn", "resolution": "480p",
             "duration_s": duration_s, "model": "local/wan21-1.3b"}
    quote = api.post("/v1/quotes", json=asked).json()
    planned = quote["chosen"]["delivered"]
    assert planned["segments"] == -(-duration_s * 16 // 81)  # the fewest renders of at most 81 frames
    accepted = api.post("/v1/jobs", json=asked)
    assert accepted.status_code == 202, accepted.text
    job, progress = finished(api, accepted.json()["id"], timeout_s=60 + duration_s)
    assert job["status"] == "succeeded", job["error"]
    assert progress == sorted(progress) and job["progress"] == 1.0
    segments = job["segments"]["done"]
    assert len(segments) == planned["segments"] == len(job["attempts"])
    assert all(a["status"] == "succeeded" and a["delivered"]["frames"] == planned["frames"] // planned["segments"]
               for a in job["attempts"])
    assert [s["last_frame"] is None for s in segments] == [False] * (len(segments) - 1) + [True]
    assert job["segments"]["joined"] == "copied"  # one model, one encoder: packets copied, nothing re-encoded
    video = tmp_path / "joined.mp4"
    video.write_bytes(httpx.get(job["output"]["url"]).content)
    probed = probe(video)
    assert (probed.width, probed.height, probed.fps, probed.frames) == (832, 480, 16.0, planned["frames"])
    assert abs(probed.duration_s - duration_s) <= 0.05 * duration_s
    # Each segment paid for by its own attempt; the job's cost is theirs together, to the cent.
    assert sum(Decimal(a["actual_cost_usd"]) for a in job["attempts"]) == Decimal(job["cost"]["actual_usd"]) > 0
