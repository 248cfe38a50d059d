"""`hvr campaign submit FILE` and `hvr campaign status ID` against a local HTTP API answering with API Campaigns."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hvr.campaign_text import campaign_bar, campaign_body, format_campaign
from hvr.cli import main
from hvr.local.gateway import LocalHttpApi, Route
from router.models.campaign import CampaignView
from router.models.job import JobView

KEY = "hvr_test_key"
MANIFEST = "\n".join([
    json.dumps({"campaign": {"name": "bf", "budget_usd": "25.00", "deadline_s": 3600}}),
    json.dumps({"item_id": "hero", "mode": "t2v", "prompt": "a box"}),
    "",
    "{not json",
    json.dumps({"mode": "t2v", "prompt": "a bag"}),
])


def campaign(status: str, succeeded: int, running: int, failed: int = 0) -> dict[str, Any]:
    """The campaign as the API writes it."""
    total = 4
    return {
        "id": "cmp_1", "name": "bf", "status": status, "created_at": "2026-11-20T09:00:00Z",
        "deadline": "2099-01-01T00:00:00Z", "budget_usd": "25.0000",
        "counts": {"total": total, "accepted": total - succeeded - running - failed, "running": running,
                   "succeeded": succeeded, "failed": failed, "rejected": 0, "expired": 0, "cancelled": 0},
        "invalid_items": [{"item_id": "4", "line": 4, "field": "", "message": "not JSON: Expecting property name"}],
        "invalid_items_total": 1, "duplicates": 0, "spent_usd": "1.2000", "projected_total_usd": "2.4000",
        "projected_finish_at": "2099-01-01T00:00:00Z",
        "offer_mix": {"local/animatediff-sd15": 1, "veo/veo-3.1-fast": 3},
        "items_at_risk": [{"item_id": "hero", "job_id": "job_h", "offer": "local/animatediff-sd15",
                           "projected_finish_at": None, "reason": "p90 ready after the deadline"}],
        "items_at_risk_total": 1,
        "plan": {"planned_at": "2026-11-20T09:00:30Z", "items": 4, "local_items": 1, "cloud_items": 3,
                 "unplanned_items": 0, "unfunded_items": 0, "planned_cost_usd": "2.4000",
                 "finish_at": "2099-01-01T00:00:00Z", "local_busy_s": 120.0,
                 "all_cloud": {"cost_usd": "3.0000", "finish_at": None, "items_late": 0, "items_impossible": 0},
                 "all_local": {"cost_usd": "1.1000", "finish_at": None, "items_late": 3, "items_impossible": 0},
                 "replans": 0},
        "progress_as_of": "2026-11-20T09:01:00Z", "error": None,
    }


def view(body: dict[str, Any]) -> CampaignView:
    return CampaignView.model_validate(body)


class FakeCampaignApi:
    """A campaign advances one step per GET: expanding → running → completed. `cmp_odd` answers without its
    counts, as a server of another version might."""

    def __init__(self, end: str = "completed") -> None:
        self.posted: list[dict[str, Any]] = []
        self.gets = 0
        self.end = end

    def routes(self) -> list[Route]:
        return [Route("POST", "/v1/campaigns", self.post, auth=True),
                Route("GET", "/v1/campaigns/{id}", self.get, auth=True),
                Route("GET", "/v1/jobs", self.jobs, auth=True)]

    @staticmethod
    def jobs(event: dict[str, Any], context: Any) -> dict[str, Any]:
        """The campaign's one failed item: its budget ran out."""
        assert event["queryStringParameters"]["campaign_id"] == "cmp_1"
        error = {"code": "budget_exhausted", "message": "budget campaign:cmp_1 can't cover any feasible offer: "
                                                        "$0.0100 left, the cheapest needs $0.2800"}
        job = JobView.model_validate({"id": "job_4", "status": "rejected", "created_at": "2026-11-20T09:00:00Z",
                                      "updated_at": "2026-11-20T09:00:01Z", "error": error,
                                      "request": {"mode": "t2v", "prompt": "a bag"}})
        return {"statusCode": 200, "body": json.dumps({"items": [job.model_dump(mode="json")], "next_cursor": None})}

    @staticmethod
    def authorizer(event: dict[str, Any], context: Any) -> dict[str, Any]:
        return {"isAuthorized": event["identitySource"][0] == f"Bearer {KEY}", "context": {"tenant": "acme"}}

    def post(self, event: dict[str, Any], context: Any) -> dict[str, Any]:
        self.posted.append(json.loads(event["body"]))
        return {"statusCode": 202, "body": json.dumps(campaign("expanding", 0, 0))}

    def get(self, event: dict[str, Any], context: Any) -> dict[str, Any]:
        if event["pathParameters"]["id"] == "cmp_odd":
            odd = {key: value for key, value in campaign("running", 1, 2).items() if key != "counts"}
            return {"statusCode": 200, "body": json.dumps(odd)}
        if event["pathParameters"]["id"] != "cmp_1":
            return {"statusCode": 404, "headers": {"Content-Type": "application/problem+json"},
                    "body": json.dumps({"title": "Not found", "status": 404, "detail": "campaign nope not found"})}
        self.gets += 1
        if self.gets == 1:
            return {"statusCode": 200, "body": json.dumps(campaign("running", 1, 2))}
        failed = 1 if self.end == "troubled" else 0
        return {"statusCode": 200, "body": json.dumps(campaign("completed", 4 - failed, 0, failed))}


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeCampaignApi]:
    fake = FakeCampaignApi()
    with LocalHttpApi(fake.routes(), fake.authorizer) as api:
        monkeypatch.setenv("HVR_API_URL", api.url)
        monkeypatch.setenv("HVR_API_KEY", KEY)
        yield fake


