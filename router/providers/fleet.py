"""Several GPU boxes behind the one `local` provider: each box is its own agent (`AgentProvider`) and its own target
(circuit, queue, memory, models), and the engine places each local job on one of them (`policy.engine._place`).

A submission goes to the box the engine chose (`Submission.target`). The provider's job id is `box/attempt`, so a
status, cancel or finalize reaches the box that has the job without any lookup; a lookup by attempt id (an
unconfirmed submit) asks every box, since the attempt may have reached any of them before its answer was lost.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor

from router.models.common import ProviderKind
from router.providers.base import ProviderStatus, Submission, TargetHealth, VideoProvider
from router.providers.errors import Rejected

FLEET_TARGET = "local"
DOWN_RECHECK_S = 10.0  # how long a box that failed its health check is taken as down without asking again


class FleetProvider(VideoProvider):
    kind = ProviderKind.LOCAL

    def __init__(self, boxes: Mapping[str, VideoProvider] | Callable[[], Mapping[str, VideoProvider]],
                 down_recheck_s: float = DOWN_RECHECK_S, clock: Callable[[], float] = time.monotonic) -> None:
        """`boxes`: the boxes, or where to read them each time (the fleet registry's, which change as boxes come
        and go: `router.services.fleet_registry`)."""
        if not callable(boxes) and not boxes:
            raise ValueError("a fleet needs at least one box")
        fixed = dict(boxes) if not callable(boxes) else None
        self._source: Callable[[], Mapping[str, VideoProvider]] = boxes if callable(boxes) else lambda: fixed or {}
        self._down_recheck_s, self._clock = down_recheck_s, clock
        self._down_since: dict[str, tuple[float, TargetHealth]] = {}  # box → when it last failed its health check
        self._pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="hvr-fleet-health")

    @property
    def _boxes(self) -> Mapping[str, VideoProvider]:
        return self._source()

    @property
    def target_name(self) -> str:
        return FLEET_TARGET

    @property
    def box_names(self) -> tuple[str, ...]:
        return tuple(self._boxes)

    def _submit(self, submission: Submission) -> ProviderStatus:
        boxes = self._boxes
        name = submission.target or next(iter(boxes), "")
        box = boxes.get(name)
        if box is None:
            raise Rejected(f"no GPU box named {name!r} in this fleet (it has: {', '.join(boxes) or 'none'})")
        return _named(name, box.submit(submission))

    def _lookup(self, attempt_id: str) -> ProviderStatus | None:
        for name, box in self._boxes.items():
            found = box.lookup(attempt_id)
            if found is not None:
                return _named(name, found)
        return None

    def _status(self, provider_job_id: str) -> ProviderStatus:
        name, box, job = self._split(provider_job_id)
        return _named(name, box.status(job))

    def _cancel(self, provider_job_id: str) -> ProviderStatus:
        name, box, job = self._split(provider_job_id)
        return _named(name, box.cancel(job))

    def _health(self) -> TargetHealth:
        # Asked side by side, so a decision waits for the slowest box, not their sum; a box that just failed its
        # check is taken as down until DOWN_RECHECK_S has passed, so a dead box doesn't cost every decision its
        # timeout (its attempts end `agent_lost` on their own bound).
        now = self._clock()
        current = self._boxes
        asked = {name: self._pool.submit(box.health) for name, box in current.items()
                 if name not in self._down_since or now - self._down_since[name][0] >= self._down_recheck_s}
        answers: list[TargetHealth] = []
        for name in current:
            if name not in asked:
                answers.append(self._down_since[name][1])
                continue
            health = asked[name].result()
            if health.up:
                self._down_since.pop(name, None)
            else:
                self._down_since[name] = (now, health)
            answers.append(health)
        boxes = tuple(answers)
        if not boxes:
            return TargetHealth(name=FLEET_TARGET, up=False, detail="no GPU box has registered")
        return TargetHealth(name=FLEET_TARGET, up=any(b.up for b in boxes),
                            queue_wait_s=min((b.queue_wait_s for b in boxes if b.up), default=0.0),
                            detail=", ".join(f"{b.name}: {'up' if b.up else 'down'}" for b in boxes), boxes=boxes)

    def _split(self, provider_job_id: str) -> tuple[str, VideoProvider, str]:
        name, _, job = provider_job_id.partition("/")
        box = self._boxes.get(name)
        if box is None or not job:
            raise Rejected(f"job {provider_job_id!r} names no box of this fleet")
        return name, box, job


def _named(box: str, status: ProviderStatus) -> ProviderStatus:
    return dataclasses.replace(status, provider_job_id=f"{box}/{status.provider_job_id}")
