"""The fleet registry's pure parts: the registration body's rules, a box's state from its heartbeats, the key ring's
rotation and revocation, and the heartbeat's signature."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from router.errors import field_errors
from router.models.agent import AgentRecord, AgentRegistration, AgentState
from router.signing import sign, verify
from router.store.agent_keys import KeyRefused, live_key_ids, revoked, rotated, secret_for
from router.store.agents import MISSED_HEARTBEATS, routable, state

NOW = datetime(2027, 1, 8, 12, 0, tzinfo=UTC)


def body(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "tunnel_url": "https://gpu-1.studio.example.com", "gpu": "NVIDIA GeForce RTX 4090", "vram_mb": 24564,
        "ram_mb": 65536, "slots": 1, "models": ["animatediff-sd15", "wan21-1.3b"],
        "queue": [{"model": "wan21-1.3b", "status": "running", "eta_s": 120.5}], "power_w": 450}
    return {**base, **changes}


def refused(**changes: Any) -> dict[str, str]:
    """field → message of every error of a body with these changes."""
    with pytest.raises(ValidationError) as caught:
        AgentRegistration.model_validate(body(**changes))
    return {error["field"]: error["message"] for error in field_errors(caught.value)}


def test_a_registration_reads_as_sent() -> None:
    registration = AgentRegistration.model_validate(body(speeds=[
        {"model": "wan21-1.3b", "width": 832, "height": 480, "seconds_per_frame": 3.5, "samples": 12}]))
    assert registration.vram_mb == 24564 and registration.queue[0].eta_s == 120.5
    assert registration.speeds and registration.speeds[0].seconds_per_frame == 3.5
    assert AgentRegistration.model_validate(body(power_w=None, queue=[])).power_w is None
    assert AgentRegistration.model_validate(body()).utilization is None  # an agent older than the field
    busy = AgentRegistration.model_validate(body(slots=2, utilization={"window_s": 3600, "busy_s": 7200}))
    assert busy.utilization is not None and busy.utilization.busy_s == 7200  # both slots the whole hour


@pytest.mark.parametrize(("changes", "field"), [
    ({"vram_mb": 512}, "vram_mb"),  # under 1 GB: no card renders video in it
    ({"vram_mb": 10**7}, "vram_mb"),  # 10 TB of VRAM: a driver bug or a lie
    ({"ram_mb": 0}, "ram_mb"),
    ({"slots": 0}, "slots"),
    ({"slots": 17}, "slots"),
    ({"power_w": 0}, "power_w"),
    ({"gpu": ""}, "gpu"),
    ({"gpu": "RTX\x004090"}, "gpu"),
    ({"tunnel_url": "ftp://gpu.example.com"}, "tunnel_url"),
    ({"tunnel_url": "https://user:pw@gpu.example.com"}, "tunnel_url"),
    ({"tunnel_url": "https://gpu.example.com/?next=evil"}, "tunnel_url"),
    ({"queue": [{"model": "wan21-1.3b", "status": "running", "eta_s": -1}]}, "queue.0.eta_s"),
    ({"queue": [{"model": "wan21-1.3b", "status": "done", "eta_s": 1}]}, "queue.0.status"),
    ({"colour": "green"}, "colour"),
    ({"utilization": {"window_s": 3600, "busy_s": -1}}, "utilization.busy_s"),
    ({"utilization": {"window_s": 10, "busy_s": 0}}, "utilization.window_s"),  # one render's noise
    ({"utilization": {"window_s": 30 * 86400, "busy_s": 0}}, "utilization.window_s"),
    ({"utilization": {"window_s": 3600, "busy_s": 0, "gpu_s": 1}}, "utilization.gpu_s"),
])
def test_each_bad_field_is_named(changes: dict[str, Any], field: str) -> None:
    assert field in refused(**changes)


@pytest.mark.parametrize(("name", "says"), [
    ("../../etc/passwd", "'..'"),
    ("/opt/models/wan.safetensors", "absolute path"),
    ("C:\\models\\wan", "absolute path"),
    ("\\\\server\\share", "absolute path"),
    ("checkpoints/wan.safetensors", "is a path"),
    ("wan21..14b", "'..'"),
    ("WAN 2.1", "not a model name"),
])
def test_model_names_that_could_be_paths_are_refused(name: str, says: str) -> None:
    errors = refused(models=["wan21-1.3b", name])
    assert says in errors["models"]
    assert says in refused(queue=[{"model": name, "status": "queued", "eta_s": 1}])["queue.0.model"]


def test_a_model_named_twice_is_refused() -> None:
    assert "twice" in refused(models=["wan21-1.3b", "wan21-1.3b"])["models"]


def test_more_busy_time_than_the_slots_can_hold_is_refused_at_the_field() -> None:
    errors = refused(slots=2, utilization={"window_s": 3600, "busy_s": 7201})
    assert errors == {"utilization.busy_s": "7201 s busy in a 3600 s window is more than 2 slot(s) can render"}


def record(seen_s_ago: float, draining: bool = False) -> AgentRecord:
    return AgentRecord(name="gpu-1", registration=AgentRegistration.model_validate(body()), key_id="ak_1",
                       registered_at=NOW - timedelta(days=1), last_seen=NOW - timedelta(seconds=seen_s_ago),
                       draining=draining)


def test_a_box_is_down_once_it_misses_three_heartbeats_drained_or_not() -> None:
    window = 30 * MISSED_HEARTBEATS
    assert state(record(0), NOW, 30) is AgentState.UP and routable(record(0), NOW, 30)
    assert state(record(window), NOW, 30) is AgentState.UP  # the third heartbeat is late only once it is past
    assert state(record(window + 0.001), NOW, 30) is AgentState.DOWN and not routable(record(window + 1), NOW, 30)
    assert state(record(5, draining=True), NOW, 30) is AgentState.DRAINING
    assert not routable(record(5, draining=True), NOW, 30)
    assert state(record(window + 1, draining=True), NOW, 30) is AgentState.DOWN
    assert state(record(100), NOW, 60) is AgentState.UP  # the window follows the configured heartbeat


def test_a_rotation_keeps_the_previous_key_for_its_overlap_then_only_the_new_one() -> None:
    first = rotated(None, NOW, overlap_s=3600)
    assert first.previous is None and first.current is not None
    old = first.current
    second = rotated(first, NOW + timedelta(minutes=5), overlap_s=3600)
    assert second.current is not None and second.current.key_id != old.key_id
    assert second.current.secret != old.secret
    during = NOW + timedelta(minutes=64)
    assert secret_for(second, "gpu-1", old.key_id, during) == old.secret
    assert secret_for(second, "gpu-1", second.current.key_id, during) == second.current.secret
    with pytest.raises(KeyRefused, match="rotated out"):
        secret_for(second, "gpu-1", old.key_id, NOW + timedelta(minutes=65))
    third = rotated(second, during, overlap_s=3600)  # the key before the previous stops at once
    with pytest.raises(KeyRefused, match="unknown key id"):
        secret_for(third, "gpu-1", old.key_id, during)


def test_a_revoke_stops_every_key_at_once() -> None:
    ring = rotated(rotated(None, NOW, 3600), NOW, 3600)
    assert len(live_key_ids(ring, NOW)) == 2
    gone = revoked(ring, NOW)
    assert ring.current is not None
    with pytest.raises(KeyRefused, match="revoked"):
        secret_for(gone, "gpu-1", ring.current.key_id, NOW)
    with pytest.raises(KeyRefused, match="has no keys"):
        secret_for(None, "gpu-1", "ak_0", NOW)
    with pytest.raises(KeyRefused, match="unknown key id"):
        secret_for(ring, "gpu-1", "ak_not-this-one", NOW)


def test_a_heartbeat_is_signed_over_its_path_and_body() -> None:
    secret, sent = "s3cret", b'{"slots": 1}'
    headers = sign(secret, "PUT", "/v1/agents/gpu-1", sent, now=NOW.timestamp())
    verify([secret], "PUT", "/v1/agents/gpu-1", sent, headers, now=NOW.timestamp(), nonce_is_fresh=lambda *_: True)
    for path, sent_body in (("/v1/agents/gpu-2", sent), ("/v1/agents/gpu-1", b'{"slots": 16}')):
        with pytest.raises(Exception, match="signature mismatch"):
            verify([secret], "PUT", path, sent_body, headers, now=NOW.timestamp(), nonce_is_fresh=lambda *_: True)
