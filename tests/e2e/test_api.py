"""API v1 over HTTP against the embedded stack (docs/architecture.md, "API contract")."""

import json
import shutil
import threading
import time
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from hvr.local.embedded import EmbeddedStack
from router.media.probe import probe
from router.models.common import utcnow

REPO = Path(__file__).resolve().parents[2]
DRAFT = {"mode": "t2v", "prompt": "a paper boat", "resolution": "512x512", "aspect_ratio": "1:1",
         "duration_s": 2, "quality": "draft", "deadline_s": 86400}
TERMINAL = {"succeeded", "failed", "cancelled", "expired", "rejected"}


def wait_for(api: httpx.Client, job_id: str, timeout_s: float = 60) -> dict:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        job = api.get(f"/v1/jobs/{job_id}").json()
        if job["status"] in TERMINAL:
            return job
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} did not finish: {job}")


def count_jobs(api: httpx.Client) -> int:
    return len(api.get("/v1/jobs", params={"limit": 500}).json()["items"])


def test_submit_to_succeeded_then_download_and_probe(acme: httpx.Client, tmp_path) -> None:
    response = acme.post("/v1/jobs", json=DRAFT)
    assert response.status_code == 202, response.text
    job = response.json()
    assert job["status"] == "accepted" and job["request"]["prompt"] == "a paper boat"

    done = wait_for(acme, job["id"])
    assert done["status"] == "succeeded", done["error"]
    assert done["routing"]["chosen"]["offer"] == "local/animatediff-sd15"
    assert done["attempts"][0]["billed"]["gpu_seconds"] > 0
    assert float(done["cost"]["actual_usd"]) > 0 and isinstance(done["cost"]["actual_usd"], str)
    video = tmp_path / "out.mp4"
    video.write_bytes(httpx.get(done["output"]["url"]).content)
    probed = probe(video)
    assert (probed.width, probed.height, probed.frames) == (512, 512, 16)
    assert done["output"]["bytes"] == video.stat().st_size


BAD_INPUT = [
    ({**DRAFT, "mode": "dance"}, "mode"),
    ({**DRAFT, "resolution": "99999x1"}, "resolution"),
    ({**DRAFT, "duration_s": 0}, "duration_s"),
    ({**DRAFT, "duration_s": -2}, "duration_s"),
    ({**DRAFT, "prompt": ""}, "prompt"),
    ({**DRAFT, "prompt": "x" * 100_000}, "prompt"),
    ({**{k: v for k, v in DRAFT.items() if k != "deadline_s"}, "deadline": "2020-01-01T00:00:00Z"}, "deadline"),
    ({**DRAFT, "deadline": "2099-01-01T00:00:00Z"}, "deadline_s"),
    ({**DRAFT, "mode": "i2v"}, "image"),
    ({**DRAFT, "callback_url": "http://hooks.example.test/cb"}, "callback_url"),
    ({**DRAFT, "callback_url": "https://10.0.0.7/cb"}, "callback_url"),
    ({**DRAFT, "callback_url": "https://localhost/cb"}, "callback_url"),
    ({**DRAFT, "colour": "red"}, "colour"),
]


@pytest.mark.parametrize(("body", "field"), BAD_INPUT)
def test_bad_input_is_a_problem_naming_the_field_and_writes_nothing(acme: httpx.Client, body: dict,
                                                                     field: str) -> None:
    before = count_jobs(acme)
    response = acme.post("/v1/jobs", json=body)
    assert response.status_code == 400, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    problem = response.json()
    assert problem["status"] == 400 and problem["title"]
    assert field in [e["field"] for e in problem["errors"]], problem
    assert count_jobs(acme) == before


def test_malformed_json_is_a_problem(acme: httpx.Client) -> None:
    truncated = b'{"mode": "t2v", "prompt": '
    response = acme.post("/v1/jobs", content=truncated, headers={"content-type": "application/json"})
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == "body"


