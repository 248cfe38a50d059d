"""The services wired to the in-memory twins of every store (router.store.memory): no AWS, no moto, no network.

For tests of what the services decide and record. Whatever is about DynamoDB itself (conditional writes under real
concurrency, the wire shape of items) stays with tests/contract and the embedded stack.
"""

from __future__ import annotations

import functools
import itertools
import tempfile
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from hvr.memory import (
    MemoryAgentKeys,
    MemoryAgents,
    MemoryAlertHistory,
    MemoryAlerts,
    MemoryArtifacts,
    MemoryBudgets,
    MemoryCampaigns,
    MemoryCircuits,
    MemoryEvents,
    MemoryExperiments,
    MemoryExports,
    MemoryFindings,
    MemoryJobs,
    MemoryKeys,
    MemoryLearned,
    MemoryLedger,
    MemoryNonces,
    MemoryQueue,
    MemoryRatings,
)
from hvr.sandbox.base import render_mp4
from router.models.common import ProviderKind
from router.models.outcome import Billed
from router.policy.catalog import Catalog, load_catalog
from router.providers.base import ProviderState, ProviderStatus, Submission, TargetHealth, VideoProvider
from router.services import worker
from router.services.deps import Deps
from router.settings import Settings

# The names a deployment's settings must carry; the twins never read them.
_NAMES = {"HVR_JOBS_TABLE": "jobs", "HVR_LEDGER_TABLE": "ledger", "HVR_BUCKET": "hvr-memory",
          "HVR_JOBS_QUEUE_URL": "memory://jobs", "HVR_KEYS_TABLE": "keys", "HVR_BUDGETS_TABLE": "budgets",
          "HVR_AGENTS_TABLE": "agents", "HVR_IDEMPOTENCY_TABLE": "nonces",
          "HVR_ALERTS_TOPIC_ARN": "memory://alerts", "HVR_EVENTS_TOPIC_ARN": "memory://events"}


def twin_settings(**env: Any) -> Settings:
    return Settings.model_validate({**_NAMES, **env})


@dataclass
class Twins:
    """Deps on twins, with the twins themselves typed for the tests that look inside them."""

    deps: Deps
    jobs: MemoryJobs
    queue: MemoryQueue
    artifacts: MemoryArtifacts
    alerts: MemoryAlerts
    events: MemoryEvents
    delays: list[float] = field(default_factory=list)  # of every message run, in order

    def step(self) -> None:
        """Deliver the next queued message (there must be one)."""
        taken = self.queue.take()
        assert taken is not None, "the queue is empty"
        self.delays.append(taken[1])
        worker.handle(taken[0], self.deps)

    def run(self, limit: int = 200) -> int:
        """Deliver queued messages to the worker until none is left (a delayed one as if its delay had passed);
        how many ran. `limit` stops a chain that never ends."""
        ran = 0
        while ran < limit and (taken := self.queue.take()) is not None:
            message, delay_s = taken
            self.delays.append(delay_s)
            worker.handle(message, self.deps)
            ran += 1
        assert ran < limit, f"the queue still held messages after {limit}"
        return ran


def counted_ids() -> Callable[[str], str]:
    """Ids counted, not drawn from the clock and os.urandom, so that a twin world runs the same way every time. Ids
    decide things: the experiment arm and exploration draws hash them, and the sweeper reads open jobs in the open
    index's shard order (sharded by id). With random ids a test of "8 jobs land on both arms" failed 1 run in 128, and
    hypothesis' machines could not replay their own steps (`FlakyStrategyDefinition`). Same shape as a real id: 26
    characters after the prefix."""
    counter = itertools.count(1)
    return lambda prefix: f"{prefix}_{next(counter):026d}"


def twins(providers: Mapping[ProviderKind, VideoProvider], catalog: Catalog | None = None,
          clock: Callable[[], datetime] | None = None, **env: Any) -> Twins:
    queue, artifacts, alerts, events = MemoryQueue(), MemoryArtifacts(_NAMES["HVR_BUCKET"]), MemoryAlerts(), \
        MemoryEvents()

    def now() -> datetime:  # late-bound, as build_deps does: a test may move the clock on the Deps
        return deps.clock()

    jobs = MemoryJobs(clock=now)
    settings = twin_settings(**env)
    deps = Deps(jobs=jobs, ledger=MemoryLedger(), artifacts=artifacts, queue=queue,
                catalog=catalog or load_catalog(), providers=dict(providers), learned=MemoryLearned(),
                circuits=MemoryCircuits(), keys=MemoryKeys(), budgets=MemoryBudgets(), campaigns=MemoryCampaigns(),
                exports=MemoryExports(), findings=MemoryFindings(), alerts=alerts,
                alert_history=MemoryAlertHistory(), nonces=MemoryNonces(), events=events, agents=MemoryAgents(),
                agent_keys=MemoryAgentKeys(), ratings=MemoryRatings(), experiments=MemoryExperiments(),
                settings=settings, time_scale=settings.time_scale, max_attempts=settings.max_attempts,
                max_submit_tries=settings.max_submit_tries)
    deps.new_id = counted_ids()
    if clock is not None:
        deps.clock = clock
    return Twins(deps=deps, jobs=jobs, queue=queue, artifacts=artifacts, alerts=alerts, events=events)


