"""The fleet registry over HTTP against the embedded stack (docs/architecture.md, "Fleet registry"): an admin issues
an agent's key, the agent registers and heartbeats with it (signed, no API key), is listed, drained and undrained;
every refusal is a problem and changes nothing; a revoked agent is refused at once. Then a real agent process
registering itself from its own health check, and the `hvr agents` commands."""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from agent.launcher import AgentProcess
from hvr.cli import main
from hvr.local.embedded import EmbeddedStack
from router.providers.fleet import FleetProvider
from router.services.fleet_registry import RegistryBoxes
from router.signing import AGENT_NAME_HEADER, KEY_ID_HEADER, sign

PROBLEM = "application/problem+json"


def registration(stack: EmbeddedStack, **changes: Any) -> dict[str, Any]:
    return {"tunnel_url": "https://gpu-e2e.studio.example.com", "gpu": "NVIDIA GeForce RTX 3090", "vram_mb": 24576,
            "ram_mb": 65536, "slots": 1, "models": ["animatediff-sd15", "wan21-1.3b"],
            "queue": [{"model": "wan21-1.3b", "status": "running", "eta_s": 42.0}], "power_w": 350, **changes}


def put(stack: EmbeddedStack, key: dict[str, Any], body: dict[str, Any], *, name: str = "gpu-e2e",
        secret: str | None = None, headers: dict[str, str] | None = None) -> httpx.Response:
    """A heartbeat as the agent sends it (agent.registration), or with the headers given (a replay)."""
    sent = json.dumps(body).encode()
    path = f"/v1/agents/{name}"
    signed = headers or {**sign(secret or key["secret"], "PUT", path, sent), KEY_ID_HEADER: key["key_id"]}
    return httpx.put(f"{stack.url}{path}", content=sent, headers={**signed, "Content-Type": "application/json"})


def callback(stack: EmbeddedStack, key: dict[str, Any], *, name: str = "gpu-e2e",
             secret: str | None = None) -> httpx.Response:
    """A finished job's callback as a box with a key of its own sends it (agent.delivery)."""
    path = "/v1/webhooks/local?tenant=acme&job=job_e2e"
    body = b'{"id": "att_e2e_1", "status": "succeeded"}'
    headers = {**sign(secret or key["secret"], "POST", path, body), KEY_ID_HEADER: key["key_id"],
               **({AGENT_NAME_HEADER: name} if name else {})}
    return httpx.post(f"{stack.url}{path}", content=body, headers=headers)


def problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    found: dict[str, Any] = response.json()
    return found


