"""`hvr dev --data-dir`: what the embedded stack holds survives a restart; its request and transition log; /docs."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import httpx
import pytest

from hvr.local.embedded import DEV_FILE, DataDirInUse, EmbeddedStack
from hvr.local.provision import ACCOUNT_ID, REGION
from hvr.tools.openapi import COMMITTED
from tests.waiting import until

REPO = Path(__file__).resolve().parents[2]
TIME_SCALE = 5000.0
DRAFT = {"mode": "t2v", "prompt": "a paper boat", "resolution": "512x512", "aspect_ratio": "1:1",
         "duration_s": 2, "quality": "draft", "deadline_s": 86400}
TERMINAL = {"succeeded", "failed", "cancelled", "expired", "rejected"}


def api(stack: EmbeddedStack, key: str) -> httpx.Client:
    return httpx.Client(base_url=stack.url, headers={"Authorization": f"Bearer {key}"}, timeout=30)


def ended(client: httpx.Client, job_id: str) -> bool:
    return client.get(f"/v1/jobs/{job_id}").json()["status"] in TERMINAL


def contents(stack: EmbeddedStack) -> dict[str, Any]:
    """Every table's items, every object's key and ETag, every queued message's body: what a restart must keep."""
    assert stack.stack is not None
    ddb, s3 = stack.clients["dynamodb"], stack.clients["s3"]
    tables = {logical: sorted(json.dumps(item, sort_keys=True) for page in
                              ddb.get_paginator("scan").paginate(TableName=name) for item in page.get("Items", []))
              for logical, name in stack.stack.table_names.items()}
    objects = {logical: sorted((o["Key"], o["ETag"]) for o in s3.list_objects_v2(Bucket=name).get("Contents", []))
               for logical, name in stack.stack.bucket_names.items()}
    # Less S3's test events, which setting a bucket's notifications sends (provisioning, restoring) and consumers skip.
    queues = {logical: sorted(m.body for m in stack.moto.queue_messages(ACCOUNT_ID, REGION, stack.stack.names[logical])
                              if '"s3:TestEvent"' not in m.body)
              for logical in stack.stack.queue_urls}
    return {"tables": tables, "objects": objects, "queues": queues}


def test_a_restart_keeps_keys_budgets_jobs_ledger_outputs_and_queued_work(tmp_path: Path) -> None:
    data = tmp_path / "dev"
    lines: list[str] = []
    with EmbeddedStack(data, time_scale=TIME_SCALE, keep_state=True, background=False, log=lines.append) as first:
        admin_key = first.admin_key
        admin = api(first, admin_key)
        acme_key = admin.post("/v1/keys", json={"tenant": "acme"}).json()["key"]
        assert admin.put("/v1/budgets/tenant:acme", json={"limit_usd": "25.00"}).status_code == 200
        acme = api(first, acme_key)
        done_id = acme.post("/v1/jobs", json=DRAFT).json()["id"]
        assert first.drain(lambda: ended(acme, done_id))
        done = acme.get(f"/v1/jobs/{done_id}").json()
        assert done["status"] == "succeeded", done["error"]
        video = httpx.get(done["output"]["url"]).content
        queued_id = acme.post("/v1/jobs", json=DRAFT).json()["id"]  # nothing consumes it before the stop
        before = contents(first)
    assert queued_id in {json.loads(body)["job_id"] for body in before["queues"]["JobsQueue"]}
    assert (data / DEV_FILE).stat().st_mode & 0o777 == 0o600  # it holds the dev key as printed

    with EmbeddedStack(data, time_scale=TIME_SCALE, keep_state=True, background=False) as second:
        assert second.admin_key == admin_key  # the same dev key, not a new one
        assert contents(second) == before  # every table (jobs, ledger, budgets, keys, …), object and message
        acme = api(second, acme_key)
        again = acme.get(f"/v1/jobs/{done_id}").json()
        assert {**again, "output": None} == {**done, "output": None}
        assert httpx.get(again["output"]["url"]).content == video  # presigned afresh, on this run's moto
        budget = next(b for b in api(second, admin_key).get("/v1/budgets").json()["budgets"]
                      if b["scope"] == "tenant:acme")
        assert float(budget["limit_usd"]) == 25 and float(budget["spent_usd"]) == float(done["cost"]["actual_usd"])
        assert second.drain(lambda: ended(acme, queued_id))  # the work queued at the stop goes on
        assert acme.get(f"/v1/jobs/{queued_id}").json()["status"] == "succeeded"

    assert any(re.fullmatch(r"POST /v1/jobs 202 \d+ ms tenant acme", line) for line in lines), lines
    assert any(re.fullmatch(r"PUT /v1/budgets/tenant:acme 200 \d+ ms tenant dev", line) for line in lines), lines
    assert f"{done_id} → accepted" in lines
    assert any(re.fullmatch(rf"{done_id} \w+ → succeeded on local/[\w.-]+", line) for line in lines), lines


