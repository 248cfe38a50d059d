"""The fleet registry's use cases (docs/architecture.md, "Fleet registry"): an agent's signed heartbeat, an admin's
keys, drain and listing.

A heartbeat is checked in the order that tells an outsider least and costs least: the key id and signature first
(before the body is even parsed), then the nonce (only for a valid signature, so forgeries can't fill the store),
then the body, then what needs the deployment (the models file, the loopback exemption). Whatever is refused is
refused before the registry is written.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pydantic import ValidationError

from router.errors import CONTRACT, FieldError, InvalidRequest, NotFound, field_errors
from router.hosts import HostRefused, is_loopback_host, public_dns_host
from router.models.agent import (
    AgentKey,
    AgentKeysRevoked,
    AgentList,
    AgentRecord,
    AgentRegistration,
    AgentState,
    AgentView,
    BoxSpeed,
)
from router.policy.learning import OfferStats, box_factors, read
from router.services.deps import Deps
from router.signing import KEY_ID_HEADER, MAX_SKEW_S, SignatureError, verify
from router.store.agents import state
from router.workflows.models import DEFAULT_MODELS_FILE, MODELS_FILE_ENV, ModelFiles

NONCE_SCOPE = "agents"


def authenticate(name: str, target: str, headers: Mapping[str, str], body: bytes, deps: Deps,
                 method: str = "PUT") -> str:
    """The key id that signed this request of agent `name` (its heartbeat, or with `method` POST its callback), or
    an Unauthorized (401) saying why not: no key id, an unknown, rotated-out or revoked one
    (router.store.agent_keys.KeyRefused), a bad or stale signature, a replayed nonce (router.signing.SignatureError).
    `target` is the request's path and query as sent."""
    lowered = {key.lower(): value for key, value in headers.items()}
    key_id = lowered.get(KEY_ID_HEADER.lower(), "")
    if not key_id:
        raise SignatureError(f"missing {KEY_ID_HEADER}: the request names the key that signed it")
    now = deps.clock()
    secret = deps.agent_keys.secret(name, key_id, now)
    nonces = deps.nonces
    verify([secret], method, target, body, lowered, now=now.timestamp(),
           nonce_is_fresh=lambda nonce, ts: nonces.first_seen(NONCE_SCOPE, nonce, ts + 2 * MAX_SKEW_S))
    return key_id


def register(name: str, key_id: str, body: Any, deps: Deps) -> AgentView:
    """Keep a signed heartbeat's body (its JSON, parsed) as the box's latest registration once it validates and
    the deployment's own rules pass; InvalidRequest naming every field that doesn't, and nothing written."""
    if body is None:
        raise InvalidRequest("empty heartbeat", detail=CONTRACT, errors=[
            {"field": "body", "message": "is empty: a heartbeat carries the agent's registration"}])
    try:
        registration = AgentRegistration.model_validate(body)
    except ValidationError as exc:
        # An error of the whole document (a list, a string) names no field: it is the body's.
        errors = [{**error, "field": error["field"] or "body"} for error in field_errors(exc)]
        raise InvalidRequest(f"agent {name}'s registration refused", detail=CONTRACT, errors=errors) from exc
    errors = _tunnel_errors(registration.tunnel_url, deps.settings.allow_loopback_downloads)
    known = model_names()
    errors += [{"field": f"models.{i}", "message": f"{model!r} is not a model of the models file"}
               for i, model in enumerate(registration.models) if model not in known]
    errors += [{"field": f"queue.{i}.model", "message": f"{work.model!r} is not a model of the models file"}
               for i, work in enumerate(registration.queue) if work.model not in known]
    errors += [{"field": f"speeds.{i}.model", "message": f"{speed.model!r} is not a model of the models file"}
               for i, speed in enumerate(registration.speeds or []) if speed.model not in known]
    if errors:
        raise InvalidRequest(f"agent {name}'s registration refused", detail=CONTRACT, errors=errors)
    return view(deps.agents.heartbeat(name, registration, key_id, deps.clock()), deps)


