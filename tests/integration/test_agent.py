"""The agent as a real process (agent.launcher), against a loopback server standing in for S3 and the router.

Jobs are small and time_scale high, so a render takes about a second. Waits are bounded polls; nothing asserts on
elapsed time.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from agent.launcher import AgentProcess
from router.media.probe import check_against_spec, probe
from router.signing import SignatureError, sign, verify

SECRET = "agent-secret-current"
OLD_SECRET = "agent-secret-previous"
TIME_SCALE = 60.0
TERMINAL = {"succeeded", "failed", "cancelled"}
WAIT_S = 30.0


class Sink:
    """Loopback HTTP server: records PUT uploads (stand-in for presigned S3) and callback POSTs (the router).

    A PUT whose path contains "flaky" is answered 503 the first time, to exercise the upload retry.
    """

    def __init__(self) -> None:
        self.uploads: dict[str, list[tuple[dict[str, str], bytes]]] = {}
        self.callbacks: list[tuple[str, dict[str, str], bytes]] = []
        self._cond = threading.Condition()
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def _body(self) -> bytes:
                return self.rfile.read(int(self.headers.get("Content-Length", "0")))

            def do_PUT(self) -> None:
                body = self._body()
                with sink._cond:
                    first = self.path not in sink.uploads
                    sink.uploads.setdefault(self.path, []).append((dict(self.headers), body))
                    sink._cond.notify_all()
                self.send_response(503 if "flaky" in self.path and first else 200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def do_POST(self) -> None:
                body = self._body()
                with sink._cond:
                    sink.callbacks.append((self.path, dict(self.headers), body))
                    sink._cond.notify_all()
                self.send_response(204)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                return None

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def upload(self, attempt_id: str) -> bytes:
        return self.uploads[f"/upload/{attempt_id}.mp4"][-1][1]

    def callback_for(self, attempt_id: str) -> tuple[str, dict[str, str], bytes]:
        with self._cond:
            found = self._cond.wait_for(
                lambda: any(json.loads(c[2])["id"] == attempt_id for c in self.callbacks), timeout=WAIT_S
            )
            assert found, f"no callback for {attempt_id}"
            return next(c for c in self.callbacks if json.loads(c[2])["id"] == attempt_id)


class Client:
    """Signs every request the way the router does."""

    def __init__(self, agent: AgentProcess) -> None:
        self._agent = agent

    def call(self, method: str, path: str, payload: Any = None, *, secret: str = SECRET) -> httpx.Response:
        body = b"" if payload is None else json.dumps(payload).encode()
        headers = sign(secret, method, path, body)
        if payload is not None:
            headers["Content-Type"] = "application/json"
        return httpx.request(method, self._agent.url + path, content=body, headers=headers, timeout=15)

    def create(self, body: dict[str, Any]) -> httpx.Response:
        return self.call("POST", "/v1/jobs", body)

    def get(self, attempt_id: str) -> dict[str, Any]:
        response = self.call("GET", f"/v1/jobs/{attempt_id}")
        assert response.status_code == 200, response.text
        return dict(response.json())

    def wait(self, attempt_id: str, until: set[str] = TERMINAL, min_progress: float = 0.0) -> dict[str, Any]:
        deadline = time.monotonic() + WAIT_S
        while True:
            job = self.get(attempt_id)
            if job["status"] in until and job["progress"] >= min_progress:
                return job
            assert time.monotonic() < deadline, f"{attempt_id} still {job['status']}: {job}"
            time.sleep(0.05)


def job_body(sink: Sink, attempt_id: str, *, model: str = "animatediff-sd15", prompt: str = "a red kite",
             width: int = 96, height: int = 64, frames: int = 8, fps: float = 8) -> dict[str, Any]:
    return {
        "attempt_id": attempt_id,
        "job_id": f"job_{attempt_id}",
        "model": model,
        "prompt": prompt,
        "negative_prompt": None,
        "spec": {"width": width, "height": height, "frames": frames, "fps": fps},
        "seed": 7,
        "workflow": None,
        "inputs": {},
        "output": {"put_url": f"{sink.url}/upload/{attempt_id}.mp4", "content_type": "video/mp4"},
        "callback_url": f"{sink.url}/callback/agent?attempt={attempt_id}",
    }


# Slow enough (about 100 modelled seconds, under 2 s of wall time) to be caught while running.
LONG_MODEL = "wan22-14b"


@pytest.fixture(scope="module")
def sink() -> Iterator[Sink]:
    server = Sink()
    yield server
    server.close()


@pytest.fixture(scope="module")
def agent(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AgentProcess]:
    db = tmp_path_factory.mktemp("agent") / "agent.db"
    with AgentProcess(db, secrets=[SECRET, OLD_SECRET], slots=2, time_scale=TIME_SCALE) as process:
        yield process


@pytest.fixture(scope="module")
def client(agent: AgentProcess) -> Client:
    return Client(agent)


def test_job_runs_to_success_and_the_upload_matches_the_spec(client: Client, sink: Sink) -> None:
    created = client.create(job_body(sink, "att_ok"))
    assert created.status_code == 201, created.text
    assert created.json()["status"] in {"queued", "running"}

    job = client.wait("att_ok")

    assert job["status"] == "succeeded", job
    assert job["progress"] == 1.0
    assert job["gpu_seconds"] > 0
    assert job["started_at"] and job["ended_at"]
    uploaded = sink.upload("att_ok")
    headers = sink.uploads["/upload/att_ok.mp4"][-1][0]
    assert headers["Content-Type"] == "video/mp4"
    assert job["output"] == {"bytes": len(uploaded), "sha256": hashlib.sha256(uploaded).hexdigest(),
                             "content_type": "video/mp4"}
    result = probe(uploaded)
    assert (result.container, result.codec) == ("mp4", "h264")
    assert check_against_spec(result, 96, 64, 8, 8) == []


def test_create_is_idempotent_on_attempt_id(client: Client, sink: Sink) -> None:
    body = job_body(sink, "att_twice")
    first = client.create(body)
    second = client.create(body)

    assert (first.status_code, second.status_code) == (201, 200)
    assert second.json()["id"] == first.json()["id"] == "att_twice"
    assert second.json()["created_at"] == first.json()["created_at"]
    assert client.wait("att_twice")["status"] == "succeeded"
    assert len(sink.uploads["/upload/att_twice.mp4"]) == 1


def test_callback_arrives_signed_with_the_first_secret(client: Client, sink: Sink) -> None:
    assert client.create(job_body(sink, "att_cb")).status_code == 201
    job = client.wait("att_cb")

    path, headers, body = sink.callback_for("att_cb")

    assert path == "/callback/agent?attempt=att_cb"
    assert json.loads(body) == job
    seen: set[str] = set()

    def fresh(nonce: str, _ts: int) -> bool:
        new = nonce not in seen
        seen.add(nonce)
        return new

    verify([SECRET], "POST", path, body, headers, now=time.time(), nonce_is_fresh=fresh)
    with pytest.raises(SignatureError):
        verify([OLD_SECRET], "POST", path, body, headers, now=time.time(), nonce_is_fresh=fresh)


def test_a_box_with_a_key_of_its_own_needs_no_shared_secret_and_signs_its_callbacks_with_its_key(
        sink: Sink, tmp_path: Path) -> None:
    own = {"HVR_AGENT_NAME": "box-7", "HVR_AGENT_KEY_ID": "ak_box7", "HVR_AGENT_KEY_SECRET": "box-7-own-secret"}
    with AgentProcess(tmp_path / "own.db", secrets=[], time_scale=TIME_SCALE, env=own) as process:
        keyed = Client(process)
        assert keyed.call("GET", "/v1/jobs/att_none", secret=SECRET).status_code == 401  # no fleet secret here
        assert keyed.call("POST", "/v1/jobs", job_body(sink, "att_own"), secret=own["HVR_AGENT_KEY_SECRET"]) \
            .status_code == 201
        path, headers, body = sink.callback_for("att_own")
    lowered = {key.lower(): value for key, value in headers.items()}
    assert lowered["x-hvr-agent"] == "box-7" and lowered["x-hvr-key-id"] == "ak_box7"
    verify([own["HVR_AGENT_KEY_SECRET"]], "POST", path, body, headers, now=time.time(), nonce_is_fresh=lambda *_: True)
    with pytest.raises(SignatureError):
        verify([SECRET], "POST", path, body, headers, now=time.time(), nonce_is_fresh=lambda *_: True)


def test_transient_upload_failure_is_retried(client: Client, sink: Sink) -> None:
    assert client.create(job_body(sink, "att_flaky")).status_code == 201

    job = client.wait("att_flaky")

    assert job["status"] == "succeeded", job
    attempts = sink.uploads["/upload/att_flaky.mp4"]
    assert len(attempts) == 2
    assert job["output"]["sha256"] == hashlib.sha256(attempts[-1][1]).hexdigest()


def test_sim_fail_hook_fails_the_job_with_its_reason(client: Client, sink: Sink) -> None:
    assert client.create(job_body(sink, "att_fail", prompt="[sim:fail] a red kite")).status_code == 201

    job = client.wait("att_fail")

    assert job["status"] == "failed"
    assert "[sim:fail]" in job["error"]
    assert job["output"] is None
    assert "/upload/att_fail.mp4" not in sink.uploads
    assert json.loads(sink.callback_for("att_fail")[2])["status"] == "failed"


def test_unknown_model_fails_naming_it(client: Client, sink: Sink) -> None:
    assert client.create(job_body(sink, "att_nomodel", model="sora-9000")).status_code == 201

    job = client.wait("att_nomodel")

    assert job["status"] == "failed"
    assert "sora-9000" in job["error"]


def test_cancel_interrupts_a_running_job(client: Client, sink: Sink) -> None:
    assert client.create(job_body(sink, "att_cancel", model=LONG_MODEL)).status_code == 201
    client.wait("att_cancel", until={"running"}, min_progress=0.01)

    response = client.call("POST", "/v1/jobs/att_cancel/cancel")

    assert response.status_code == 200
    job = client.wait("att_cancel")
    assert job["status"] == "cancelled"
    assert job["gpu_seconds"] > 0
    assert "/upload/att_cancel.mp4" not in sink.uploads
    assert json.loads(sink.callback_for("att_cancel")[2])["status"] == "cancelled"
    # Cancelling a finished job changes nothing.
    again = client.call("POST", "/v1/jobs/att_cancel/cancel")
    assert again.status_code == 200 and again.json() == job


def test_health_is_open_and_shows_the_queue(client: Client, agent: AgentProcess, sink: Sink) -> None:
    ids = [f"att_busy_{i}" for i in range(3)]  # one more than the agent's two slots
    for n, attempt_id in enumerate(ids):
        body = job_body(sink, attempt_id, model=LONG_MODEL, frames=64)  # minutes modelled, seconds of wall time
        if n == 0:  # an exploring try: the router stops it then if unfinished
            body["stop_at"] = "2030-01-01T00:10:00Z"
        assert client.create(body).status_code == 201

    health = httpx.get(f"{agent.url}/v1/health", timeout=5).json()

    assert health["status"] == "ok"
    assert health["engine"] == "sim" and health["slots"] == 2
    assert health["running"] + health["queue_depth"] >= 3
    assert health["queue_depth"] >= 1
    assert health["eta_s"] > 0
    assert 0 <= health["vram"]["free_mb"] <= health["vram"]["total_mb"]
    # The jobs themselves, running ones first, for the router to price in its learned figures (no ids or prompts).
    listed = health["queue"]
    assert len(listed) == health["running"] + health["queue_depth"]
    assert [job["status"] for job in listed] == ["running"] * health["running"] + ["queued"] * health["queue_depth"]
    assert {job["model"] for job in listed} == {LONG_MODEL} and all(job["left_s"] >= 0 for job in listed)
    assert set(listed[0]) == {"model", "spec", "status", "progress", "deadline", "left_s", "stop_at"}
    assert sorted(str(job["stop_at"]) for job in listed) == ["2030-01-01T00:10:00Z", "None", "None"]
    queued = client.get(ids[-1])
    assert queued["status"] == "queued" and queued["queue_position"] >= 0
    # It starts when the first of the two running jobs ends, as the agent's own figures have it (the router paces
    # its polls by that); a job that has left the queue says nothing.
    running_left = sorted(job["left_s"] for job in listed if job["status"] == "running")
    assert 0 < queued["starts_in_s"] <= running_left[0] + 1
    assert client.get(ids[0])["starts_in_s"] is None
    # Dequeuing a queued job is immediate; the rest are interrupted.
    assert client.call("POST", f"/v1/jobs/{ids[-1]}/cancel").json()["status"] == "cancelled"
    for attempt_id in ids[:-1]:
        assert client.call("POST", f"/v1/jobs/{attempt_id}/cancel").status_code == 200
    assert {client.wait(attempt_id)["status"] for attempt_id in ids} == {"cancelled"}


def test_unknown_job_is_404_and_bad_body_is_422(client: Client) -> None:
    assert client.call("GET", "/v1/jobs/att_nobody").status_code == 404
    assert client.call("POST", "/v1/jobs/att_nobody/cancel").status_code == 404
    assert client.create({"attempt_id": "att_bad"}).status_code == 422


def test_unsigned_request_is_401(agent: AgentProcess) -> None:
    response = httpx.get(f"{agent.url}/v1/jobs/att_ok", timeout=5)
    assert response.status_code == 401
    assert response.json() == {"detail": "missing signature headers"}
    # Refused before routing or validation: an unsigned caller learns nothing about the API.
    assert httpx.post(f"{agent.url}/v1/jobs", content=b"{", timeout=5).status_code == 401
    assert httpx.get(f"{agent.url}/v1/nothing-here", timeout=5).status_code == 401


def test_forged_signature_is_401(client: Client) -> None:
    response = client.call("GET", "/v1/jobs/att_ok", secret="not-the-agent-secret")
    assert response.status_code == 401
    assert response.json() == {"detail": "signature mismatch"}


def test_tampered_body_is_401(agent: AgentProcess, sink: Sink) -> None:
    signed = json.dumps(job_body(sink, "att_tamper")).encode()
    sent = json.dumps(job_body(sink, "att_tamper", frames=9)).encode()
    headers = {**sign(SECRET, "POST", "/v1/jobs", signed), "Content-Type": "application/json"}
    assert httpx.post(f"{agent.url}/v1/jobs", content=sent, headers=headers, timeout=5).status_code == 401


def test_replayed_request_is_401(agent: AgentProcess) -> None:
    path = "/v1/jobs/att_ok?view=full"  # the query string is part of what is signed
    headers = sign(SECRET, "GET", path)

    first = httpx.get(agent.url + path, headers=headers, timeout=5)
    replay = httpx.get(agent.url + path, headers=headers, timeout=5)

    assert first.status_code == 200
    assert replay.status_code == 401
    assert replay.json() == {"detail": "replayed nonce"}


def test_rotated_out_secret_still_verifies_during_overlap(client: Client) -> None:
    assert client.call("GET", "/v1/jobs/att_ok", secret=OLD_SECRET).status_code == 200


def test_stale_timestamp_is_401(agent: AgentProcess) -> None:
    headers = sign(SECRET, "GET", "/v1/jobs/att_ok", now=time.time() - 3600)
    response = httpx.get(f"{agent.url}/v1/jobs/att_ok", headers=headers, timeout=5)
    assert response.status_code == 401


def test_killed_agent_finishes_its_jobs_after_restart(tmp_path: Path, sink: Sink) -> None:
    with AgentProcess(tmp_path / "crash.db", secrets=[SECRET], slots=1, time_scale=TIME_SCALE) as agent:
        client = Client(agent)
        assert client.create(job_body(sink, "att_crash_a", model=LONG_MODEL)).status_code == 201
        assert client.create(job_body(sink, "att_crash_b")).status_code == 201
        client.wait("att_crash_a", until={"running"}, min_progress=0.01)
        url = agent.url

        agent.kill()
        agent.start()

        assert agent.url == url
        first = client.wait("att_crash_a")
        second = client.wait("att_crash_b")
        assert (first["status"], second["status"]) == ("succeeded", "succeeded")
        # One slot, creation order kept across the restart.
        assert first["ended_at"] <= second["started_at"]
        for attempt_id in ("att_crash_a", "att_crash_b"):
            assert check_against_spec(probe(sink.upload(attempt_id)), 96, 64, 8, 8) == []
            assert json.loads(sink.callback_for(attempt_id)[2])["status"] == "succeeded"
        # Nonces live in the db too: a request seen before the crash stays refused after it.
        headers = sign(SECRET, "GET", "/v1/jobs/att_crash_a")
        assert httpx.get(f"{url}/v1/jobs/att_crash_a", headers=headers, timeout=5).status_code == 200
        agent.kill()
        agent.start()
        assert httpx.get(f"{url}/v1/jobs/att_crash_a", headers=headers, timeout=5).status_code == 401


def test_graceful_stop_requeues_the_running_job(tmp_path: Path, sink: Sink) -> None:
    with AgentProcess(tmp_path / "stop.db", secrets=[SECRET], time_scale=TIME_SCALE) as agent:
        client = Client(agent)
        assert client.create(job_body(sink, "att_stop", model=LONG_MODEL)).status_code == 201
        client.wait("att_stop", until={"running"}, min_progress=0.01)

        agent.stop()

        with sqlite3.connect(agent.db_path) as db:
            row = db.execute("SELECT status, progress FROM jobs WHERE attempt_id = 'att_stop'").fetchone()
        assert row == ("queued", 0.0)
        agent.start()
        assert client.wait("att_stop")["status"] == "succeeded"
        assert check_against_spec(probe(sink.upload("att_stop")), 96, 64, 8, 8) == []
