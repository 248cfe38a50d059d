"""Ratings and the scorecard over HTTP against the embedded stack: the route's refusals are problem+json naming the
field and store nothing; one rating per job and key; quotes and the offer list show learned quality beside the
stars; `hvr rate` and `hvr scorecard` talk to the same API."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from hvr.cli import main
from hvr.local.embedded import EmbeddedStack
from router.models.rating import ScoreTally
from tests.e2e.conftest import client
from tests.e2e.test_api import DRAFT, wait_for

PROBLEM = "application/problem+json"
REJECTED = {**DRAFT, "max_cost_usd": "0.0001"}  # no offer is that cheap: the job ends rejected


@pytest.fixture(scope="module")
def jobs(stack: EmbeddedStack) -> Iterator[dict[str, dict[str, Any]]]:
    """acme's two deliveries of one request, one of another prompt, a rejected job; beta's delivery."""
    acme, beta = client(stack, "acme-key"), client(stack, "beta-key")
    bodies = {"first": (acme, DRAFT), "second": (acme, DRAFT), "other": (acme, {**DRAFT, "prompt": "a paper plane"}),
              "rejected": (acme, REJECTED), "beta": (beta, DRAFT)}
    submitted = {name: (api, api.post("/v1/jobs", json=body)) for name, (api, body) in bodies.items()}
    found = {name: wait_for(api, response.json()["id"]) for name, (api, response) in submitted.items()}
    assert [found[n]["status"] for n in ("first", "second", "other", "beta")] == ["succeeded"] * 4
    assert found["rejected"]["status"] == "rejected"
    yield found
    acme.close()
    beta.close()


def stored(stack: EmbeddedStack) -> tuple[dict[str, ScoreTally], list[Any]]:
    """Everything the ratings store holds for today's deliveries, and every tally."""
    today = stack.deps.clock().date()
    return stack.deps.ratings.tallies(), stack.deps.ratings.between(today, today)


