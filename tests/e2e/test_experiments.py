"""Experiments over HTTP against the embedded stack: admin only; a bad definition is problem+json naming the field and
stores nothing; a paired experiment renders a request on both arms, its pair is rated, and the results say what
they rest on; `hvr experiments` talks to the same API."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from hvr.cli import main
from hvr.local.embedded import EmbeddedStack
from tests.e2e.test_api import DRAFT, wait_for
from tests.e2e.test_ratings import assert_problem

GOOD = {"share": 1.0, "stickiness": "request", "spend_cap_usd": "5", "ends_at": "2099-01-01T00:00:00Z",
        "paired": True}


def two_feasible(acme: httpx.Client, body: dict[str, Any]) -> list[str]:
    """Two offers the stack can render `body` on, from a quote: the arms of a test experiment."""
    quote = acme.post("/v1/quotes", json=body).json()
    feasible = [c["offer"] for c in quote["candidates"] if c["feasible"]]
    assert len(feasible) >= 2, quote
    return feasible[:2]


@pytest.mark.parametrize(("body", "field"), [
    ({**GOOD, "arms": ["sora", "veo"]}, "arms.0"),
    ({**GOOD, "arms": ["veo", "veo"]}, "arms"),
    ({**GOOD, "arms": ["veo"]}, "arms"),
    ({**GOOD, "arms": ["wan", "veo"], "share": 0}, "share"),
    ({**GOOD, "arms": ["wan", "veo"], "share": 1.5}, "share"),
    ({**GOOD, "arms": ["wan", "veo"], "spend_cap_usd": "-1"}, "spend_cap_usd"),
    ({**GOOD, "arms": ["wan", "veo"], "ends_at": "2099-01-01T00:00:00"}, "ends_at"),
    ({**GOOD, "arms": ["wan", "veo"], "stickiness": "moon"}, "stickiness"),
    ({**GOOD, "arms": ["wan", "veo"], "colour": "red"}, "colour"),
])
def test_a_bad_definition_is_a_400_naming_the_field_and_stores_nothing(stack: EmbeddedStack, acme: httpx.Client,
                                                                      body: dict, field: str) -> None:
    assert_problem(acme.put("/v1/experiments/bad-one", json=body), 400, field)
    assert stack.deps.experiments.get("bad-one") is None


def test_experiments_are_for_admins(stack: EmbeddedStack, beta: httpx.Client) -> None:
    assert beta.put("/v1/experiments/mine", json={**GOOD, "arms": ["wan", "veo"]}).status_code == 403
    assert beta.get("/v1/experiments").status_code == 403
    assert beta.get("/v1/experiments/mine").status_code == 403
    assert stack.deps.experiments.get("mine") is None


def test_a_paired_experiment_renders_both_arms_and_reports_on_the_pair(stack: EmbeddedStack, acme: httpx.Client,
                                                                       capsys: pytest.CaptureFixture[str]) -> None:
    body = {**DRAFT, "prompt": "a lantern on a jetty", "resolution": "480p", "aspect_ratio": "16:9", "duration_s": 5,
            "quality": "standard"}
    arms = two_feasible(acme, body)
    created = acme.put("/v1/experiments/pair-test", json={**GOOD, "arms": arms})
    assert created.status_code == 201, created.text
    assert created.json()["offers"] == {"a": [arms[0]], "b": [arms[1]]}
    assert acme.get("/v1/experiments/nothing-here").status_code == 404

    job = wait_for(acme, acme.post("/v1/jobs", json=body).json()["id"])
    assert job["status"] == "succeeded" and job["experiment"]["name"] == "pair-test", job
    twin = wait_for(acme, job["experiment"]["paired_with"])
    assert twin["status"] == "succeeded" and twin["experiment"]["twin"] and twin["request"]["callback_url"] is None
    assert {job["attempts"][0]["offer"], twin["attempts"][0]["offer"]} == set(arms)
    rated = acme.post(f"/v1/jobs/{twin['id']}/rating", json={"score": 5, "preferred_over": job["id"]})
    assert rated.status_code == 200, rated.text
    acme.post(f"/v1/jobs/{job['id']}/rating", json={"score": 3})

    found = acme.get("/v1/experiments/pair-test").json()
    assert found["assigned"] == 2 and found["status"] == "running"
    results = found["results"]
    assert [a["assigned"] for a in results["arms"]] == [1, 1] and [a["delivered"] for a in results["arms"]] == [1, 1]
    assert results["preference"]["pairs"] == 1
    assert results["verdict"]["outcome"] == "not_enough_data" and results["method"]
    # Arms are fixed once a job is assigned; the share is not.
    assert_problem(acme.put("/v1/experiments/pair-test", json={**GOOD, "arms": arms[::-1]}), 409, "arms")
    assert acme.put("/v1/experiments/pair-test", json={**GOOD, "arms": arms, "share": 0.5}).status_code == 200

    api = ["--api-url", stack.url, "--api-key", "acme-key"]
    assert main(["experiments", *api]) == 0
    assert main(["experiments", "show", "pair-test", *api]) == 0
    assert main(["experiments", "put", "later", "--arms", *arms, "--share", "0.2", "--spend-cap", "1",
                 "--ends", "2099-01-01", *api]) == 0
    out = capsys.readouterr().out
    assert "pair-test:" in out and "verdict: not enough data" in out and "later:" in out
    assert stack.deps.experiments.get("later") is not None
    # Stop both, so the module's other tests route as ever.
    for name, arms_ in (("pair-test", arms), ("later", arms)):
        acme.put(f"/v1/experiments/{name}", json={**GOOD, "arms": arms_, "ends_at": "2000-01-01T00:00:00Z"})
