"""The agent's heartbeat (agent/registration.py): its body is its health check, its queue gets ETAs slot by slot,
it is signed with the agent's own key, a refusal is logged and tried again; off unless configured."""

from __future__ import annotations

import json

import httpx
import pytest

from agent.config import ConfigError, load_settings
from agent.registration import Registration, queue_etas, start_registration
from agent.schemas import Health
from router.models.agent import AgentRegistration
from router.signing import KEY_ID_HEADER, verify

NOW = 1_800_000_000.0
ENV = {"HVR_AGENT_SECRETS": "router-secret", "HVR_AGENT_KEY_SECRET": "agent-key-secret"}
FLAGS = ["--router-url", "https://hvr.example.com/prod", "--agent-name", "gpu-1", "--tunnel-url",
         "https://gpu-1.studio.example.com", "--key-id", "ak_1", "--gpu", "NVIDIA GeForce RTX 5090", "--power-w", "575"]


def health(queue: list[tuple[str, float]], slots: int = 2, models: dict[str, list[str]] | None = None) -> Health:
    spec = {"width": 832, "height": 480, "frames": 81, "fps": 16}
    return Health.model_validate({
        "agent_id": "gpu-1", "engine": "sim", "slots": slots, "queue_depth": 0, "running": 0, "eta_s": 0,
        "vram": {"total_mb": 32607, "free_mb": 30000}, "ram_mb": 131072, "models": models,
        "queue": [{"model": "wan21-1.3b", "spec": spec, "status": status, "progress": 0.0, "deadline": None,
                   "left_s": left} for status, left in queue],
        "utilization": {"window_s": 3600.0, "busy_s": 2700.0}})


def test_queue_etas_take_the_slot_that_frees_first() -> None:
    etas = queue_etas(health([("running", 100), ("running", 30), ("queued", 50), ("queued", 10)], slots=2))
    assert [work["eta_s"] for work in etas] == [100, 30, 80, 90]
    assert [work["eta_s"] for work in queue_etas(health([("queued", 5), ("queued", 5)], slots=1))] == [5, 10]


def test_registration_is_off_unless_configured_and_complete_when_on() -> None:
    assert load_settings([], ENV).router_url is None
    assert start_registration(load_settings([], ENV), lambda: health([]))() is None  # nothing started, nothing to stop
    with pytest.raises(ConfigError, match="--key-id, HVR_AGENT_KEY_SECRET"):
        load_settings(FLAGS[:6], {"HVR_AGENT_SECRETS": "router-secret"})
    with pytest.raises(ConfigError, match="agent_name"):
        load_settings([*FLAGS, "--agent-name", "GPU 1"], ENV)
    settings = load_settings(FLAGS, ENV)
    assert settings.key_secret == "agent-key-secret" and "agent-key-secret" not in repr(settings)
    # A box with its own key needs no shared secret; one with neither can't sign anything and won't start.
    own = load_settings(FLAGS, {"HVR_AGENT_KEY_SECRET": "agent-key-secret"})
    assert own.secrets == () and own.own_key
    with pytest.raises(ConfigError, match="without a signing secret"):
        load_settings([], {})


def beats(answer: httpx.Response, seen: list[httpx.Request],
          models: dict[str, list[str]] | None = None) -> Registration:
    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return answer

    settings = load_settings(FLAGS, ENV)
    current = health([("running", 60)], models=models)
    return Registration(settings, lambda: current, client=httpx.Client(transport=httpx.MockTransport(handler)),
                        clock=lambda: NOW)


def test_a_heartbeat_is_the_health_check_signed_with_the_agents_key() -> None:
    seen: list[httpx.Request] = []
    registration = beats(httpx.Response(200, json={"state": "up"}), seen,
                         models={"wan21-1.3b": ["t2v"], "animatediff-sd15": ["t2v"]})
    assert registration.beat() and registration.last_state == "up"
    [request] = seen
    assert request.method == "PUT" and str(request.url) == "https://hvr.example.com/prod/v1/agents/gpu-1"
    assert request.headers[KEY_ID_HEADER] == "ak_1"
    verify(["agent-key-secret"], "PUT", "/prod/v1/agents/gpu-1", request.content, request.headers, now=NOW,
           nonce_is_fresh=lambda *_: True)
    sent = AgentRegistration.model_validate(json.loads(request.content))  # what the router will validate
    assert (sent.vram_mb, sent.ram_mb, sent.slots, sent.power_w) == (32607, 131072, 2, 575)
    assert sent.models == ["animatediff-sd15", "wan21-1.3b"] and sent.gpu == "NVIDIA GeForce RTX 5090"
    assert sent.queue[0].eta_s == 60 and sent.tunnel_url == "https://gpu-1.studio.example.com"
    assert sent.utilization is not None and (sent.utilization.window_s, sent.utilization.busy_s) == (3600, 2700)


def test_an_engine_that_cant_tell_its_models_announces_the_models_file() -> None:
    seen: list[httpx.Request] = []
    assert beats(httpx.Response(200, json={"state": "up"}), seen).beat()
    assert "wan21-14b" in json.loads(seen[0].content)["models"]


def test_a_refused_heartbeat_is_logged_once_and_tried_again(caplog: pytest.LogCaptureFixture) -> None:
    seen: list[httpx.Request] = []
    refusal = httpx.Response(401, json={"type": "urn:hvr:problem:unauthorized", "title": "Unauthorized",
                                        "status": 401, "detail": "agent gpu-1's keys were revoked", "errors": []})
    registration = beats(refusal, seen)
    assert not registration.beat() and not registration.beat()
    assert len(seen) == 2 and registration.last_error and "revoked" in registration.last_error
    assert [r.message for r in caplog.records].count(caplog.records[0].message) == 1