def assert_problem(response: httpx.Response, status: int, field: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    assert field in [error["field"] for error in response.json()["errors"]], response.json()


@pytest.mark.parametrize(("body", "field"), [
    ({"score": 0}, "score"), ({"score": 6}, "score"), ({"score": "5"}, "score"), ({"score": 4.5}, "score"),
    ({}, "score"), ({"score": 4, "stars": 4}, "stars"), ({"score": 4, "comment": "x" * 2001}, "comment"),
    ({"score": 4, "preferred_over": "no such/job"}, "preferred_over"),
])
def test_a_bad_body_is_a_400_naming_the_field_and_stores_nothing(stack: EmbeddedStack, jobs: dict,
                                                                 acme: httpx.Client, body: dict, field: str) -> None:
    before = stored(stack)
    assert_problem(acme.post(f"/v1/jobs/{jobs['first']['id']}/rating", json=body), 400, field)
    assert stored(stack) == before


def test_another_tenants_job_is_a_404_and_stores_nothing(stack: EmbeddedStack, jobs: dict, beta: httpx.Client) -> None:
    before = stored(stack)
    response = beta.post(f"/v1/jobs/{jobs['first']['id']}/rating", json={"score": 5})
    assert response.status_code == 404 and response.headers["content-type"].startswith(PROBLEM)
    assert beta.get(f"/v1/jobs/{jobs['first']['id']}/ratings").status_code == 404
    assert stored(stack) == before


def test_a_job_that_did_not_succeed_is_a_409_naming_job_id_and_stores_nothing(stack: EmbeddedStack, jobs: dict,
                                                                               acme: httpx.Client) -> None:
    before = stored(stack)
    assert_problem(acme.post(f"/v1/jobs/{jobs['rejected']['id']}/rating", json={"score": 1}), 409, "job_id")
    assert stored(stack) == before


@pytest.mark.parametrize(("other", "message"), [("beta", "no job of this tenant"), ("other", "another request"),
                                                ("rejected", "not succeeded"), ("first", "itself")])
def test_a_preference_must_name_a_delivered_job_of_the_same_request(stack: EmbeddedStack, jobs: dict,
                                                                    acme: httpx.Client, other: str,
                                                                    message: str) -> None:
    before = stored(stack)
    response = acme.post(f"/v1/jobs/{jobs['first']['id']}/rating",
                         json={"score": 4, "preferred_over": jobs[other]["id"]})
    assert_problem(response, 400, "preferred_over")
    assert message in response.json()["errors"][0]["message"]
    assert stored(stack) == before


def test_one_rating_per_job_and_key_the_second_replaces_the_first(stack: EmbeddedStack, jobs: dict,
                                                                  acme: httpx.Client) -> None:
    member = client(stack, "member-key")  # another key of tenant acme-member: not acme's job
    job_id = jobs["second"]["id"]
    offer = jobs["second"]["attempts"][-1]["offer"]
    before = stack.deps.ratings.tallies().get(offer, ScoreTally())
    first = acme.post(f"/v1/jobs/{job_id}/rating", json={"score": 2, "comment": "too dark"})
    assert first.status_code == 200, first.text
    again = acme.post(f"/v1/jobs/{job_id}/rating", json={"score": 5, "preferred_over": jobs["first"]["id"]})
    assert again.status_code == 200, again.text
    assert again.json()["rater"] == first.json()["rater"] and again.json()["preferred_over_offer"] == offer
    listed = acme.get(f"/v1/jobs/{job_id}/ratings").json()["ratings"]
    assert [(r["score"], r["comment"], r["preferred_over"]) for r in listed] == [(5, None, jobs["first"]["id"])]
    assert stack.deps.ratings.tallies()[offer] == before.plus(5)
    assert member.post(f"/v1/jobs/{job_id}/rating", json={"score": 1}).status_code == 404
    member.close()


def test_quotes_and_the_offer_list_show_learned_quality_beside_the_stars(jobs: dict, acme: httpx.Client) -> None:
    offer = jobs["first"]["attempts"][-1]["offer"]
    listed = {o["id"]: o for o in acme.get("/v1/providers").json()["offers"]}
    quality = listed[offer]["learned"]["quality"]
    assert quality["stars"] == listed[offer]["quality"] and quality["ratings"] >= 1 and not quality["in_use"]
    assert quality["low"] <= quality["value"] <= quality["high"]
    quote = acme.post("/v1/quotes", json=DRAFT).json()
    assert quote["learned"][offer]["quality"] == quality


def test_the_scorecard_and_the_cli(stack: EmbeddedStack, jobs: dict, acme: httpx.Client, beta: httpx.Client,
                                   tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    acme.post(f"/v1/jobs/{jobs['other']['id']}/rating", json={"score": 3})
    card = acme.get("/v1/scorecard").json()  # an admin key: every tenant
    names = [m["name"] for m in card["metrics"]]
    for name in ("usage_ratio_animatediff_to_gemini", "satisfaction", "cost_per_video_usd", "turnaround_p50_min",
                 "gpu_utilization", "wan_quality_over_animatediff", "wan_cost_vs_gemini", "wan_time_vs_gemini",
                 "wan_preference"):
        assert name in names
    assert all(m["verdict"] in ("held", "missed", "not_enough_data") for m in card["metrics"])
    assert card["tenant"] is None and card["ratings"] >= 2
    mine = beta.get("/v1/scorecard").json()
    assert mine["tenant"] == "beta" and mine["ratings"] == 0
    assert beta.get("/v1/scorecard", params={"tenant": "acme"}).status_code == 403
    api = ["--api-url", stack.url, "--api-key", "acme-key"]
    assert main(["rate", jobs["other"]["id"], "--score", "4", "--comment", "fine", *api]) == 0
    assert main(["scorecard", "--chart", str(tmp_path / "card.png"), *api]) == 0
    out = capsys.readouterr().out
    assert f"rated {jobs['other']['id']}" in out and "satisfaction" in out and "VERDICT" in out
    assert (tmp_path / "card.png").stat().st_size > 0
    assert main(["rate", jobs["rejected"]["id"], "--score", "4", *api]) == 2  # a 4xx: the refusal printed
