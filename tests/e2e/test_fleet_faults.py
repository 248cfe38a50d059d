"""The fleet fault run (issue 18): many local jobs across three sim GPU boxes on the embedded stack, one box
SIGKILLed mid-render and another drained through the API. Every job ends in a terminal state with a reason, none is
lost, no attempt is paid twice, nothing new lands on the drained box, and a killed box's jobs fail over. `make test`
runs 9 jobs; `make bench` the issue's 300, printing the failover times (median and max)."""

from __future__ import annotations

import json
import statistics
import threading
import time
from collections import Counter
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import httpx
import pytest

from hvr.local.embedded import EmbeddedStack
from router.signing import KEY_ID_HEADER, sign

HEARTBEAT_S = 5.0  # real seconds: a box silent for three of them is down (router.store.agents.MISSED_HEARTBEATS)
TIME_SCALE = 4_000.0  # a draft renders in 0.6-1.5 s of wall time: long enough to be killed mid-render
KEYS = "acme:acme-key:admin"
BOXES = ("4090", "3090", "3090-2")
TERMINAL = {"succeeded", "failed", "cancelled", "expired", "rejected"}
# Local only, so every job lands on a box; drafts small enough for any of them.
SHAPES = [{"mode": "t2v", "resolution": "512x512", "aspect_ratio": "1:1", "duration_s": 2, "quality": "draft"},
          {"mode": "t2v", "resolution": "480p", "duration_s": 1, "quality": "draft"}]


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedStack]:
    with EmbeddedStack(Path(tmp_path_factory.mktemp("fleet-faults")), time_scale=TIME_SCALE, api_keys=KEYS,
                       agents="4090,3090,3090", restart_agent=False, agent_heartbeat_s=HEARTBEAT_S) as stack:
        yield stack


class Heartbeats:
    """Each box's heartbeat, as its agent would send it with the key an admin issued (agent.registration)."""

    def __init__(self, stack: EmbeddedStack, api: httpx.Client) -> None:
        self.stack, self.keys = stack, {name: api.post(f"/v1/agents/{name}/keys").json() for name in BOXES}
        self.silent: set[str] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def beat(self, name: str) -> None:
        body = json.dumps({"tunnel_url": self.stack.boxes[name].url, "gpu": f"RTX {name.split('-')[0]}",
                           "vram_mb": 24576, "ram_mb": 65536, "slots": 1, "models": ["animatediff-sd15"]}).encode()
        path, key = f"/v1/agents/{name}", self.keys[name]
        headers = {**sign(key["secret"], "PUT", path, body), KEY_ID_HEADER: key["key_id"],
                   "Content-Type": "application/json"}
        httpx.put(f"{self.stack.url}{path}", content=body, headers=headers).raise_for_status()

    def _loop(self) -> None:
        while not self._stop.wait(HEARTBEAT_S):
            for name in BOXES:
                if name not in self.silent:
                    self.beat(name)

    def __enter__(self) -> Heartbeats:
        for name in BOXES:
            self.beat(name)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)


def at(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


@pytest.mark.parametrize("jobs", [9, pytest.param(300, marks=pytest.mark.slow)])
def test_a_killed_box_and_a_drained_one_lose_no_job_and_pay_no_attempt_twice(fleet: EmbeddedStack,
                                                                             jobs: int) -> None:
    with httpx.Client(base_url=fleet.url, headers={"Authorization": "Bearer acme-key"}, timeout=30) as api, \
            Heartbeats(fleet, api) as heartbeats:
        ids = [api.post("/v1/jobs", json={**SHAPES[n % 2], "prompt": f"fault run {n}", "providers": ["local"]})
               .json()["id"] for n in range(jobs)]
        # The first box seen rendering is killed mid-render; another is drained.
        killed = ""
        deadline = time.monotonic() + 60
        while not killed and time.monotonic() < deadline:
            for job_id in ids[:8]:
                job = api.get(f"/v1/jobs/{job_id}").json()
                if job["status"] in ("submitted", "running") and job["attempts"]:
                    killed = job["attempts"][-1]["target"]
                    break
        assert killed, "no render was seen running"
        drained = next(name for name in BOXES if name != killed)
        heartbeats.silent.add(killed)
        fleet.boxes[killed].kill()
        killed_at = datetime.now().astimezone()
        assert api.post(f"/v1/agents/{drained}/drain").status_code == 200
        drained_at = datetime.now().astimezone()

        finished: dict[str, dict] = {}
        deadline = time.monotonic() + 120 + 3 * jobs
        while len(finished) < jobs and time.monotonic() < deadline:
            for job_id in ids:
                if job_id not in finished:
                    job = api.get(f"/v1/jobs/{job_id}").json()
                    if job["status"] in TERMINAL:
                        finished[job_id] = job
            time.sleep(0.2)

    assert len(finished) == jobs, f"{jobs - len(finished)} jobs never ended"  # none lost
    for job in finished.values():
        assert job["status"] == "succeeded" or job["error"]["message"], job  # every ending has its reason
    attempts = [a for job in finished.values() for a in job["attempts"]]
    assert not [name for name, n in Counter(a["id"] for a in attempts).items() if n > 1]
    rows = Counter(row.attempt_id for job_id in ids for row in fleet.deps.ledger.for_job("acme", job_id))
    assert rows and max(rows.values()) == 1  # no attempt paid twice
    assert not [a for a in attempts if a["target"] == drained and at(a["started_at"]) > drained_at]
    lost = [a for a in attempts if a["target"] == killed and (a["reason"] or "").startswith("agent_lost")]
    failovers = []
    for job in finished.values():
        for before, after in zip(job["attempts"], job["attempts"][1:], strict=False):
            if before in lost:
                failovers.append((at(after["started_at"]) - killed_at).total_seconds())
    assert lost and failovers and all(job["status"] == "succeeded" for job in finished.values()), Counter(
        j["status"] for j in finished.values())
    found = [(at(a["ended_at"]) - killed_at).total_seconds() for a in lost]
    print(f"\nfleet fault run, {jobs} jobs on {', '.join(BOXES)}: {len(lost)} attempts lost with {killed}; after "
          f"the kill (wall s; heartbeat window {3 * HEARTBEAT_S:.0f} s, unreachable bound 5 s at this time scale): "
          f"ended agent_lost median {statistics.median(found):.1f}, max {max(found):.1f}; next attempt started "
          f"median {statistics.median(failovers):.1f}, max {max(failovers):.1f}; {drained} drained: no new attempt "
          f"after the drain")