def test_keys_roles_and_tenants(stack, acme: httpx.Client, beta: httpx.Client, member: httpx.Client) -> None:
    from tests.e2e.conftest import client

    assert client(stack, None).post("/v1/jobs", json=DRAFT).status_code == 401
    assert client(stack, "no-such-key").post("/v1/jobs", json=DRAFT).status_code == 403
    assert client(stack, None).get("/v1/health").status_code == 200

    refused = member.post("/v1/keys", json={"tenant": "gamma"})
    assert refused.status_code == 403 and refused.headers["content-type"].startswith("application/problem+json")
    created = acme.post("/v1/keys", json={"tenant": "gamma"})
    assert created.status_code == 201 and created.json()["key"].startswith("hvr_")
    gamma = client(stack, created.json()["key"])

    job = acme.post("/v1/jobs", json={**DRAFT, "max_cost_usd": "0.01"}).json()
    for other in (beta, gamma):
        assert other.get(f"/v1/jobs/{job['id']}").status_code == 404
        assert other.post(f"/v1/jobs/{job['id']}/cancel").status_code == 404
        assert job["id"] not in [j["id"] for j in other.get("/v1/jobs").json()["items"]]
    assert job["id"] in [j["id"] for j in acme.get("/v1/jobs").json()["items"]]


def test_idempotency_key_replay_mismatch_and_in_flight(stack, acme: httpx.Client) -> None:
    first = acme.post("/v1/jobs", json=DRAFT, headers={"Idempotency-Key": "order-1"})
    again = acme.post("/v1/jobs", json=DRAFT, headers={"Idempotency-Key": "order-1"})
    assert (first.status_code, again.status_code) == (202, 200)
    assert first.json()["id"] == again.json()["id"]
    changed = acme.post("/v1/jobs", json={**DRAFT, "seed": 9}, headers={"Idempotency-Key": "order-1"})
    assert changed.status_code == 422 and changed.json()["errors"][0]["field"] == "Idempotency-Key"

    # Hold the first request inside job creation; a second one with the same key must get 409, not a second job.
    # (Patched where the API calls it, so the background worker's own sends are untouched.) The second comes from
    # another Lambda environment: the embedded gateway runs one invocation at a time per function, so it is made
    # here, through the same idempotency layer and table the API function uses.
    import functions.api.routes_jobs as routes
    from router.services import idempotency

    release, entered = threading.Event(), threading.Event()
    original = routes.submit_checked

    def slow_submit(*args, **kwargs):
        entered.set()
        release.wait(10)
        return original(*args, **kwargs)

    def second_job():
        raise AssertionError("a second job was created for the same key")

    routes.submit_checked = slow_submit
    results: dict[str, httpx.Response] = {}
    try:
        worker = threading.Thread(target=lambda: results.update(
            first=acme.post("/v1/jobs", json=DRAFT, headers={"Idempotency-Key": "order-2"})))
        worker.start()
        assert entered.wait(10)
        routes.submit_checked = original
        with pytest.raises(idempotency.KeyInFlight) as in_flight:
            idempotency.submit("acme", "order-2", DRAFT, second_job, stack.deps)
    finally:
        routes.submit_checked = original
        release.set()
        worker.join(10)
    assert in_flight.value.status == 409
    assert results["first"].status_code == 202
    replay = acme.post("/v1/jobs", json=DRAFT, headers={"Idempotency-Key": "order-2"})
    assert replay.status_code == 200 and replay.json()["id"] == results["first"].json()["id"]


def test_terminal_callback_is_signed_with_standard_webhooks(stack, acme: httpx.Client, receiver) -> None:
    job = acme.post("/v1/jobs", json={**DRAFT, "callback_url": "https://hooks.example.test/cb?ref=7"}).json()
    done = wait_for(acme, job["id"])
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and not any(b["data"]["id"] == job["id"] for b in receiver.bodies()):
        time.sleep(0.1)
    call = next(c for c in receiver.calls if job["id"] in c["body"].decode())
    assert call["path"] == "/cb?ref=7"
    headers = {k.lower(): v for k, v in call["headers"].items()}
    payload = Webhook(stack.callback_secret).verify(call["body"], headers)
    assert payload["type"] == f"job.{done['status']}" and payload["data"]["id"] == job["id"]
    assert headers["webhook-id"] == f"{job['id']}.{done['status']}"
    with pytest.raises(WebhookVerificationError):
        Webhook(stack.callback_secret).verify(call["body"].replace(b"job.", b"jab."), headers)


def test_quote_lists_every_offer(acme: httpx.Client) -> None:
    quote = acme.post("/v1/quotes", json=DRAFT).json()
    assert quote["chosen"]["offer"] == "local/animatediff-sd15"
    offers = acme.get("/v1/providers").json()["offers"]
    assert len(quote["candidates"]) == len(offers)
    assert set(quote) == {"chosen", "fallbacks", "candidates", "reasons", "learned"}
    # The render time behind each estimate, learned beside catalog, for this request's own delivery.
    assert quote["learned"]["local/animatediff-sd15"]["reference"] == "512x512, 16 frames"
    assert all(offer["learned"]["summary"].startswith("p50 ") for offer in offers)


