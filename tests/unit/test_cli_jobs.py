"""`hvr jobs`, `hvr providers` and the job summary: what a person reads, and errors that name their fix."""

from __future__ import annotations

import json
import shlex
import shutil
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from hvr.cli import main
from hvr.client import ApiError
from hvr.jobs_text import field_suggestions, format_job, format_jobs, format_providers, request_syntax
from hvr.local.gateway import LocalHttpApi, Route
from router.models.api import OfferHealth, OfferView
from router.models.common import ProviderKind
from router.models.decision import DeliveredSpec
from router.models.job import Attempt, AttemptStatus, JobCost, JobError, JobOutput, JobStatus, JobView
from router.models.request import VideoRequest

NOW = datetime(2026, 12, 4, 12, tzinfo=UTC)
KEY = "hvr_jobs_key"


def attempt(n: int, offer: str, status: AttemptStatus, reason: str | None = None) -> Attempt:
    return Attempt(n=n, id=f"att_{n}", offer=offer, provider=ProviderKind(offer.split("/")[0]), target=f"t{n}",
                   started_at=NOW, delivered=DeliveredSpec(512, 512, 16, 8.0), estimated_cost_usd=Decimal("0.1"),
                   status=status, reason=reason)


def view(status: JobStatus = JobStatus.SUCCEEDED, **fields: Any) -> JobView:
    return JobView(id="job_1", status=status, created_at=NOW, updated_at=NOW + timedelta(seconds=75),
                   request=VideoRequest.model_validate({"mode": "t2v", "prompt": "p"}), **fields)


def test_a_succeeded_job_reads_as_where_cost_and_output_after_a_fallback() -> None:
    job = view(attempts=[attempt(1, "runpod/wan-2-6-t2v", AttemptStatus.FAILED, "provider_error"),
                         attempt(2, "local/wan21-1.3b", AttemptStatus.SUCCEEDED)],
               cost=JobCost(estimated_usd=Decimal("0.2000"), actual_usd=Decimal("0.1234")),
               output=JobOutput(s3_uri="s3://out/acme/job_1.mp4", bytes=2048, width=512, height=512, frames=16,
                                fps=8.0, duration_s=2.0))
    assert format_job(job).splitlines() == [
        "job_1 succeeded: local/wan21-1.3b on t2",
        "  tried first: runpod/wan-2-6-t2v failed (provider_failed: provider_error)",
        "  cost: $0.1234 (estimated $0.2000)",
        "  output: s3://out/acme/job_1.mp4, 512x512, 16 frames, 2 s, 2048 bytes (hvr jobs download job_1)"]


def test_a_running_job_shows_its_estimate_and_a_failed_one_its_error() -> None:
    running = view(JobStatus.RUNNING, cost=JobCost(estimated_usd=Decimal("0.5000")),
                   attempts=[attempt(1, "veo/veo-3.1-fast", AttemptStatus.RUNNING)])
    assert format_job(running).splitlines() == ["job_1 running: veo/veo-3.1-fast on t1", "  cost: ~$0.5000"]
    failed = view(JobStatus.FAILED, error=JobError(code="no_provider", message="nothing fits", details=["cap"]))
    assert format_job(failed).splitlines()[-2:] == ["  error: no_provider: nothing fits", "    cap"]


def test_the_listing_is_one_row_a_job_with_cost_and_turnaround() -> None:
    rows = format_jobs([view(attempts=[attempt(1, "local/wan21-1.3b", AttemptStatus.SUCCEEDED)],
                             cost=JobCost(actual_usd=Decimal("0.0100"))),
                        view(JobStatus.RUNNING, cost=JobCost(estimated_usd=Decimal("1.5000")))]).splitlines()
    assert rows[0].split() == ["id", "created", "(UTC)", "status", "where", "cost", "took"]
    assert rows[1].split() == ["job_1", "2026-12-04", "12:00", "succeeded", "local/wan21-1.3b", "on", "t1",
                               "$0.0100", "1m15s"]
    assert rows[2].split() == ["job_1", "2026-12-04", "12:00", "running", "-", "~$1.5000", "-"]
    assert format_jobs([]) == "no jobs match"


def test_providers_show_health_circuit_and_queue() -> None:
    offer = OfferView(id="runpod/wan-2-6-t2v", provider="runpod", model="wan", modes=["t2v"], resolutions=["480p"],
                      max_frames=81, fps=(16, 16), aspect_ratios=["16:9"], quality=3, pricing={},
                      health=OfferHealth(up=False, circuit="half_open", queue_depth=12.4), configured=True)
    lines = format_providers([offer]).splitlines()
    assert lines[0].split() == ["offer", "provider", "health", "circuit", "configured", "queue", "render", "time"]
    assert lines[1].split() == ["runpod/wan-2-6-t2v", "runpod", "down", "half-open", "yes", "12s", "-"]