@functools.cache
def video(width: int, height: int, frames: int, fps: float) -> bytes:
    """A real MP4 of that spec, encoded once per session (encoding dominates these tests' time)."""
    with tempfile.TemporaryDirectory(prefix="hvr-twins-") as folder:
        return render_mp4(Path(folder) / "out.mp4", width, height, frames, fps, "veo", "twins").read_bytes()


class ScriptedVeo(VideoProvider):
    """Each submission takes the next scripted ending: `ok` (the MP4 it was asked for), `wrong_size`, `crash`
    (the provider's own failure), `filtered` (its safety filter), or `running` (never ends)."""

    kind = ProviderKind.VEO

    def __init__(self, endings: list[str]) -> None:
        self.endings = deque(endings)
        self.jobs: dict[str, tuple[Submission, str]] = {}
        self.cancelled: list[str] = []
        self._ids = itertools.count(1)

    @property
    def target_name(self) -> str:
        return "veo"

    def _submit(self, submission: Submission) -> ProviderStatus:
        job_id = f"operations/{next(self._ids)}"
        self.jobs[job_id] = (submission, self.endings.popleft())
        return ProviderStatus(job_id, ProviderState.RUNNING)

    def _lookup(self, attempt_id: str) -> ProviderStatus | None:
        return next((self._status(ref) for ref, (sub, _) in self.jobs.items() if sub.attempt_id == attempt_id), None)

    def _status(self, provider_job_id: str) -> ProviderStatus:
        submission, ending = self.jobs[provider_job_id]
        spec = submission.delivered
        if ending == "running":
            return ProviderStatus(provider_job_id, ProviderState.RUNNING, progress=0.5)
        if ending == "crash":
            return ProviderStatus(provider_job_id, ProviderState.FAILED, error="INTERNAL: the render crashed")
        if ending == "filtered":
            return ProviderStatus(provider_job_id, ProviderState.FAILED, error="celebrity likeness",
                                  content_filtered=True)
        width = spec.width // 2 if ending == "wrong_size" else spec.width
        return ProviderStatus(provider_job_id, ProviderState.SUCCEEDED, progress=1.0,
                              billed=Billed(output_seconds=spec.duration_s),
                              output_bytes=video(width, spec.height, spec.frames, spec.fps))

    def _cancel(self, provider_job_id: str) -> ProviderStatus:
        self.cancelled.append(provider_job_id)
        return ProviderStatus(provider_job_id, ProviderState.CANCELLED)

    def _health(self) -> TargetHealth:
        return TargetHealth(name="veo", up=True)


class ScriptedGpu(ScriptedVeo):
    """A GPU box's agent, scripted like ScriptedVeo: it bills GPU-seconds and answers inline with the MP4. `name`,
    `up` and the memory it reports make it one box of a fleet (router.providers.fleet)."""

    kind = ProviderKind.LOCAL

    def __init__(self, endings: list[str], name: str = "agent-1", *, up: bool = True, vram_mb: int | None = None,
                 ram_mb: int | None = None) -> None:
        super().__init__(endings)
        self.name, self.up, self.vram_mb, self.ram_mb = name, up, vram_mb, ram_mb

    @property
    def target_name(self) -> str:
        return self.name

    def _status(self, provider_job_id: str) -> ProviderStatus:
        status = super()._status(provider_job_id)
        if status.state is not ProviderState.SUCCEEDED:
            return status
        submission, _ = self.jobs[provider_job_id]
        return ProviderStatus(provider_job_id, ProviderState.SUCCEEDED, progress=1.0,
                              billed=Billed(gpu_seconds=10.0 * submission.delivered.frames),
                              output_bytes=status.output_bytes)

    def _health(self) -> TargetHealth:
        return TargetHealth(name=self.name, up=self.up, vram_mb=self.vram_mb, ram_mb=self.ram_mb)

    def submissions(self) -> list[Submission]:
        return [submission for submission, _ in self.jobs.values()]