def test_an_attempt_the_restarted_sandbox_no_longer_knows_ends_with_its_reason_and_falls_back(tmp_path: Path) -> None:
    """The sandboxes keep nothing across a restart, as a provider that lost a job: the attempt ends, said why."""
    request = json.loads((REPO / "samples" / "requests" / "09-runpod-t2v-720p.json").read_text())
    with EmbeddedStack(tmp_path, time_scale=TIME_SCALE, keep_state=True, background=False,
                       with_agent=False) as first:
        key = first.admin_key
        job_id = api(first, key).post("/v1/jobs", json=request).json()["id"]
        in_flight = {"submitted", "running"}
        assert first.drain(lambda: api(first, key).get(f"/v1/jobs/{job_id}").json()["status"] in in_flight | TERMINAL)
        assert api(first, key).get(f"/v1/jobs/{job_id}").json()["status"] in in_flight
    with EmbeddedStack(tmp_path, time_scale=TIME_SCALE, keep_state=True, background=False,
                       with_agent=False) as second:
        assert second.drain(lambda: ended(api(second, key), job_id))
        job = api(second, key).get(f"/v1/jobs/{job_id}").json()
    lost, *rest = job["attempts"]
    # Its reason: RunPod's 404 for a job it doesn't have (or, had its webhook come before the stop, the output's).
    assert lost["provider"] == "runpod" and lost["status"] == "failed" and lost["reason"], lost
    assert job["status"] == "succeeded" and rest, job


def test_fresh_forgets_and_a_data_dir_has_one_stack(tmp_path: Path) -> None:
    data = tmp_path / "dev"
    (data / "notes.txt").parent.mkdir(parents=True)
    (data / "notes.txt").write_text("not hvr's")
    light: dict[str, Any] = {"time_scale": TIME_SCALE, "keep_state": True, "background": False, "with_agent": False,
             "with_sandboxes": False}
    with EmbeddedStack(data, **light) as first:
        key = first.admin_key
        assert api(first, key).put("/v1/budgets/global", json={"limit_usd": "5.00"}).status_code == 200
        with pytest.raises(DataDirInUse):
            EmbeddedStack(data, **light).start()
        assert api(first, key).get("/v1/budgets").json()["budgets"]  # the refused one wiped nothing
    with EmbeddedStack(data, **light) as kept:
        assert kept.admin_key == key and api(kept, key).get("/v1/budgets").json()["budgets"]
    with EmbeddedStack(data, fresh=True, **light) as fresh:
        assert fresh.admin_key != key
        assert api(fresh, fresh.admin_key).get("/v1/budgets").json()["budgets"] == []
        assert api(fresh, key).get("/v1/budgets").status_code == 403
    assert (data / "notes.txt").read_text() == "not hvr's"  # --fresh removes only what hvr dev wrote


def test_a_running_stack_saves_as_it_goes(tmp_path: Path) -> None:
    """What a crash (kill -9, no stop) would leave: the last periodic save."""
    with EmbeddedStack(tmp_path, time_scale=TIME_SCALE, keep_state=True, save_every_s=0.2, with_agent=False,
                       with_sandboxes=False) as stack:
        admin = api(stack, stack.admin_key)
        assert admin.put("/v1/budgets/tenant:periodic", json={"limit_usd": "7.00"}).status_code == 200
        saved = tmp_path / "state" / "snapshot.json"
        until(lambda: saved.exists() and "tenant:periodic" in saved.read_text(), timeout_s=10,
              what="a save with the budget")


def test_docs_is_swagger_ui_over_the_committed_document_with_no_remote_asset(tmp_path: Path) -> None:
    with EmbeddedStack(tmp_path, time_scale=TIME_SCALE, background=False, with_agent=False,
                       with_sandboxes=False) as stack:
        page = httpx.get(f"{stack.url}/docs")
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        assert "SwaggerUIBundle" in page.text
        assets = re.findall(r'(?:src|href)="([^"]+)"', page.text) + re.findall(r'url: "([^"]+)"', page.text)
        assert assets and all(asset.startswith("/docs/") for asset in assets), assets  # nothing from elsewhere
        for asset in assets:
            served = httpx.get(f"{stack.url}{asset}")
            assert served.status_code == 200 and len(served.content) > 1000, asset
        document = httpx.get(f"{stack.url}/docs/openapi.json").json()
        assert document == json.loads(COMMITTED.read_text())
        live = httpx.get(f"{stack.url}/v1/openapi.json").json()  # what the API itself serves, from the code
        assert sorted(document["paths"]) == sorted(live["paths"]) and len(live["paths"]) > 10
        assert httpx.get(f"{stack.url}/docs/swagger-ui-es-bundle.js").json() == {"message": "Not Found"}
