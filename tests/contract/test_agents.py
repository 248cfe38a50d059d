"""The fleet registry (DynamoDB AgentsTable) and the agents' keys (Secrets Manager), each against its twin, one set of
tests: the latest heartbeat kept with its first, a drain that heartbeats leave alone, one secret per agent whose
rotation overlaps and whose revoke is at once."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from hvr.local.provision import provision
from hvr.memory import MemoryAgentKeys, MemoryAgents
from router.models.agent import AgentRegistration
from router.store.agent_keys import AgentKeysRepository, KeyRefused
from router.store.agents import AgentsRepository
from router.store.errors import NotFound
from router.store.protocols import AgentKeyStore, AgentRegistry
from tests.contract.conftest import moto_client

NOW = datetime(2027, 1, 8, 12, 0, tzinfo=UTC)


@dataclass(frozen=True)
class Backend:
    name: str
    agents: AgentRegistry
    keys: AgentKeyStore


@pytest.fixture(params=["aws", "memory"])
def backend(request: pytest.FixtureRequest, tables_template: Path) -> Backend:
    if request.param == "memory":
        return Backend("memory", MemoryAgents(), MemoryAgentKeys())
    url = request.getfixturevalue("moto_url")
    stack = f"g{uuid.uuid4().hex[:10]}"
    tables = provision({"dynamodb": moto_client("dynamodb", url)}, stack_name=stack, path=tables_template).table_names
    return Backend("aws", AgentsRepository(moto_client("dynamodb", url), tables["AgentsTable"]),
                   AgentKeysRepository(moto_client("secretsmanager", url), f"{stack}/agents/"))


def registration(vram_mb: int = 24564, models: tuple[str, ...] = ("wan21-14b",)) -> AgentRegistration:
    return AgentRegistration(tunnel_url="https://gpu-1.studio.example.com", gpu="NVIDIA GeForce RTX 4090",
                             vram_mb=vram_mb, ram_mb=65536, slots=1, models=list(models))


def test_both_satisfy_their_protocols(backend: Backend) -> None:
    assert isinstance(backend.agents, AgentRegistry) and isinstance(backend.keys, AgentKeyStore)


def test_a_heartbeat_keeps_the_latest_registration_and_the_first_time_seen(backend: Backend) -> None:
    assert backend.agents.get("gpu-1") is None and backend.agents.all() == []
    first = backend.agents.heartbeat("gpu-1", registration(), "ak_1", NOW)
    assert first.registered_at == first.last_seen == NOW and not first.draining
    later = NOW + timedelta(seconds=30)
    again = backend.agents.heartbeat("gpu-1", registration(vram_mb=32607, models=("wan22-14b",)), "ak_2", later)
    assert again.registered_at == NOW and again.last_seen == later and again.key_id == "ak_2"
    assert again.registration.vram_mb == 32607 and again.registration.models == ["wan22-14b"]
    assert backend.agents.get("gpu-1") == again
    backend.agents.heartbeat("gpu-0", registration(), "ak_3", later)
    assert [record.name for record in backend.agents.all()] == ["gpu-0", "gpu-1"]


def test_a_drain_stays_through_heartbeats_until_undrained(backend: Backend) -> None:
    with pytest.raises(NotFound, match="no agent gpu-1 has registered"):
        backend.agents.set_draining("gpu-1", True, NOW)
    assert backend.agents.all() == []  # the refused drain wrote nothing
    backend.agents.heartbeat("gpu-1", registration(), "ak_1", NOW)
    drained = backend.agents.set_draining("gpu-1", True, NOW + timedelta(seconds=1))
    assert drained.draining and drained.drained_at == NOW + timedelta(seconds=1)
    kept = backend.agents.heartbeat("gpu-1", registration(), "ak_1", NOW + timedelta(seconds=30))
    assert kept.draining and kept.drained_at == drained.drained_at
    undrained = backend.agents.set_draining("gpu-1", False, NOW + timedelta(seconds=40))
    assert not undrained.draining and undrained.drained_at is None
    assert backend.agents.get("gpu-1") == undrained


def test_keys_are_issued_rotated_with_an_overlap_and_revoked_at_once(backend: Backend) -> None:
    with pytest.raises(KeyRefused, match="has no keys"):
        backend.keys.secret("gpu-1", "ak_0", NOW)
    assert backend.keys.revoke("gpu-1", NOW) is None
    first = backend.keys.issue("gpu-1", NOW, overlap_s=3600)
    assert first.previous_key_id is None and backend.keys.secret("gpu-1", first.key_id, NOW) == first.secret
    second = backend.keys.issue("gpu-1", NOW + timedelta(minutes=1), overlap_s=3600)
    assert second.previous_key_id == first.key_id
    assert second.previous_valid_until == NOW + timedelta(minutes=61)
    assert backend.keys.secret("gpu-1", first.key_id, NOW + timedelta(minutes=60)) == first.secret
    with pytest.raises(KeyRefused, match="rotated out"):
        backend.keys.secret("gpu-1", first.key_id, NOW + timedelta(minutes=61))
    other = backend.keys.issue("gpu-2", NOW, overlap_s=3600)  # one secret per agent: gpu-2's keys are its own
    with pytest.raises(KeyRefused, match="unknown key id"):
        backend.keys.secret("gpu-1", other.key_id, NOW)
    assert sorted(backend.keys.revoke("gpu-1", NOW + timedelta(minutes=2)) or []) == sorted(
        [first.key_id, second.key_id])
    with pytest.raises(KeyRefused, match="revoked"):
        backend.keys.secret("gpu-1", second.key_id, NOW + timedelta(minutes=2))
    assert backend.keys.secret("gpu-2", other.key_id, NOW) == other.secret


def test_each_agent_is_one_secret_under_the_stacks_prefix(backend: Backend, moto_url: str) -> None:
    if backend.name != "aws":
        pytest.skip("Secrets Manager's own layout")
    assert isinstance(backend.keys, AgentKeysRepository)
    backend.keys.issue("gpu-1", NOW, overlap_s=3600)
    backend.keys.issue("gpu-1", NOW, overlap_s=3600)
    prefix = backend.keys._prefix
    names = [s["Name"] for s in moto_client("secretsmanager", moto_url).list_secrets()["SecretList"]
             if s["Name"].startswith(prefix)]
    assert names == [f"{prefix}gpu-1"]