def test_a_json_syntax_error_is_named_at_its_line_and_column() -> None:
    with pytest.raises(ApiError) as refused:
        request_syntax(b'{\n  "prompt": "a boat",\n  "mode": t2v\n}', "req.json")
    assert refused.value.lines == ["req.json:3:11: not JSON: Expecting value"]
    assert refused.value.exit_code == 2
    request_syntax(b'{"prompt": "fine"}', "req.json")


def test_an_unknown_field_suggests_the_closest_known_one() -> None:
    assert field_suggestions(b'{"promt": "x", "duraton_s": 4, "mode": "t2v", "zzz": 1}') == [
        "  promt: not a request field; did you mean 'prompt'?",
        "  duraton_s: not a request field; did you mean 'duration_s'?",
        "  zzz: not a request field"]
    assert field_suggestions(b"[1]") == [] and field_suggestions(b"not json") == []


# --- the commands, against a toy API answering as the real one does -----------------------------------------------


class JobsApi:
    def __init__(self) -> None:
        self.url = ""
        self.queries: list[dict[str, str]] = []
        self.gets = 0

    def routes(self) -> list[Route]:
        return [Route("GET", "/v1/jobs", self.listing, auth=True), Route("GET", "/v1/jobs/{id}", self.get, auth=True),
                Route("POST", "/v1/jobs/{id}/cancel", self.cancel, auth=True),
                Route("POST", "/v1/jobs", self.submit, auth=True),
                Route("GET", "/files/{name}", self.file, auth=False)]

    @staticmethod
    def authorizer(event: dict[str, Any], context: Any) -> dict[str, Any]:
        return {"isAuthorized": event["identitySource"][0] == f"Bearer {KEY}", "context": {"tenant": "acme"}}

    def job(self, job_id: str, status: JobStatus, **fields: Any) -> dict[str, Any]:
        return view(status, **fields).model_copy(update={"id": job_id}).model_dump(mode="json")

    def listing(self, event: dict[str, Any], context: Any) -> dict[str, Any]:
        query = event.get("queryStringParameters") or {}
        self.queries.append(query)
        # Two pages: the first answers with a cursor, the second without.
        first = "cursor" not in query
        items = [self.job("job_a" if first else "job_b", JobStatus.SUCCEEDED)]
        return {"statusCode": 200, "body": json.dumps({"items": items, "next_cursor": "c1" if first else None})}

    def get(self, event: dict[str, Any], context: Any) -> dict[str, Any]:
        self.gets += 1
        job_id = event["pathParameters"]["id"]
        if job_id == "job_running":
            return {"statusCode": 200, "body": json.dumps(self.job(job_id, JobStatus.RUNNING))}
        out = JobOutput(s3_uri="s3://out/acme/x.mp4", bytes=5, width=8, height=8, frames=1, fps=1.0, duration_s=1.0,
                        url=f"{self.url}/files/x.mp4?signed={self.gets}")
        return {"statusCode": 200, "body": json.dumps(self.job(job_id, JobStatus.SUCCEEDED, output=out))}

    def cancel(self, event: dict[str, Any], context: Any) -> dict[str, Any]:
        body = {"type": "urn:hvr:problem:conflict", "title": "Conflict", "status": 409,
                "detail": "job job_done is succeeded: it can no longer be cancelled"}
        return {"statusCode": 409, "headers": {"Content-Type": "application/problem+json"}, "body": json.dumps(body)}

    def submit(self, event: dict[str, Any], context: Any) -> dict[str, Any]:
        body = {"type": "urn:hvr:problem:invalid-request", "title": "Invalid request", "status": 400,
                "detail": "the request does not match the API contract",
                "errors": [{"field": "promt", "message": "Extra inputs are not permitted"}]}
        return {"statusCode": 400, "headers": {"Content-Type": "application/problem+json"}, "body": json.dumps(body)}

    @staticmethod
    def file(event: dict[str, Any], context: Any) -> dict[str, Any]:
        return {"statusCode": 200, "headers": {"Content-Type": "video/mp4"}, "body": "video"}


@pytest.fixture
def api(monkeypatch: pytest.MonkeyPatch) -> Iterator[JobsApi]:
    fake = JobsApi()
    with LocalHttpApi(fake.routes(), fake.authorizer) as served:
        fake.url = served.url
        monkeypatch.setenv("HVR_API_URL", served.url)
        monkeypatch.setenv("HVR_API_KEY", KEY)
        yield fake


