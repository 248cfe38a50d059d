"""The fleet registry's use cases on the stores' twins (tests/twins.py): an agent registers and heartbeats with its
own key and is listed with how busy it is; every refusal (bad signature, unknown, rotated-out or revoked key, replayed
nonce, absurd VRAM or busy time, a model name that is a path or not in the models file, a tunnel that isn't https) is
a clear error that changes nothing; a box that misses its heartbeats reads as down; a drained box is not routable."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from router.errors import HvrError, InvalidRequest, NotFound, Unauthorized
from router.models.agent import AgentState
from router.services import agents
from router.signing import KEY_ID_HEADER, sign
from router.store.agents import routable
from tests.twins import Twins, twins

START = datetime(2027, 1, 8, 12, 0, tzinfo=UTC)
PATH = "/v1/agents/gpu-1"


class Clock:
    def __init__(self) -> None:
        self.at = START

    def __call__(self) -> datetime:
        return self.at


def registration(**changes: Any) -> dict[str, Any]:
    return {"tunnel_url": "https://gpu-1.studio.example.com", "gpu": "NVIDIA GeForce RTX 4090", "vram_mb": 24564,
            "ram_mb": 65536, "slots": 2, "models": ["animatediff-sd15", "wan21-14b"],
            "queue": [{"model": "wan21-14b", "status": "running", "eta_s": 300.0}], **changes}


def heartbeat(world: Twins, key_id: str, secret: str, body: dict[str, Any] | None = None, *, path: str = PATH,
              name: str = "gpu-1", nonce: str | None = None, tamper: bytes | None = None) -> Any:
    """What PUT /v1/agents/{name} does with a request the agent signed (routes_agents.heartbeat)."""
    sent = json.dumps(body if body is not None else registration()).encode()
    headers = {**sign(secret, "PUT", path, sent, now=world.deps.clock().timestamp(), nonce=nonce),
               KEY_ID_HEADER: key_id}
    received = tamper if tamper is not None else sent
    key = agents.authenticate(name, path, headers, received, world.deps)
    return agents.register(name, key, json.loads(received), world.deps)


@pytest.fixture
def world() -> Twins:
    return twins({}, clock=Clock())


def refused_and_unchanged(world: Twins, error: type[HvrError], says: str, *args: Any, **kwargs: Any) -> HvrError:
    before = world.deps.agents.all()
    with pytest.raises(error, match=says) as caught:
        heartbeat(world, *args, **kwargs)
    assert world.deps.agents.all() == before
    return caught.value


def test_an_agent_registers_with_its_own_key_and_heartbeats(world: Twins) -> None:
    key = agents.issue_key("gpu-1", world.deps)
    first = heartbeat(world, key.key_id, key.secret)
    assert first.state is AgentState.UP and first.registration.vram_mb == 24564 and first.last_seen == START
    world.deps.clock.at = START + timedelta(seconds=30)  # type: ignore[attr-defined]
    again = heartbeat(world, key.key_id, key.secret, registration(queue=[]))
    assert again.registered_at == START and again.last_seen == START + timedelta(seconds=30)
    assert again.registration.queue == []
    listed = agents.listing(world.deps)
    assert [a.name for a in listed.agents] == ["gpu-1"] and listed.heartbeat_s == 30
    assert (listed.agents[0].utilization, listed.agents[0].busy_now) == (None, 0.0)  # an agent older than the field
    # Its two slots rendered 45 of the last 60 minutes between them; one is rendering now.
    heartbeat(world, key.key_id, key.secret, registration(utilization={"window_s": 3600, "busy_s": 2700}))
    [box] = agents.listing(world.deps).agents
    assert (box.utilization, box.busy_now) == (0.375, 0.5)


def test_refusals_are_clear_and_change_nothing(world: Twins) -> None:
    key = agents.issue_key("gpu-1", world.deps)
    heartbeat(world, key.key_id, key.secret)
    other = agents.issue_key("gpu-2", world.deps)
    refused_and_unchanged(world, Unauthorized, "signature mismatch", key.key_id, "not-the-secret")
    refused_and_unchanged(world, Unauthorized, "unknown key id", "ak_0000", key.secret)
    # Another agent's key signs only for that agent.
    refused_and_unchanged(world, Unauthorized, "unknown key id", other.key_id, other.secret)
    refused_and_unchanged(world, Unauthorized, "missing X-HVR-Key-Id", "", key.secret)
    refused_and_unchanged(world, Unauthorized, "signature mismatch", key.key_id, key.secret,
                          tamper=json.dumps(registration(slots=16)).encode())
    heartbeat(world, key.key_id, key.secret, nonce="once")
    refused_and_unchanged(world, Unauthorized, "replayed nonce", key.key_id, key.secret, nonce="once")
    bad = refused_and_unchanged(world, InvalidRequest, "registration refused", key.key_id, key.secret,
                                registration(vram_mb=10**9))
    assert [e["field"] for e in bad.errors] == ["vram_mb"]
    bad = refused_and_unchanged(world, InvalidRequest, "registration refused", key.key_id, key.secret,
                                registration(utilization={"window_s": 3600, "busy_s": 86400}))
    assert bad.errors == [{"field": "utilization.busy_s",
                           "message": "86400 s busy in a 3600 s window is more than 2 slot(s) can render"}]
    bad = refused_and_unchanged(world, InvalidRequest, "registration refused", key.key_id, key.secret,
                                registration(models=["../../comfyui/models/evil"]))
    assert bad.errors == [{"field": "models", "message": (
        "'../../comfyui/models/evil' has '..': a model name never leaves the models folder")}]
    bad = refused_and_unchanged(world, InvalidRequest, "registration refused", key.key_id, key.secret,
                                registration(models=["wan21-14b", "sora-2"]))
    assert bad.errors == [{"field": "models.1", "message": "'sora-2' is not a model of the models file"}]
    bad = refused_and_unchanged(world, InvalidRequest, "registration refused", key.key_id, key.secret,
                                registration(tunnel_url="http://gpu-1.studio.example.com"))
    assert bad.errors[0]["field"] == "tunnel_url" and "https" in bad.errors[0]["message"]
    bad = refused_and_unchanged(world, InvalidRequest, "registration refused", key.key_id, key.secret,
                                registration(tunnel_url="https://127.0.0.1:8787"))
    assert bad.errors[0]["field"] == "tunnel_url"
    bad = refused_and_unchanged(world, InvalidRequest, "registration refused", key.key_id, key.secret, [])
    assert bad.errors[0]["field"] == "body"


def test_loopback_tunnels_only_under_the_embedded_stacks_exemption() -> None:
    world = twins({}, clock=Clock(), HVR_ALLOW_LOOPBACK_DOWNLOADS="true")
    key = agents.issue_key("gpu-1", world.deps)
    assert heartbeat(world, key.key_id, key.secret, registration(tunnel_url="http://127.0.0.1:8787")).state == "up"


def test_a_revoked_agent_is_refused_at_once_and_a_new_key_readmits_it(world: Twins) -> None:
    key = agents.issue_key("gpu-1", world.deps)
    heartbeat(world, key.key_id, key.secret)
    gone = agents.revoke_keys("gpu-1", world.deps)
    assert gone.revoked_key_ids == [key.key_id]
    refused_and_unchanged(world, Unauthorized, "revoked", key.key_id, key.secret)
    fresh = agents.issue_key("gpu-1", world.deps)
    assert fresh.previous_key_id is None  # nothing revoked comes back through a rotation's overlap
    refused_and_unchanged(world, Unauthorized, "unknown key id", key.key_id, key.secret)
    assert heartbeat(world, fresh.key_id, fresh.secret).key_id == fresh.key_id
    with pytest.raises(NotFound, match="no keys"):
        agents.revoke_keys("never-had-one", world.deps)


def test_a_rotation_overlaps_for_an_hour_then_only_the_new_key_signs(world: Twins) -> None:
    old = agents.issue_key("gpu-1", world.deps)
    new = agents.issue_key("gpu-1", world.deps)
    assert new.previous_key_id == old.key_id and new.previous_valid_until == START + timedelta(hours=1)
    heartbeat(world, old.key_id, old.secret)
    heartbeat(world, new.key_id, new.secret)
    world.deps.clock.at = START + timedelta(hours=1)  # type: ignore[attr-defined]
    refused_and_unchanged(world, Unauthorized, "rotated out", old.key_id, old.secret)
    assert heartbeat(world, new.key_id, new.secret).last_seen == START + timedelta(hours=1)


def test_a_box_that_misses_three_heartbeats_is_down_and_a_drained_one_is_not_routable(world: Twins) -> None:
    key = agents.issue_key("gpu-1", world.deps)
    heartbeat(world, key.key_id, key.secret)
    world.deps.clock.at = START + timedelta(seconds=91)  # type: ignore[attr-defined]
    assert agents.one("gpu-1", world.deps).state is AgentState.DOWN
    heartbeat(world, key.key_id, key.secret)
    drained = agents.drain("gpu-1", True, world.deps)
    assert drained.state is AgentState.DRAINING and drained.drained_at == START + timedelta(seconds=91)
    record = world.deps.agents.get("gpu-1")
    assert record is not None and not routable(record, world.deps.clock(), world.deps.settings.agent_heartbeat_s)
    # A heartbeat doesn't undo an admin's drain; undrain does.
    assert heartbeat(world, key.key_id, key.secret).state is AgentState.DRAINING
    undrained = agents.drain("gpu-1", False, world.deps)
    assert undrained.state is AgentState.UP and undrained.drained_at is None
    with pytest.raises(NotFound, match="no agent gpu-9 has registered"):
        agents.drain("gpu-9", True, world.deps)
    with pytest.raises(NotFound):
        agents.one("gpu-9", world.deps)


def test_the_heartbeat_window_follows_the_setting() -> None:
    world = twins({}, clock=Clock(), HVR_AGENT_HEARTBEAT_S="5")
    key = agents.issue_key("gpu-1", world.deps)
    heartbeat(world, key.key_id, key.secret)
    world.deps.clock.at = START + timedelta(seconds=16)  # type: ignore[attr-defined]
    assert agents.one("gpu-1", world.deps).state is AgentState.DOWN
