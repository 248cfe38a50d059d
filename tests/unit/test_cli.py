"""`hvr` client commands against a local HTTP API whose toy functions answer as the real API does (its shapes)."""

from __future__ import annotations

import base64
import json
import sys
import types
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from hvr.cli import format_agents, format_quote, main
from hvr.local.gateway import LocalHttpApi, Route
from router.models.agent import AgentView
from router.models.api import Quote
from router.models.job import JobView
from router.services.learned import describe

KEY = "hvr_test_key"
VIDEO = b"\x00\x00\x00\x18ftypmp42 not really a video"


def api_job(job_id: str, status: str, request: dict[str, Any], **fields: Any) -> dict[str, Any]:
    """A job as the API writes it: every field of its JobView, defaults included."""
    body = {"id": job_id, "status": status, "created_at": "2026-01-01T00:00:00Z",
            "updated_at": "2026-01-01T00:00:05Z", "request": request, **fields}
    return JobView.model_validate(body).model_dump(mode="json")


def output(url: str) -> dict[str, Any]:
    return {"s3_uri": "s3://hvr-outputs/acme/job_ok.mp4", "url": url, "content_type": "video/mp4",
            "bytes": len(VIDEO), "width": 512, "height": 512, "frames": 16, "fps": 8.0, "duration_s": 2.0}


def problem(status: int, title: str, detail: str, **extra: Any) -> dict[str, Any]:
    body = {"type": "about:blank", "title": title, "status": status, "detail": detail, **extra}
    return {"statusCode": status, "headers": {"Content-Type": "application/problem+json"}, "body": json.dumps(body)}