def test_cancel_a_running_job(acme: httpx.Client) -> None:
    slow = {**DRAFT, "resolution": "480p", "aspect_ratio": "16:9", "quality": "standard", "providers": ["local"]}
    job = acme.post("/v1/jobs", json=slow).json()
    deadline = time.monotonic() + 20
    while acme.get(f"/v1/jobs/{job['id']}").json()["status"] not in ("submitted", "running"):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    cancelled = acme.post(f"/v1/jobs/{job['id']}/cancel")
    assert cancelled.status_code == 200, cancelled.text
    body = cancelled.json()
    assert body["status"] == "cancelled" and body["cancel"]["billed"] in (True, False)
    assert acme.post(f"/v1/jobs/{job['id']}/cancel").json()["status"] == "cancelled"


def test_uploads_are_presigned_into_the_tenants_prefix(acme: httpx.Client) -> None:
    ticket = acme.post("/v1/uploads", json={"content_type": "image/png"}).json()
    assert ticket["ref"].startswith("s3://") and "/uploads/acme/" in ticket["ref"]
    assert httpx.put(ticket["upload_url"], content=b"\x89PNG\r\n\x1a\n" + b"0" * 64,
                     headers={"content-type": "image/png"}).status_code == 200
    refused = acme.post("/v1/uploads", json={"content_type": "application/x-sh"})
    assert refused.status_code == 400 and refused.json()["errors"][0]["field"] == "content_type"
    # A ref that was never uploaded is refused before any job exists.
    missing = ticket["ref"].replace(".png", "-missing.png")
    response = acme.post("/v1/jobs", json={**DRAFT, "mode": "i2v", "image": missing})
    assert response.status_code == 400 and response.json()["errors"][0]["field"] == "image"


def test_list_paginates_with_a_cursor(beta: httpx.Client) -> None:
    ids = [beta.post("/v1/jobs", json={**DRAFT, "max_cost_usd": "0.01"}).json()["id"] for _ in range(3)]
    page = beta.get("/v1/jobs", params={"limit": 2}).json()
    assert [j["id"] for j in page["items"]] == ids[::-1][:2] and page["next_cursor"]
    rest = beta.get("/v1/jobs", params={"limit": 2, "cursor": page["next_cursor"]}).json()
    assert ids[0] in [j["id"] for j in rest["items"]]
    assert beta.get("/v1/jobs", params={"cursor": "%%%"}).status_code == 400
    assert utcnow()


def test_alerts_a_member_sees_its_tenant_and_campaigns_an_admin_every_scope(stack, acme: httpx.Client,
                                                                               beta: httpx.Client) -> None:
    from datetime import timedelta
    from decimal import Decimal

    from router.models.budget import BudgetAlert, period_of
    from router.models.campaign import Campaign, campaign_id

    now = utcnow()
    ours, theirs = campaign_id("beta", "alerts"), campaign_id("acme", "alerts")
    for tenant, cid in (("beta", ours), ("acme", theirs)):
        stack.deps.campaigns.create(Campaign(id=cid, tenant=tenant, name="alerts", created_at=now, origin="inline"))
    scopes = ["global", "tenant:acme", "tenant:beta", f"campaign:{ours}", f"campaign:{theirs}"]
    for second, scope in enumerate(scopes):
        stack.deps.alert_history.record(BudgetAlert(
            scope=scope, period=period_of(now), kind="threshold", threshold=0.8, spent_usd=Decimal("8.5"),
            limit_usd=Decimal(10), at=now + timedelta(seconds=second), source="threshold 80% of limit (85% spent)"))

    page = beta.get("/v1/alerts").json()
    assert [a["scope"] for a in page["alerts"]] == [f"campaign:{ours}", "tenant:beta"]
    assert page["next_cursor"] is None
    assert page["alerts"][0]["spent_usd"] == "8.5000" and page["alerts"][0]["limit_usd"] == "10.0000"
    assert [a["scope"] for a in beta.get("/v1/alerts", params={"scope": f"campaign:{ours}"}).json()["alerts"]] \
        == [f"campaign:{ours}"]
    for other in ("global", "tenant:acme", f"campaign:{theirs}", "campaign:cmp_nobodys"):
        refused = beta.get("/v1/alerts", params={"scope": other})
        assert refused.status_code == 403, (other, refused.text)
        assert refused.headers["content-type"].startswith("application/problem+json")
        assert [e["field"] for e in refused.json()["errors"]] == ["scope"]

    everything = acme.get("/v1/alerts", params={"period": period_of(now)}).json()["alerts"]
    assert [a["scope"] for a in everything if a["source"].endswith("(85% spent)")][:5] == scopes[::-1]
    assert [a["scope"] for a in acme.get("/v1/alerts", params={"scope": f"campaign:{ours}"}).json()["alerts"]] \
        == [f"campaign:{ours}"]
    first = acme.get("/v1/alerts", params={"limit": 2}).json()
    rest = acme.get("/v1/alerts", params={"limit": 500, "cursor": first["next_cursor"]}).json()
    assert first["alerts"] + rest["alerts"] == acme.get("/v1/alerts", params={"limit": 500}).json()["alerts"]
    assert acme.get("/v1/alerts", params={"period": "2000-01"}).json() == {"alerts": [], "next_cursor": None}
    for params, field in (({"cursor": "%%%"}, "cursor"), ({"period": "2026-13"}, "period"),
                          ({"scope": "tenant:"}, "scope")):
        bad = acme.get("/v1/alerts", params=params)
        assert bad.status_code == 400 and [e["field"] for e in bad.json()["errors"]] == [field], bad.text