def test_a_manifest_becomes_a_post_body_with_line_numbers_as_item_ids(tmp_path: Path) -> None:
    path = tmp_path / "black-friday.jsonl"
    path.write_text(MANIFEST)
    body, warnings = campaign_body(path, None)
    assert body == {"name": "bf", "budget_usd": "25.00", "deadline_s": 3600, "items": [
        {"item_id": "hero", "mode": "t2v", "prompt": "a box"}, {"item_id": "5", "mode": "t2v", "prompt": "a bag"}]}
    assert warnings == ["line 4: not a JSON object, not sent"]
    assert campaign_body(path, "other")[0]["name"] == "other"
    path.write_text(json.dumps({"mode": "t2v", "prompt": "x"}))
    assert campaign_body(path, None)[0]["name"] == "black-friday"  # no header: the file's name


def test_the_bar_counts_finished_items_and_shows_running_ones() -> None:
    assert campaign_bar(view(campaign("running", 1, 2)), width=8) == "[##>>>>..]  25% 1/4 running"
    assert campaign_bar(view(campaign("completed", 4, 0)), width=8) == "[########] 100% 4/4 completed"
    text = format_campaign(view(campaign("running", 1, 2)))
    assert "spent $1.2000 of budget $25.0000, projected $2.4000" in text
    assert ("plan: 1 on the local GPU, 3 in the cloud, $2.4000 (all cloud $3.0000, all local $1.1000 with 3 late)"
            in text)
    assert "offers: veo/veo-3.1-fast 3, local/animatediff-sd15 1" in text
    assert "line 4 (4) (line): not JSON" in text and "hero local/animatediff-sd15: p90 ready after the deadline" in text
    assert text.endswith("\n  as of 2026-11-20T09:01:00Z")  # the moment as the API wrote it


def test_submit_waits_with_a_progress_bar(fake: FakeCampaignApi, tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "bf.jsonl"
    path.write_text(MANIFEST)
    assert main(["campaign", "submit", str(path), "--wait", "--poll-interval", "0.01"]) == 0
    captured = capsys.readouterr()
    assert captured.out == "cmp_1\n"
    assert "25% 1/4 running" in captured.err and "100% 4/4 completed" in captured.err
    assert [i["item_id"] for i in fake.posted[0]["items"]] == ["hero", "5"]


def test_status_prints_once_or_watches_and_exits_1_when_items_failed(fake: FakeCampaignApi,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["campaign", "status", "cmp_1"]) == 0
    assert "25% 1/4 running" in capsys.readouterr().out
    fake.end = "troubled"
    assert main(["campaign", "status", "cmp_1", "--watch", "--poll-interval", "0.01"]) == 1
    out = capsys.readouterr().out.splitlines()
    assert "failed 1" in out[1]
    assert out[-2:] == ["  refused for budget: 1 of 4 items; spent $1.2000 of budget $25.0000",
                        "    job_4: budget campaign:cmp_1 can't cover any feasible offer: $0.0100 left, the cheapest "
                        "needs $0.2800"]
    assert main(["campaign", "status", "nope"]) == 2
    assert "campaign nope not found" in capsys.readouterr().err


def test_status_json_prints_the_campaign_as_the_server_sent_it(fake: FakeCampaignApi,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["campaign", "status", "cmp_1", "--json"]) == 0
    assert capsys.readouterr().out == json.dumps(campaign("running", 1, 2), indent=2) + "\n"


def test_a_campaign_its_model_refuses_exits_1_naming_the_command_and_the_field(
        fake: FakeCampaignApi, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["campaign", "status", "cmp_odd", "--json"]) == 1
    captured = capsys.readouterr()
    assert captured.err == ("hvr campaign status: GET /v1/campaigns/cmp_odd answered a body that is not a "
                            "CampaignView: counts: Field required\n")
    assert captured.out == ""


def test_more_than_a_thousand_items_are_refused_before_sending(fake: FakeCampaignApi, tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "big.jsonl"
    path.write_text("\n".join(json.dumps({"prompt": f"p{n}"}) for n in range(1001)))
    assert main(["campaign", "submit", str(path)]) == 2
    assert "at most 1000 go inline" in capsys.readouterr().err and not fake.posted


def test_download_of_a_campaign_the_api_does_not_know_makes_nothing(fake: FakeCampaignApi, tmp_path: Path,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["campaign", "download", "black-friday", "-o", str(tmp_path / "clips")]) == 2
    assert "404" in capsys.readouterr().err
    assert not (tmp_path / "clips").exists()  # refused before anything was made


def test_download_into_a_path_that_is_a_file_is_one_line(fake: FakeCampaignApi, tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "a-file").write_text("")
    assert main(["campaign", "download", "cmp_1", "-o", str(tmp_path / "a-file")]) == 2
    assert capsys.readouterr().err == f"cannot make the folder {tmp_path / 'a-file'}: File exists\n"