class FakeApi:
    """Jobs advance one step per GET: accepted → running (50 %) → succeeded or failed. `job_odd` answers with a
    status no JobView has, as a server of another version might."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.gets: dict[str, int] = {}
        self.sent: dict[str, Any] = {}  # the last job body each id was answered with
        self.url = ""

    def routes(self) -> list[Route]:
        return [Route("POST", "/v1/jobs", self.submit, auth=True), Route("GET", "/v1/jobs/{id}", self.get, auth=True),
                Route("POST", "/v1/quotes", self.quote, auth=True), Route("POST", "/v1/keys", self.keys, auth=True),
                Route("GET", "/files/{name}", self.file, auth=False)]

    @staticmethod
    def authorizer(event: dict[str, Any], context: Any) -> dict[str, Any]:
        return {"isAuthorized": event["identitySource"][0] == f"Bearer {KEY}", "context": {"tenant": "acme"}}

    def submit(self, event: dict[str, Any], context: Any) -> dict[str, Any]:
        self.requests.append(event)
        body = json.loads(event["body"])
        if not body.get("prompt"):
            return problem(422, "Invalid request", "1 field is invalid",
                           errors=[{"field": "prompt", "message": "String should have at least 1 character"}])
        job_id = "job_fail" if body["prompt"] == "fail" else "job_ok"
        return {"statusCode": 202, "body": json.dumps(self.job(job_id, "accepted", 0.0))}

    def get(self, event: dict[str, Any], context: Any) -> dict[str, Any]:
        job_id = event["pathParameters"]["id"]
        if job_id == "crash":
            raise RuntimeError("server bug")
        if not job_id.startswith("job_"):
            return problem(404, "Not Found", f"no job {job_id}")
        if job_id == "job_odd":
            return {"statusCode": 200, "body": json.dumps({**self.job(job_id, "running", 0.5), "status": "paused"})}
        if job_id == "job_newer":  # a server of a later version adds fields, at the top and inside
            body = self.job(job_id, "running", 0.5)
            body = {**body, "queue_position": 3, "request": {**body["request"], "seed_policy": "fixed"}}
            return {"statusCode": 200, "body": json.dumps(body)}
        self.gets[job_id] = step = self.gets.get(job_id, 0) + 1
        if step == 1:
            return {"statusCode": 200, "body": json.dumps(self.job(job_id, "running", 0.5))}
        if job_id == "job_fail":
            failed = self.job(job_id, "failed", 1.0,
                              error={"code": "provider_failed", "message": "the render crashed"})
            return {"statusCode": 200, "body": json.dumps(failed)}
        done = self.job(job_id, "succeeded", 1.0, output=output(f"{self.url}/files/{job_id}.mp4"))
        return {"statusCode": 200, "body": json.dumps(done)}

    def job(self, job_id: str, status: str, progress: float, **fields: Any) -> dict[str, Any]:
        self.sent[job_id] = api_job(job_id, status, {"mode": "t2v", "prompt": "a boat"}, progress=progress, **fields)
        return self.sent[job_id]

    def quote(self, event: dict[str, Any], context: Any) -> dict[str, Any]:
        delivered = {"width": 512, "height": 512, "frames": 16, "fps": 8.0}
        chosen = {"offer": "local/animatediff-sd15", "provider": "local", "target": "agent-1",
                  "estimated_cost_usd": "0.2800", "estimated_cost_p90_usd": "0.3100",
                  "estimated_ready_at": "2099-01-01T00:00:40Z", "score": 0.91, "delivered": delivered,
                  "reason": "cheapest feasible"}
        candidates = [
            {key: chosen[key] for key in ("offer", "provider", "estimated_cost_usd", "estimated_cost_p90_usd",
                                          "estimated_ready_at", "score", "delivered")} | {"feasible": True},
            {"offer": "veo/veo-3.1-fast", "provider": "veo", "feasible": False,
             "reasons": ["resolution: 512x512 not offered"], "estimated_cost_usd": "1.2000",
             "estimated_ready_at": None, "score": None},
        ]
        body = {"chosen": chosen, "fallbacks": ["replicate/wan-2.2-t2v-fast"], "candidates": candidates, "reasons": []}
        return {"statusCode": 200, "body": json.dumps(Quote.model_validate(body).model_dump(mode="json"))}

    def keys(self, event: dict[str, Any], context: Any) -> dict[str, Any]:
        self.requests.append(event)
        body = json.loads(event["body"])
        return {"statusCode": 201, "body": json.dumps({"key": "hvr_new_secret", "tenant": body["tenant"],
                                                       "role": body["role"], "created_at": "2026-01-01T00:00:00Z"})}

    @staticmethod
    def file(event: dict[str, Any], context: Any) -> dict[str, Any]:
        assert "authorization" not in event["headers"]  # presigned URLs must not get our bearer token
        return {"statusCode": 200, "headers": {"Content-Type": "video/mp4"}, "isBase64Encoded": True,
                "body": base64.b64encode(VIDEO).decode()}


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeApi]:
    fake = FakeApi()
    with LocalHttpApi(fake.routes(), fake.authorizer) as api:
        fake.url = api.url
        monkeypatch.setenv("HVR_API_URL", api.url)
        monkeypatch.setenv("HVR_API_KEY", KEY)
        yield fake


def write(tmp_path: Path, body: dict[str, Any]) -> str:
    path = tmp_path / "request.json"
    path.write_text(json.dumps(body))
    return str(path)


def test_submit_waits_with_progress_and_downloads(fake: FakeApi, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out.mp4"
    rc = main(["submit", write(tmp_path, {"mode": "t2v", "prompt": "a boat"}), "--idempotency-key", "k-1",
               "--poll-interval", "0.01", "--download", str(out), "--json"])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    assert captured.out == json.dumps(fake.sent["job_ok"], indent=2) + "\n"  # the server's JSON, as it sent it
    assert f"saved {out} ({len(VIDEO)} bytes)" in captured.err  # stdout stays one JSON document
    assert fake.sent["job_ok"]["status"] == "succeeded" and fake.gets["job_ok"] == 2
    assert out.read_bytes() == VIDEO
    assert " 50% running" in captured.err and "100% succeeded" in captured.err
    sent = fake.requests[0]
    assert sent["headers"]["idempotency-key"] == "k-1"
    assert sent["headers"]["content-type"] == "application/json"
    assert json.loads(sent["body"]) == {"mode": "t2v", "prompt": "a boat"}


def test_submit_no_wait_prints_the_accepted_job(fake: FakeApi, tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["submit", write(tmp_path, {"prompt": "x"}), "--no-wait", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["status"] == "accepted"
    assert "idempotency-key" not in fake.requests[0]["headers"] and not fake.gets


def test_failed_job_exits_1_with_its_error(fake: FakeApi, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["submit", write(tmp_path, {"prompt": "fail"}), "--poll-interval", "0.01", "--json"]) == 1
    captured = capsys.readouterr()
    assert json.loads(captured.out)["status"] == "failed"
    assert "provider_failed: the render crashed" in captured.err
    assert main(["submit", write(tmp_path, {"prompt": "fail"}), "--poll-interval", "0.01"]) == 1
    assert "  error: provider_failed: the render crashed" in capsys.readouterr().out.splitlines()


def test_validation_problem_is_printed_with_fields(fake: FakeApi, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["submit", write(tmp_path, {"prompt": ""})]) == 2
    err = capsys.readouterr().err
    assert "error 422: Invalid request: 1 field is invalid" in err
    assert "prompt: String should have at least 1 character" in err


def test_status(fake: FakeApi, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["status", "job_ok", "--json"]) == 0
    assert capsys.readouterr().out == json.dumps(fake.sent["job_ok"], indent=2) + "\n"
    assert fake.sent["job_ok"]["status"] == "running"
    assert main(["status", "nope"]) == 2
    assert "error 404: Not Found: no job nope" in capsys.readouterr().err


def test_quote_table(fake: FakeApi, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["quote", write(tmp_path, {"prompt": "x"})]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["offer", "feasible", "score", "est.", "cost", "ready", "at", "reasons"]
    local = next(line for line in lines if line.startswith("local/animatediff-sd15"))
    assert "yes" in local and "$0.2800" in local and "00:00:40Z" in local
    veo = next(line for line in lines if line.startswith("veo/veo-3.1-fast"))
    assert "no" in veo and "resolution: 512x512 not offered" in veo
    assert any(line.startswith("chosen: local/animatediff-sd15 on agent-1, $0.2800") for line in lines)
    assert "  fallbacks: replicate/wan-2.2-t2v-fast" in lines


def test_keys_create_prints_the_key_once(fake: FakeApi, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["keys", "create", "--tenant", "studio", "--admin"]) == 0
    captured = capsys.readouterr()
    assert captured.out == "hvr_new_secret\n"
    assert "admin key for tenant studio" in captured.err
    assert json.loads(fake.requests[-1]["body"]) == {"tenant": "studio", "role": "admin"}
    assert main(["keys", "create", "--tenant", "studio"]) == 0
    assert json.loads(fake.requests[-1]["body"])["role"] == "member"


def test_auth_server_and_connection_failures(fake: FakeApi, monkeypatch: pytest.MonkeyPatch,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["status", "job_ok", "--api-key", "wrong"]) == 2
    assert capsys.readouterr().err == (f"403: this key is not valid for {fake.url} — check HVR_API_KEY "
                                       "(or --api-key)\n")
    monkeypatch.delenv("HVR_API_KEY")
    assert main(["status", "job_ok"]) == 2
    assert "HVR_API_KEY" in capsys.readouterr().err
    assert main(["status", "crash", "--api-key", KEY]) == 1
    assert "error 500: Internal Server Error" in capsys.readouterr().err
    assert main(["status", "job_ok", "--api-url", "http://127.0.0.1:9"]) == 1
    assert capsys.readouterr().err.startswith("connection refused at http://127.0.0.1:9 — is `hvr dev` running?")


def test_an_answer_its_model_refuses_exits_1_with_one_line_naming_the_command_and_the_field(
        fake: FakeApi, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["status", "job_odd"]) == 1
    captured = capsys.readouterr()
    assert captured.err.startswith("hvr status: GET /v1/jobs/job_odd answered a body that is not a JobView: "
                                   "status: Input should be 'accepted', "), captured.err
    assert captured.err.count("\n") == 1 and captured.out == ""


def test_fields_a_newer_server_adds_are_read_past_and_printed_as_sent(
        fake: FakeApi, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["status", "job_newer", "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["queue_position"] == 3 and printed["request"]["seed_policy"] == "fixed"


def test_unreadable_file_is_a_usage_error(fake: FakeApi, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["submit", str(tmp_path / "missing.json")]) == 2
    assert "cannot read" in capsys.readouterr().err


def test_dev_calls_the_embedded_stack(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[dict[str, Any]] = []

    def run_dev(**kwargs: Any) -> int:
        calls.append(kwargs)
        return 0

    embedded = types.ModuleType("hvr.local.embedded")
    embedded.run_dev = run_dev  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "hvr.local.embedded", embedded)
    monkeypatch.setenv("HVR_DEV_API_KEYS", "acme:k1:admin")
    assert main(["dev", "--port", "9999", "--time-scale", "50"]) == 0
    assert main(["dev", "--agent-engine", "comfyui"]) == 0
    assert main(["dev", "--agents", "5090,4090,3090"]) == 0
    assert main(["dev", "--data-dir", "/tmp/hvr-state", "--fresh", "--quiet"]) == 0
    sim = {"agent_engine": "sim", "comfyui_url": None, "agents": None, "data_dir": None, "fresh": False, "quiet": False}
    assert calls == [{"port": 9999, "time_scale": 50.0, "api_keys": "acme:k1:admin", **sim},
                     {"port": 8787, "time_scale": None, "api_keys": "acme:k1:admin", **sim,
                      "agent_engine": "comfyui"},
                     {"port": 8787, "time_scale": None, "api_keys": "acme:k1:admin", **sim,
                      "agents": "5090,4090,3090"},
                     {"port": 8787, "time_scale": None, "api_keys": "acme:k1:admin", **sim,
                      "data_dir": Path("/tmp/hvr-state"), "fresh": True, "quiet": True}]


class CalibrationApi:
    """Pinned local jobs that finish on their second GET, each having taken a tenth of the catalog's p50."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.gets: dict[str, int] = {}

    def routes(self) -> list[Route]:
        return [Route("POST", "/v1/jobs", self.submit, auth=True), Route("GET", "/v1/jobs/{id}", self.get, auth=True)]

    def submit(self, event: dict[str, Any], context: Any) -> dict[str, Any]:
        self.bodies.append(json.loads(event["body"]))
        return {"statusCode": 202, "body": json.dumps(self.job(len(self.bodies) - 1, done=False))}

    def get(self, event: dict[str, Any], context: Any) -> dict[str, Any]:
        job_id = event["pathParameters"]["id"]
        self.gets[job_id] = self.gets.get(job_id, 0) + 1
        return {"statusCode": 200, "body": json.dumps(self.job(int(job_id.removeprefix("job_")),
                                                               done=self.gets[job_id] >= 2))}

    def job(self, n: int, done: bool) -> dict[str, Any]:
        body = self.bodies[n]
        fails = body["model"] == "local/wan21-14b"  # e.g. the box lacks its weights
        status = ("failed" if fails else "succeeded") if done else "running"
        attempt = {"n": 1, "id": f"att_{n}", "offer": body["model"], "provider": "local", "target": "agent-1",
                   "status": status, "started_at": "2026-01-01T00:00:01Z",
                   "delivered": {"width": 832, "height": 480, "frames": 17, "fps": 16.0},
                   "estimated_cost_usd": "0.1233", "estimated_render_s": 4110.0,
                   "billed": {"gpu_seconds": 411.0} if done and not fails else {}}
        return api_job(f"job_{n}", status, body, attempts=[attempt],
                       cost={"estimated_usd": "0.1233", "actual_usd": "0.0123" if done and not fails else "0.0000"},
                       error={"code": "provider_failed", "message": "no weights"} if done and fails else None)


