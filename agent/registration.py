"""The agent's side of the fleet registry (docs/architecture.md, "Fleet registry"): every `heartbeat_s` it puts its
registration to the router, `PUT /v1/agents/{name}`, signed with its own key (router/signing.py plus X-HVR-Key-Id).

The registration is read from the health check the agent already answers (agent.app's `health`): VRAM, system
memory, slots, the models it can run, its queue and how busy its slots were in the last hour; nothing here measures
the box again. The agent announces itself rather than the router polling it: a box behind a tunnel or NAT can always
dial out, the router needs no list of boxes to reach, and a box that stops announcing is down by the same rule as one
whose network died (docs/decisions.md, 2026-12-05 "fleet registry"). A heartbeat that fails is logged and tried
again at the next one: the agent keeps serving the router that already knows it.
"""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import urlsplit

import httpx

from agent.config import AgentSettings
from agent.schemas import Health
from router.signing import KEY_ID_HEADER, sign
from router.workflows.models import ModelFiles

log = logging.getLogger("hvr.agent.registration")

TIMEOUT_S = 10.0


def run_times(left_s: Sequence[float], slots: int) -> list[tuple[float, float]]:
    """(start, end) in seconds from now of each job, taken in the order they run, each on the slot that frees first
    (running ones hold their slots from now)."""
    free = [0.0] * max(1, slots)
    times = []
    for seconds in left_s:
        slot = min(range(len(free)), key=free.__getitem__)
        times.append((free[slot], free[slot] + seconds))
        free[slot] += seconds
    return times


def queue_etas(health: Health) -> list[dict[str, Any]]:
    """The health check's queue with, for each job, the seconds until it is done: the jobs taken in the order they
    run, each on the slot that frees first (running ones hold their slots from now)."""
    times = run_times([work.left_s for work in health.queue], health.slots)
    return [{"model": work.model, "status": work.status, "eta_s": round(done, 1),
             "deadline": work.deadline.isoformat() if work.deadline else None}
            for work, (_, done) in zip(health.queue, times, strict=True)]


def gpu_name() -> str | None:
    """The first card's name as the NVIDIA driver reports it; None without one."""
    tool = shutil.which("nvidia-smi")
    if tool is None:
        return None
    try:
        done = subprocess.run([tool, "--query-gpu=name", "--format=csv,noheader"], capture_output=True, text=True,
                              timeout=10, check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    first = done.stdout.strip().splitlines()
    return first[0].strip() if first and first[0].strip() else None


class Registration:
    """Puts this agent's registration to the router every `heartbeat_s`, on a thread of its own, until stopped."""

    def __init__(self, settings: AgentSettings, health: Callable[[], Health],
                 client: httpx.Client | None = None, clock: Callable[[], float] = time.time) -> None:
        assert settings.router_url and settings.agent_name and settings.key_id and settings.key_secret
        self._settings = settings
        self._health = health
        self._client = client or httpx.Client(timeout=TIMEOUT_S)
        self._clock = clock
        base = settings.router_url.rstrip("/")
        self._url = f"{base}/v1/agents/{settings.agent_name}"
        self._path = urlsplit(self._url).path  # what the router verifies the signature over
        self._gpu = settings.gpu or gpu_name() or "unknown GPU"
        self._all_models: list[str] | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.last_state: str | None = None  # what the router's last answer said: up, draining (or down)
        self.last_error: str | None = None

    def registration(self) -> dict[str, Any]:
        health = self._health()
        models = sorted(health.models) if health.models is not None else self._models_file()
        body: dict[str, Any] = {
            "tunnel_url": self._settings.tunnel_url, "gpu": self._gpu, "vram_mb": health.vram.total_mb,
            "ram_mb": health.ram_mb, "slots": health.slots, "models": models, "queue": queue_etas(health),
            "utilization": health.utilization.model_dump()}
        if self._settings.power_w is not None:
            body["power_w"] = self._settings.power_w
        return body

    def _models_file(self) -> list[str]:
        """An engine that can't tell what it runs: every model of its models file, as the router assumes then."""
        if self._all_models is None:
            self._all_models = sorted(ModelFiles.load(self._settings.models_file).files)
        return self._all_models

    def beat(self) -> bool:
        """One heartbeat; True if the router kept it. Never raises: a failure is logged and said in last_error."""
        settings = self._settings
        assert settings.key_secret and settings.key_id
        try:
            body = json.dumps(self.registration()).encode()
            headers = {**sign(settings.key_secret, "PUT", self._path, body, now=self._clock()),
                       KEY_ID_HEADER: settings.key_id, "Content-Type": "application/json"}
            response = self._client.put(self._url, content=body, headers=headers)
        except (httpx.HTTPError, OSError, ValueError) as exc:
            return self._failed(f"cannot reach the router at {self._url}: {exc}")
        if response.status_code != 200:
            return self._failed(f"the router refused this agent's heartbeat: {response.status_code} "
                                f"{_problem(response)}")
        state = str(response.json().get("state"))
        if state != self.last_state or self.last_error is not None:
            log.info("registered with the router as %s: %s", settings.agent_name, state)
        self.last_state, self.last_error = state, None
        return True

    def _failed(self, reason: str) -> bool:
        if reason != self.last_error:  # once per new reason, not every heartbeat
            log.warning("%s (trying again every %.0f s)", reason, self._settings.heartbeat_s)
        self.last_error = reason
        return False

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="hvr-agent-heartbeat", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=TIMEOUT_S + 1)
        self._client.close()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.beat()
            self._stop.wait(self._settings.heartbeat_s)


def start_registration(settings: AgentSettings, health: Callable[[], Health]) -> Callable[[], None]:
    """Heartbeats started when the agent is configured to register (router_url), and what stops them; nothing
    otherwise: a single agent named by the router's own settings needs none."""
    if settings.router_url is None:
        return lambda: None
    registration = Registration(settings, health)
    registration.start()
    return registration.stop


def _problem(response: httpx.Response) -> str:
    try:
        problem = response.json()
    except ValueError:
        return response.text[:200]
    errors = "; ".join(f"{e.get('field')}: {e.get('message')}" for e in problem.get("errors") or [])
    return " — ".join(part for part in (str(problem.get("detail") or problem.get("title") or ""), errors) if part)
