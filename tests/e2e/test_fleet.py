"""A fleet of sim GPU boxes on the embedded stack (`hvr dev --agents`): each box an agent process with its card's
VRAM and speed; the router places each local job on a box that can hold it, names why the others can't, and a box
killed mid-render loses its attempt and the job finishes on another box."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from hvr.local.embedded import EmbeddedStack, parse_agents

TIME_SCALE = 5000.0
KEYS = "acme:acme-key:admin"
WAN_480P = {"mode": "t2v", "prompt": "a paper boat on a pond", "resolution": "480p", "duration_s": 1,
            "model": "local/wan21-14b"}


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedStack]:
    with EmbeddedStack(Path(tmp_path_factory.mktemp("fleet")), time_scale=TIME_SCALE, api_keys=KEYS,
                       agents="3080,4090,3090", restart_agent=False) as stack:
        yield stack


@pytest.fixture
def api(fleet: EmbeddedStack) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=fleet.url, headers={"Authorization": "Bearer acme-key"}, timeout=30) as client:
        yield client


def finished(api: httpx.Client, job_id: str, timeout_s: float = 90) -> dict:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        job = api.get(f"/v1/jobs/{job_id}").json()
        if job["status"] in {"succeeded", "failed", "cancelled", "expired", "rejected"}:
            return job
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} did not finish: {job}")


def test_each_box_reports_its_card_and_a_wan_14b_job_skips_the_box_too_small_for_it(api: httpx.Client) -> None:
    quote = api.post("/v1/quotes", json=WAN_480P).json()
    [row] = [c for c in quote["candidates"] if c["offer"] == "local/wan21-14b"]
    assert row["feasible"] and quote["chosen"]["target"] in {"4090", "3090"}
    job = finished(api, api.post("/v1/jobs", json=WAN_480P).json()["id"])
    assert job["status"] == "succeeded", job["error"]
    assert job["attempts"][0]["target"] in {"4090", "3090"}
    assert job["attempts"][0]["provider_job_id"].startswith(job["attempts"][0]["target"] + "/")


def test_a_box_killed_mid_render_loses_its_attempt_and_the_job_finishes_on_another_box(
        fleet: EmbeddedStack, api: httpx.Client) -> None:
    longer = {**WAN_480P, "duration_s": 5, "prompt": "a long pan over a harbour"}
    job_id = api.post("/v1/jobs", json=longer).json()["id"]
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        job = api.get(f"/v1/jobs/{job_id}").json()
        if job["status"] == "running":
            break
        time.sleep(0.05)
    first = job["attempts"][0]["target"]
    fleet.boxes[first].kill()
    done = finished(api, job_id)
    assert done["status"] == "succeeded", done["error"]
    lost, *_, delivered = done["attempts"]
    assert lost["target"] == first and lost["status"] == "failed" and lost["reason"].startswith("agent_lost")
    assert delivered["target"] != first and delivered["target"] != "3080"


def test_the_fleet_is_named_after_its_cards_and_an_unknown_card_is_refused() -> None:
    assert [(name, card.vram_mb) for name, card in parse_agents("5090, 3090,3090")] == [
        ("5090", 32768), ("3090", 24576), ("3090-2", 24576)]
    with pytest.raises(ValueError, match="--agents: 'a100' is not one of 5090, 4090, 3090, 3080"):
        parse_agents("5090,a100")