def _tunnel_errors(url: str, allow_loopback: bool) -> list[FieldError]:
    """The router calls this URL with its own signed requests: a public https name, as every URL we call is; the
    embedded stack's agent is on loopback, which its exemption (HVR_ALLOW_LOOPBACK_DOWNLOADS) admits there only."""
    parts = urlsplit(url)
    host = (parts.hostname or "").rstrip(".").lower()
    if allow_loopback and is_loopback_host(host):
        return []
    if parts.scheme != "https":
        return [{"field": "tunnel_url", "message": "must be https (the tunnel's public name)"}]
    try:
        public_dns_host(url)
    except HostRefused as exc:
        return [{"field": "tunnel_url", "message": str(exc)}]
    return []


def model_names() -> frozenset[str]:
    """The models the models file names: what an agent may say it runs (the file the workflows read)."""
    return _model_names(os.environ.get(MODELS_FILE_ENV) or str(DEFAULT_MODELS_FILE))


@cache
def _model_names(path: str) -> frozenset[str]:
    return frozenset(ModelFiles.load(Path(path)).files)


def lost(deps: Deps, name: str | None = None) -> dict[str, AgentRecord]:
    """The registered boxes (or box `name`) that missed their heartbeats: whatever they held is lost unless they
    come back with it. A box that never registered is never lost by this rule (its silence is timed by its polls)."""
    records = [deps.agents.get(name)] if name is not None else deps.agents.all()
    now, heartbeat_s = deps.clock(), deps.settings.agent_heartbeat_s
    return {r.name: r for r in records if r is not None and state(r, now, heartbeat_s) is AgentState.DOWN}


def view(record: AgentRecord, deps: Deps, stats: Mapping[str, OfferStats] | None = None) -> AgentView:
    """The box as the registry holds it and how busy its heartbeat says it is; with `stats` (the learned models),
    what its renders taught the router."""
    current = state(record, deps.clock(), deps.settings.agent_heartbeat_s)
    learned: dict[str, BoxSpeed] = {}
    factor = None
    if stats is not None:
        suffix = f"@{record.name}"
        learned = {name.removesuffix(suffix): BoxSpeed(runs=model.runs,
                                                       time_vs_catalog=round(read(model).time_p50, 4))
                   for name, model in stats.items() if name.endswith(suffix) and model.runs}
        factor = box_factors(stats).get(record.name)
    registration = record.registration
    running = sum(1 for work in registration.queue if work.status == "running")
    return AgentView(**record.model_dump(), state=current, utilization=_utilization(registration),
                     busy_now=round(running / registration.slots, 3), learned=learned,
                     time_vs_fleet=None if factor is None else round(math.exp(factor), 3))


def _utilization(registration: AgentRegistration) -> float | None:
    measured = registration.utilization
    if measured is None:
        return None
    return round(measured.busy_s / (measured.window_s * registration.slots), 3)


def listing(deps: Deps) -> AgentList:
    stats = deps.learned.all()
    return AgentList(agents=[view(record, deps, stats) for record in deps.agents.all()],
                     heartbeat_s=deps.settings.agent_heartbeat_s)


def one(name: str, deps: Deps) -> AgentView:
    record = deps.agents.get(name)
    if record is None:
        raise NotFound(f"no agent {name} has registered (an agent appears with its first heartbeat)")
    return view(record, deps, deps.learned.all())


def drain(name: str, draining: bool, deps: Deps) -> AgentView:
    """Drain: the box finishes what it holds and is given nothing new (router.store.agents.routable); undrain."""
    return view(deps.agents.set_draining(name, draining, deps.clock()), deps)


def issue_key(name: str, deps: Deps) -> AgentKey:
    return deps.agent_keys.issue(name, deps.clock(), deps.settings.agent_key_overlap_s)


def revoke_keys(name: str, deps: Deps) -> AgentKeysRevoked:
    now = deps.clock()
    revoked = deps.agent_keys.revoke(name, now)
    if revoked is None:
        raise NotFound(f"agent {name} has no keys to revoke")
    return AgentKeysRevoked(name=name, revoked_key_ids=revoked, revoked_at=now)