def test_register_heartbeat_list_drain_and_revoke(stack: EmbeddedStack, acme: httpx.Client,
                                                  member: httpx.Client) -> None:
    assert member.post("/v1/agents/gpu-e2e/keys").status_code == 403  # admin keys only
    assert httpx.get(f"{stack.url}/v1/agents").status_code == 401  # no API key: the gateway's own answer
    issued = acme.post("/v1/agents/gpu-e2e/keys")
    assert issued.status_code == 201, issued.text
    key = issued.json()
    assert key["key_id"].startswith("ak_") and key["secret"] and key["previous_key_id"] is None

    body = registration(stack)
    assert "signature mismatch" in problem(put(stack, key, body, secret="forged"), 401)["detail"]
    assert "unknown key id" in problem(put(stack, {**key, "key_id": "ak_0000"}, body), 401)["detail"]
    assert acme.get("/v1/agents/gpu-e2e").status_code == 404  # nothing refused was kept

    first = put(stack, key, body)
    assert first.status_code == 200, first.text
    assert first.json()["state"] == "up" and first.json()["registration"]["vram_mb"] == 24576
    assert "replayed nonce" in problem(put(stack, key, body, headers=dict(first.request.headers)), 401)["detail"]

    before = acme.get("/v1/agents/gpu-e2e").json()
    absurd = problem(put(stack, key, registration(stack, vram_mb=10**9)), 400)
    assert [e["field"] for e in absurd["errors"]] == ["vram_mb"]
    outside = problem(put(stack, key, registration(stack, models=["../../../etc/passwd"])), 400)
    assert outside["errors"][0]["field"] == "models" and "'..'" in outside["errors"][0]["message"]
    unknown = problem(put(stack, key, registration(stack, models=["sora-2"])), 400)
    assert unknown["errors"] == [{"field": "models.0", "message": "'sora-2' is not a model of the models file"}]
    assert acme.get("/v1/agents/gpu-e2e").json() == before  # the refused heartbeats changed nothing

    listed = acme.get("/v1/agents").json()
    [box] = [a for a in listed["agents"] if a["name"] == "gpu-e2e"]
    assert box["registration"]["gpu"] == "NVIDIA GeForce RTX 3090" and box["state"] == "up"
    assert box["registration"]["queue"][0]["eta_s"] == 42.0 and listed["heartbeat_s"] == 30

    drained = acme.post("/v1/agents/gpu-e2e/drain")
    assert drained.status_code == 200 and drained.json()["state"] == "draining"
    assert put(stack, key, body).json()["state"] == "draining"  # heartbeats don't undo a drain
    assert acme.delete("/v1/agents/gpu-e2e/drain").json()["state"] == "up"
    assert acme.post("/v1/agents/no-such-box/drain").status_code == 404

    # Its callbacks are signed with its own key and say whose it is: no secret shared by the fleet.
    assert callback(stack, key).status_code == 200
    assert "signature mismatch" in problem(callback(stack, key, secret="forged"), 401)["detail"]
    assert "has no keys" in problem(callback(stack, key, name="another-box"), 401)["detail"]
    assert "X-HVR-Agent" in problem(callback(stack, key, name=""), 401)["detail"]

    revoked = acme.delete("/v1/agents/gpu-e2e/keys")
    assert revoked.status_code == 200 and revoked.json()["revoked_key_ids"] == [key["key_id"]]
    last_seen = acme.get("/v1/agents/gpu-e2e").json()["last_seen"]
    assert "revoked" in problem(put(stack, key, body), 401)["detail"]
    assert acme.get("/v1/agents/gpu-e2e").json()["last_seen"] == last_seen
    assert "revoked" in problem(callback(stack, key), 401)["detail"]  # refused at once, callbacks too


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def test_an_agent_process_registers_itself_and_the_cli_manages_it(stack: EmbeddedStack, acme: httpx.Client,
                                                                  tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    api = ["--api-url", stack.url, "--api-key", "acme-key"]
    assert main(["agents", "create", "gpu-proc", *api]) == 0
    env = dict(line.split("=", 1) for line in capsys.readouterr().out.splitlines())
    assert set(env) == {"HVR_AGENT_KEY_ID", "HVR_AGENT_KEY_SECRET"}
    port = free_port()
    agent = AgentProcess(tmp_path / "agent.sqlite", secrets=["router-secret"], port=port, time_scale=1000, env={
        **env, "HVR_AGENT_ROUTER_URL": stack.url, "HVR_AGENT_NAME": "gpu-proc", "HVR_AGENT_GPU": "sim RTX 5090",
        "HVR_AGENT_TUNNEL_URL": f"http://127.0.0.1:{port}", "HVR_AGENT_HEARTBEAT_S": "0.2",
        "HVR_AGENT_POWER_W": "575"}).start()
    try:
        box = wait_for_agent(acme, "gpu-proc", lambda found: found is not None)
        health = httpx.get(f"{agent.url}/v1/health").json()
        assert box["registration"]["vram_mb"] == health["vram"]["total_mb"]  # from its health check, not guessed
        assert box["registration"]["models"] == sorted(health["models"] or box["registration"]["models"])
        assert box["registration"]["tunnel_url"] == f"http://127.0.0.1:{port}"
        assert box["registration"]["power_w"] == 575 and box["state"] == "up"
        wait_for_agent(acme, "gpu-proc", lambda found: found["last_seen"] != box["last_seen"])  # it keeps beating
        # HVR_AGENTS=registry: the router reaches it where it announced itself, every call signed with its own key.
        fleet = FleetProvider(RegistryBoxes(stack.deps.agents, stack.deps.agent_keys, stack.deps.clock))
        [seen] = fleet.health().boxes
        assert seen.name == "gpu-proc" and seen.up and seen.vram_mb == health["vram"]["total_mb"]
        assert fleet.lookup("att_never_sent") is None  # the agent's 404: the signature passed (else 401)

        assert main(["agents", *api]) == 0
        assert "gpu-proc  up" in capsys.readouterr().out
        assert main(["agents", "drain", "gpu-proc", *api]) == 0
        assert "draining" in capsys.readouterr().out
        assert main(["agents", "undrain", "gpu-proc", *api]) == 0
        assert "gpu-proc  up" in capsys.readouterr().out
        assert main(["agents", "revoke", "gpu-proc", *api]) == 0
        assert env["HVR_AGENT_KEY_ID"] in capsys.readouterr().out
        time.sleep(0.3)  # a heartbeat already past its key check when the revoke landed may still be written
        stopped = acme.get("/v1/agents/gpu-proc").json()["last_seen"]
        time.sleep(1.0)  # five heartbeats' time: every one refused
        assert acme.get("/v1/agents/gpu-proc").json()["last_seen"] == stopped
        assert RegistryBoxes(stack.deps.agents, stack.deps.agent_keys, stack.deps.clock)() == {}  # can't sign now
        assert main(["agents", "rotate", "gpu-proc", *api]) == 0
        assert capsys.readouterr().out.startswith("HVR_AGENT_KEY_ID=ak_")
        assert main(["agents", "drain", "never-registered", *api]) == 2
    finally:
        agent.stop()


def wait_for_agent(api: httpx.Client, name: str, done: Any, timeout_s: float = 20) -> Any:
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        answer = api.get(f"/v1/agents/{name}")
        found = answer.json() if answer.status_code == 200 else None
        if done(found):
            return found
        time.sleep(0.1)
    raise AssertionError(f"agent {name} did not register in {timeout_s} s")