def test_calibrate_submits_the_standard_set_pinned_to_local_offers_and_prints_each_against_the_catalog(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    fake = CalibrationApi()
    with LocalHttpApi(fake.routes(), FakeApi.authorizer) as api:
        monkeypatch.setenv("HVR_API_URL", api.url)
        monkeypatch.setenv("HVR_API_KEY", KEY)
        rc = main(["calibrate", "--poll-interval", "0.01"])
    out = capsys.readouterr().out
    assert rc == 1, "one job failed: the run did not calibrate everything"
    pinned = [body["model"] for body in fake.bodies]
    assert pinned == ["local/animatediff-sd15", "local/wan21-1.3b", "local/wan21-1.3b", "local/wan21-14b"]
    assert all(body["mode"] == "t2v" and body["quality"] == "draft" and "deadline_s" not in body
               for body in fake.bodies), "any local offer qualifies, and no deadline refuses a slow catalog figure"
    assert len({(b["model"], b["duration_s"]) for b in fake.bodies}) == 4
    lines = out.splitlines()
    assert lines[0].split() == ["offer", "size", "frames", "took", "GPU-s", "catalog", "p50", "s", "took/catalog",
                                "cost", "estimated", "status"]
    assert lines[1].split() == ["local/animatediff-sd15", "832x480", "17", "411", "4110", "0.10x", "$0.0123",
                                "$0.1233", "succeeded"]
    assert lines[4].split()[-2:] == ["failed", "(provider_failed)"] and lines[4].split()[3] == "-"


def test_agents_table_shows_each_boxs_utilization_or_a_dash_when_it_reported_none() -> None:
    seen = datetime(2027, 1, 8, 12, 0, tzinfo=UTC)

    def box(name: str, utilization: float | None, measured: dict[str, float] | None) -> AgentView:
        registration = {"tunnel_url": f"https://{name}.example.com", "gpu": "RTX 4090", "vram_mb": 24564,
                        "ram_mb": 65536, "slots": 2, "models": ["wan21-14b"], "utilization": measured}
        return AgentView.model_validate({"name": name, "registration": registration, "key_id": "ak_1",
                                         "registered_at": seen, "last_seen": seen, "state": "up",
                                         "utilization": utilization, "busy_now": 0.0})

    lines = format_agents([box("gpu-1", 0.375, {"window_s": 3600, "busy_s": 2700}),
                           box("gpu-2", None, None), box("gpu-3", 0.05, {"window_s": 1800, "busy_s": 180})],
                          now=seen).splitlines()
    assert lines[0].split()[:7] == ["name", "state", "gpu", "vram", "ram", "slots", "util"]
    util = slice(lines[0].index("util"), lines[0].index("util") + len("util"))  # its cells end under the header's
    rows = {line.split()[0]: line for line in lines[1:]}
    assert "38% of 1h" in rows["gpu-1"] and "5% of 30m" in rows["gpu-3"]
    assert rows["gpu-2"][util].strip() == "-"


def test_quote_shows_learned_render_time_beside_the_catalog() -> None:
    summary = describe(38.0, 27, 2420.0)
    assert summary == "p50 38 s, learned from 27 runs; catalog 40 min"
    assert describe(2420.0, 0, 2420.0) == "p50 40 min, catalog (no runs yet)"
    figures = {"attempts": 27, "p50_s": 38.0, "p90_s": 52.0, "catalog_p50_s": 2420.0, "catalog_p90_s": 3000.0,
               "time_factor": 0.016, "cost_factor": 1.0, "failure_rate": 0.0, "cold_start_s": 0.0}
    quote = Quote.model_validate({
        "candidates": [{"offer": "local/animatediff-sd15", "provider": "local", "feasible": True, "score": 0.9},
                       {"offer": "veo/veo-3.1", "provider": "veo", "feasible": False, "reasons": ["resolution: no"]}],
        "learned": {"local/animatediff-sd15": {**figures, "summary": summary, "reference": "512x512, 16 frames",
                                               "runs": 27},
                    "veo/veo-3.1": {**figures, "summary": "p50 1 min, catalog (no runs yet)", "reference": "-",
                                    "runs": 0}},
        "chosen": None, "fallbacks": [], "reasons": []})
    lines = format_quote(quote).splitlines()
    assert "  local/animatediff-sd15  p50 38 s, learned from 27 runs; catalog 40 min (512x512, 16 frames)" in lines
    assert not any("veo/veo-3.1  p50" in line for line in lines)  # infeasible and never run: only the catalog


def test_quote_says_when_it_explores_and_when_it_gives_up() -> None:
    now = datetime(2026, 12, 4, 9, tzinfo=UTC)
    chosen = {"offer": "local/wan21-14b", "provider": "local", "target": "agent-1", "estimated_cost_usd": "0.6336",
              "estimated_cost_p90_usd": "0.7000", "estimated_ready_at": "2026-12-04T11:50:00Z", "score": 0.98,
              "delivered": {"width": 832, "height": 480, "frames": 81, "fps": 16.0},
              "reason": "exploring local/wan21-14b",
              "explored": "local/wan21-14b has 0 measured runs (fewer than 3) and agent-1 is idle; ...",
              "explore_until": "2026-12-04T11:48:47Z"}
    exploring = Quote.model_validate({"candidates": [], "chosen": chosen, "fallbacks": ["replicate/wan-2.2-t2v-fast"],
                                      "reasons": []})
    lines = format_quote(exploring, now).splitlines()
    assert "  exploring, abandoned at 11:48:47Z (+2h48m) if not done: local/wan21-14b has 0 measured runs" \
           " (fewer than 3) and agent-1 is idle; ..." in lines
    plain = Quote.model_validate({"candidates": [], "chosen": {**chosen, "explored": None, "explore_until": None},
                                  "fallbacks": [], "reasons": []})
    assert "abandoned at" not in format_quote(plain, now)


class AlertsApi:
    """`GET /v1/alerts` in two pages; a scope other than the caller's own is refused as the API refuses it."""

    ALERTS = [
        {"scope": "tenant:acme", "period": "2026-12", "kind": "spend_mode", "threshold": 1.0, "spent_usd": "12.0000",
         "limit_usd": "12.0000", "mode": "local_only", "at": "2026-12-04T12:30:00Z",
         "source": "threshold 100% of limit", "added_later": True},
        {"scope": "tenant:acme", "period": "2026-12", "kind": "threshold", "threshold": 0.5, "spent_usd": "6.1000",
         "limit_usd": "12.0000", "mode": None, "at": "2026-12-04T09:00:00.250000Z",
         "source": "threshold 50% of limit (51% spent)"},
    ]

    def __init__(self) -> None:
        self.queries: list[dict[str, str]] = []

    def routes(self) -> list[Route]:
        return [Route("GET", "/v1/alerts", self.alerts, auth=True)]

    def alerts(self, event: dict[str, Any], context: Any) -> dict[str, Any]:
        query = dict(event.get("queryStringParameters") or {})
        self.queries.append(query)
        if query.get("scope", "tenant:acme") != "tenant:acme":
            return problem(403, "Forbidden", "a member key of acme asked for the alerts of global",
                           errors=[{"field": "scope", "message": "a member key sees its own tenant only"}])
        if "cursor" in query:
            return {"statusCode": 200, "body": json.dumps({"alerts": self.ALERTS[1:], "next_cursor": None})}
        return {"statusCode": 200, "body": json.dumps({"alerts": self.ALERTS[:1], "next_cursor": "page-2"})}


@pytest.fixture
def alerts_api(monkeypatch: pytest.MonkeyPatch) -> Iterator[AlertsApi]:
    fake = AlertsApi()
    with LocalHttpApi(fake.routes(), FakeApi.authorizer) as api:
        monkeypatch.setenv("HVR_API_URL", api.url)
        monkeypatch.setenv("HVR_API_KEY", KEY)
        yield fake


def test_alerts_reads_every_page_into_a_table(alerts_api: AlertsApi, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["alerts", "--scope", "tenant:acme", "--period", "2026-12"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["at", "scope", "kind", "threshold/mode", "spent", "limit"]
    assert lines[1].split() == ["2026-12-04", "12:30:00Z", "tenant:acme", "spend_mode", "local_only", "$12.0000",
                                "$12.0000"]
    assert lines[2].split() == ["2026-12-04", "09:00:00Z", "tenant:acme", "threshold", "50%", "$6.1000", "$12.0000"]
    assert alerts_api.queries == [{"scope": "tenant:acme", "period": "2026-12", "limit": "500"},
                                  {"scope": "tenant:acme", "period": "2026-12", "limit": "500", "cursor": "page-2"}]


def test_alerts_json_prints_what_the_server_sent(alerts_api: AlertsApi, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["alerts", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"alerts": AlertsApi.ALERTS, "next_cursor": None}
    assert alerts_api.queries[0] == {"limit": "500"}


def test_alerts_refused_and_usage_errors(alerts_api: AlertsApi, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["alerts", "--scope", "global"]) == 2
    assert "error 403: Forbidden" in capsys.readouterr().err
    with pytest.raises(SystemExit) as usage:
        main(["alerts", "--period", "2026-1"])
    assert usage.value.code == 2 and "is not a month (YYYY-MM)" in capsys.readouterr().err
    assert alerts_api.queries == [{"scope": "global", "limit": "500"}]


def test_quote_says_a_long_video_is_rendered_in_segments() -> None:
    now = datetime(2026, 12, 4, 9, tzinfo=UTC)
    chosen = {"offer": "local/wan21-1.3b", "provider": "local", "target": "agent-1", "estimated_cost_usd": "21.0276",
              "estimated_cost_p90_usd": "25.0000", "estimated_ready_at": "2026-12-06T11:50:00Z", "score": 0.96,
              "delivered": {"width": 832, "height": 480, "frames": 2916, "fps": 16.0, "segments": 36}, "reason": ""}
    lines = format_quote(Quote.model_validate({"candidates": [], "chosen": chosen, "fallbacks": [], "reasons": []}),
                         now).splitlines()
    assert ("  long-form: 36 renders of 81 frames, each continuing from the last frame of the one before, joined "
            "into one video") in lines