def test_jobs_list_sends_the_filters_and_pages_up_to_the_limit(api: JobsApi,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["jobs", "list", "--provider", "local", "--offer", "local/wan21-1.3b", "--from", "2026-12-01",
                 "--to", "2026-12-04", "--status", "succeeded", "--campaign", "cmp_1", "--limit", "5"]) == 0
    rows = capsys.readouterr().out.splitlines()
    assert [row.split()[0] for row in rows[1:]] == ["job_a", "job_b"]
    assert api.queries[0] == {"provider": "local", "offer": "local/wan21-1.3b", "from": "2026-12-01",
                              "to": "2026-12-04", "status": "succeeded", "campaign_id": "cmp_1", "limit": "5"}
    assert api.queries[1]["cursor"] == "c1" and api.queries[1]["limit"] == "4"
    assert main(["jobs", "list", "--limit", "1", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [job["id"] for job in listed["items"]] == ["job_a"] and listed["next_cursor"] == "c1"


def test_jobs_list_refuses_a_bad_date_before_asking(api: JobsApi, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as usage:
        main(["jobs", "list", "--from", "yesterday"])
    assert usage.value.code == 2 and "'yesterday' is not a date" in capsys.readouterr().err
    assert api.queries == []


def test_download_asks_for_the_job_each_time_and_saves_on_stdout(api: JobsApi, tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "clip.mp4"
    assert main(["jobs", "download", "job_done", "-o", str(out)]) == 0
    assert capsys.readouterr().out == f"saved {out} (5 bytes)\n"
    assert out.read_bytes() == b"video"
    assert main(["jobs", "download", "job_done", "-o", str(out)]) == 0
    assert api.gets == 2  # a fresh read, so a fresh presigned URL, for each download
    assert main(["jobs", "download", "job_running"]) == 1
    assert "job_running is running: it has no output to download yet (`hvr jobs watch job_running`)" in \
        capsys.readouterr().err


def test_a_place_it_cannot_write_is_one_line_and_submits_nothing(api: JobsApi, tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "no-such-folder" / "clip.mp4"
    assert main(["jobs", "download", "job_done", "-o", str(missing)]) == 1
    # The whole of stderr: the gateway's thread no longer prints a traceback for the stream the CLI dropped, which
    # raced the CLI's line to be first.
    assert capsys.readouterr().err.splitlines() == [f"cannot write {missing}: No such file or directory"]
    request = tmp_path / "r.json"
    request.write_text('{"mode": "t2v", "prompt": "a boat"}')
    assert main(["submit", str(request), "--download", str(missing)]) == 2
    # Refused before asking: the toy API would have answered 400 to any submit.
    assert capsys.readouterr().err == f"cannot save to {missing}: no folder {missing.parent}\n"


def test_cancelling_an_ended_job_says_why_and_exits_2(api: JobsApi, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["jobs", "cancel", "job_done"]) == 2
    assert "error 409: Conflict: job job_done is succeeded: it can no longer be cancelled" in capsys.readouterr().err


def test_ctrl_c_while_watching_detaches_and_says_how_to_reattach(api: JobsApi, monkeypatch: pytest.MonkeyPatch,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    class InterruptedTime:
        """The cli's `time`, whose sleep is cut by Ctrl-C. Patching `hvr.cli.time.sleep` would patch `time.sleep` for
        every thread of the test process."""
        def __getattr__(self, name: str) -> Any:
            return getattr(time, name)

        @staticmethod
        def sleep(seconds: float) -> None:
            raise KeyboardInterrupt

    monkeypatch.setattr("hvr.cli.time", InterruptedTime())
    assert main(["jobs", "watch", "job_running"]) == 130
    err = capsys.readouterr().err
    assert "detached: job_running goes on; re-attach with `hvr jobs watch job_running`" in err
    assert "Traceback" not in err


def test_watching_an_ended_job_prints_its_summary(api: JobsApi, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["jobs", "watch", "job_done"]) == 0
    assert capsys.readouterr().out.startswith("job_done succeeded: -\n")


def test_a_refused_request_names_the_field_it_likely_meant(api: JobsApi, tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    request = tmp_path / "r.json"
    request.write_text('{"mode": "t2v", "promt": "a boat"}')
    assert main(["submit", str(request)]) == 2
    assert capsys.readouterr().err.splitlines()[-2:] == [
        "  promt: Extra inputs are not permitted", "  promt: not a request field; did you mean 'prompt'?"]
    request.write_text('{"mode": "t2v",\n "prompt": "a boat",}')
    assert main(["submit", str(request)]) == 2
    assert capsys.readouterr().err == f"{request}:2:21: not JSON: Expecting property name enclosed in double quotes\n"


def test_completion_scripts_name_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    for shell in ("bash", "zsh"):
        assert main(["completion", shell]) == 0
        script = capsys.readouterr().out
        for command in ("jobs", "providers", "upload", "campaign", "submit"):
            assert command in script


@pytest.mark.skipif(shutil.which("bash") is None, reason="no bash to run the script in")
def test_bash_completes_subcommands_options_and_choices(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["completion", "bash"]) == 0
    script = capsys.readouterr().out

    def complete(*words: str) -> list[str]:
        run = (f"{script}\nCOMP_WORDS=({' '.join(shlex.quote(w) for w in words)}); COMP_CWORD={len(words) - 1}; "
               "_shtab_hvr; printf '%s\\n' \"${COMPREPLY[@]}\"")
        done = subprocess.run(["bash", "-c", run], capture_output=True, text=True, timeout=30, check=True)
        return done.stdout.split()

    assert complete("hvr", "jobs", "") == ["list", "watch", "cancel", "download"]
    assert complete("hvr", "jobs", "list", "--provider", "r") == ["runpod", "replicate"]
    assert complete("hvr", "campaign", "d") == ["download"]
