"""The job commands of `hvr` against the embedded stack: submit's summary, list with every filter, download, watch,
cancel, providers, upload, a member's budgets, and the errors that name their fix."""

from __future__ import annotations

import contextlib
import json
import shutil
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from hvr.cli import main
from hvr.local.embedded import EmbeddedStack
from hvr.sandbox.base import Fault
from router.models.common import utcnow
from tests.e2e.test_api import DRAFT, REPO, wait_for


def api(stack: EmbeddedStack, key: str = "acme-key") -> list[str]:
    return ["--api-url", stack.url, "--api-key", key]


@pytest.fixture(scope="module")
def done(stack: EmbeddedStack, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One of acme's jobs, submitted and followed to its end by `hvr submit`, its video saved; and what it printed."""
    folder = tmp_path_factory.mktemp("cli")
    request = folder / "draft.json"
    request.write_text(json.dumps(DRAFT))
    saved = folder / "out.mp4"
    out = folder / "stdout.txt"  # capsys is per test: this module-wide fixture reads its output back from a file
    with out.open("w") as stream, contextlib.redirect_stdout(stream):
        rc = main(["submit", str(request), "--download", str(saved), "--poll-interval", "0.05", *api(stack)])
    printed = out.read_text()
    assert rc == 0, printed
    job_id = printed.split()[0]
    return {"id": job_id, "printed": printed, "saved": saved}


def test_submit_prints_a_summary_and_the_saved_file_on_stdout(done: dict[str, Any], acme: httpx.Client) -> None:
    lines = done["printed"].splitlines()
    job = acme.get(f"/v1/jobs/{done['id']}").json()
    attempt = job["attempts"][-1]
    assert lines[0] == f"{job['id']} succeeded: {attempt['offer']} on {attempt['target']}"
    assert f"  cost: ${job['cost']['actual_usd']} (estimated ${job['cost']['estimated_usd']})" in lines
    assert lines[-1] == f"saved {done['saved']} ({done['saved'].stat().st_size} bytes)"
    assert done["saved"].stat().st_size == job["output"]["bytes"]


def test_jobs_list_filters_by_provider_offer_and_day(stack: EmbeddedStack, done: dict[str, Any],
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    job = httpx.get(f"{stack.url}/v1/jobs/{done['id']}", headers={"Authorization": "Bearer acme-key"}).json()
    offer, provider = job["attempts"][-1]["offer"], job["attempts"][-1]["provider"]
    today = utcnow().date()
    other_provider = next(p for p in ("veo", "runpod") if p != provider)

    def listed(*filters: str) -> list[str]:
        assert main(["jobs", "list", "--json", "--limit", "500", *filters, *api(stack)]) == 0
        return [item["id"] for item in json.loads(capsys.readouterr().out)["items"]]

    assert done["id"] in listed("--provider", provider, "--offer", offer)
    assert done["id"] in listed("--from", today.isoformat(), "--to", today.isoformat(), "--status", "succeeded")
    assert done["id"] not in listed("--provider", other_provider)
    assert done["id"] not in listed("--to", (today - timedelta(days=1)).isoformat())
    assert done["id"] not in listed("--from", (today + timedelta(days=1)).isoformat())
    assert main(["jobs", "list", *api(stack)]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split()[:4] == ["id", "created", "(UTC)", "status"]
    assert any(row.startswith(done["id"]) and " succeeded " in row for row in table)
    assert main(["jobs", "list", *api(stack, "beta-key")]) == 0  # another tenant's jobs are not listed
    assert done["id"] not in capsys.readouterr().out


@pytest.mark.parametrize(("query", "field"), [("provider=aws", "provider"), ("offer=nope/none", "offer"),
                                              ("from=2026-13-01", "from"), ("to=0", "to"),
                                              ("from=2026-12-05&to=2026-12-04", "to")])
def test_a_bad_listing_filter_is_a_400_naming_the_field(acme: httpx.Client, query: str, field: str) -> None:
    answer = acme.get(f"/v1/jobs?{query}")
    assert answer.status_code == 400, answer.text
    assert answer.headers["content-type"].startswith("application/problem+json")
    assert [error["field"] for error in answer.json()["errors"]] == [field]


def test_the_output_url_is_signed_at_each_read_never_stored(stack: EmbeddedStack, done: dict[str, Any],
                                                            acme: httpx.Client, tmp_path: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    assert stack.deps.jobs.get("acme", done["id"]).output.url is None  # type: ignore[union-attr]
    assert acme.get(f"/v1/jobs/{done['id']}").json()["output"]["url"].startswith("http")
    target = tmp_path / "again.mp4"
    assert main(["jobs", "download", done["id"], "-o", str(target), *api(stack)]) == 0
    assert capsys.readouterr().out == f"saved {target} ({target.stat().st_size} bytes)\n"
    assert target.read_bytes() == done["saved"].read_bytes()


def test_watch_cancel_and_status_of_an_ended_job(stack: EmbeddedStack, done: dict[str, Any],
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["jobs", "watch", done["id"], *api(stack)]) == 0
    assert capsys.readouterr().out.startswith(f"{done['id']} succeeded: ")
    assert main(["status", done["id"], "--json", *api(stack)]) == 0
    assert json.loads(capsys.readouterr().out)["id"] == done["id"]
    assert main(["jobs", "cancel", done["id"], *api(stack)]) == 2
    assert "error 409" in capsys.readouterr().err


def test_cancel_a_job_its_provider_holds(stack: EmbeddedStack, acme: httpx.Client,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    stack.sandboxes.servers["runpod"].plan.queue("create", Fault.STUCK)  # in RunPod's queue until cancelled
    held = acme.post("/v1/jobs", json=json.loads((REPO / "samples/requests/09-runpod-t2v-720p.json").read_text()))
    assert held.status_code == 202, held.text
    assert main(["jobs", "cancel", held.json()["id"], *api(stack)]) == 0
    assert capsys.readouterr().out.startswith(f"{held.json()['id']} cancelled: ")
    assert wait_for(acme, held.json()["id"])["status"] == "cancelled"


def test_providers_and_upload(stack: EmbeddedStack, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["providers", "--json", *api(stack)]) == 0
    offers = [offer["id"] for offer in json.loads(capsys.readouterr().out)["offers"]]
    assert offers == [offer.id for offer in stack.deps.catalog.offers]
    assert main(["providers", *api(stack)]) == 0
    rows = capsys.readouterr().out.splitlines()
    assert rows[0].split()[:4] == ["offer", "provider", "health", "circuit"] and len(rows) == len(offers) + 1
    shutil.copy(REPO / "samples/requests/inputs/character.png", tmp_path / "face.png")
    assert main(["upload", str(tmp_path / "face.png"), *api(stack)]) == 0
    ref = capsys.readouterr().out.strip()
    assert ref.startswith("s3://") and "/acme/" in ref


def test_a_member_reads_its_own_tenants_budgets(stack: EmbeddedStack, acme: httpx.Client,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    for scope in ("tenant:acme-member", "tenant:beta"):
        assert acme.put(f"/v1/budgets/{scope}", json={"limit_usd": "20.00"}).status_code == 200
    assert main(["budgets", "--json", *api(stack, "member-key")]) == 0
    assert [b["scope"] for b in json.loads(capsys.readouterr().out)["budgets"]] == ["tenant:acme-member"]


def test_errors_name_their_fix(stack: EmbeddedStack, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["providers", "--api-url", stack.url, "--api-key", "not-a-key"]) == 2
    assert capsys.readouterr().err == f"403: this key is not valid for {stack.url} — check HVR_API_KEY (or --api-key)\n"
    typo = tmp_path / "typo.json"
    typo.write_text(json.dumps({**DRAFT, "promt": "a boat"}))
    assert main(["quote", str(typo), *api(stack)]) == 2
    assert "  promt: not a request field; did you mean 'prompt'?" in capsys.readouterr().err.splitlines()
    broken = tmp_path / "broken.json"
    broken.write_text('{\n  "mode": "t2v"\n  "prompt": "x"\n}')
    assert main(["submit", str(broken), *api(stack)]) == 2
    assert capsys.readouterr().err == f"{broken}:3:3: not JSON: Expecting ',' delimiter\n"