def test_reconciliation_is_for_admin_keys_and_runs_from_the_cli(stack, acme: httpx.Client, member: httpx.Client,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    from hvr.cli import main

    job = wait_for(acme, acme.post("/v1/jobs", json=DRAFT).json()["id"])
    assert job["status"] == "succeeded", job["error"]
    today = utcnow().date().isoformat()
    window = {"from": today, "to": today}
    for refused in (member.post("/v1/reconciliation/runs", json=window), member.get("/v1/reconciliation")):
        assert refused.status_code == 403 and refused.headers["content-type"].startswith("application/problem+json")
        assert refused.json()["type"] == "urn:hvr:problem:forbidden"

    ran = acme.post("/v1/reconciliation/runs", json=window)
    assert ran.status_code == 200, ran.text
    report = ran.json()
    assert (report["from"], report["to"]) == (f"{today}T00:00:00Z", f"{utcnow().date() + timedelta(days=1)}T00:00:00Z")
    assert report["complete"] and report["counts"]["rows"] >= 1
    assert job["attempts"][0]["id"] not in {f["attempt_id"] for f in report["findings"]}  # the agent's own figure
    listed = acme.get("/v1/reconciliation", params=window)
    assert listed.status_code == 200 and listed.json()["from"] == today
    assert {f["attempt_id"] for f in listed.json()["findings"]} == {f["attempt_id"] for f in report["findings"]}
    backwards = acme.post("/v1/reconciliation/runs", json={"from": today, "to": "2000-01-01"})
    assert backwards.status_code == 400 and [e["field"] for e in backwards.json()["errors"]] == ["to"]

    args = ["reconcile", "--api-url", stack.url, "--from", today, "--to", today]
    assert main([*args, "--api-key", "acme-key"]) == 0
    assert capsys.readouterr().out.startswith(f"reconciliation {today} to {today} (UTC): ")
    assert main([*args, "--api-key", "acme-key", "--stored", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["to"] == today
    assert main([*args, "--api-key", "member-key"]) == 2  # refused: admin keys only


def test_cli_submits_a_request_whose_inputs_are_local_files(stack: EmbeddedStack, acme: httpx.Client, tmp_path: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    """`"image": "@file"` in a request file: the CLI uploads it (POST /v1/uploads, a presigned PUT), sends its ref."""
    from hvr.cli import main

    shutil.copy(REPO / "samples/requests/inputs/character.png", tmp_path / "face.png")
    request = tmp_path / "i2v.json"
    request.write_text(json.dumps({**DRAFT, "mode": "i2v", "image": "@face.png", "model": "local/wan21-1.3b"}))
    api = ["--api-url", stack.url, "--api-key", "acme-key"]
    assert main(["submit", str(request), "--no-wait", "--json", *api]) == 0
    job = json.loads(capsys.readouterr().out)
    assert job["request"]["image"].startswith("s3://") and "/acme/" in job["request"]["image"]
    (tmp_path / "bad.json").write_text(json.dumps({**DRAFT, "mode": "i2v", "image": "@face.gif"}))
    assert main(["submit", str(tmp_path / "bad.json"), "--no-wait", *api]) == 2
    assert "face.gif: not a file type the API takes" in capsys.readouterr().err
