"""The sweeper: every job that has gone quiet gets the message that moves it on.

It decides nothing itself. A job past its deadline, or stuck in a state longer than that state's timeout, gets a
`route` or `poll` message and the worker (whose every step is idempotent) does the rest; a terminal job that was
never announced is announced. Timeouts are in production seconds, divided by the time scale locally.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from router.models.job import AttemptStatus, Job, JobStatus
from router.services import lifecycle, money
from router.services.deps import Deps
from router.store.messages import MessageKind, WorkerMessage

ROUTE_TIMEOUT_S = 60.0  # accepted/routed without progress: the route message was lost or is failing
SUBMIT_TIMEOUT_S = 120.0  # an attempt stuck `submitting`: the worker died mid-call; reconcile
POLL_TIMEOUT_S = 1800.0  # submitted/running with no write for longer than the poll chain's heartbeat
ANNOUNCE_TIMEOUT_S = 60.0


@dataclass
class SweepReport:
    looked_at: int = 0
    nudged: dict[str, int] = field(default_factory=dict)

    def count(self, action: str) -> None:
        self.nudged[action] = self.nudged.get(action, 0) + 1


RESERVATION_REAP_S = 900.0  # a reservation this old whose attempt has ended was left by a crash


def sweep(deps: Deps) -> SweepReport:
    now = deps.clock()
    report = SweepReport()
    reaped = money.release_stale(deps, now - timedelta(seconds=RESERVATION_REAP_S / deps.time_scale))
    if reaped:
        report.nudged["reservations_released"] = reaped
    rolled = money.roll_over(deps, now)
    if rolled:
        report.nudged["budgets_rolled_over"] = rolled
    scale = deps.time_scale
    quiet_since = now - timedelta(seconds=min(ROUTE_TIMEOUT_S, SUBMIT_TIMEOUT_S, ANNOUNCE_TIMEOUT_S) / scale)
    for job in deps.jobs.open_jobs(updated_before=quiet_since):
        report.looked_at += 1
        action = _action(job, now, scale)
        if action is None:
            continue
        report.count(action)
        if action == "announce":
            lifecycle.announce(job, deps)
            continue
        kind = MessageKind.POLL if action == "poll" else MessageKind.ROUTE
        attempt = job.current_attempt
        deps.queue.send(WorkerMessage(kind=kind, tenant=job.tenant, job_id=job.id,
                                      attempt_id=attempt.id if attempt and kind is MessageKind.POLL else None))
    return report


def _action(job: Job, now: datetime, scale: float) -> str | None:
    quiet_s = (now - job.updated_at).total_seconds() * scale
    if job.status.terminal:
        return "announce" if not job.notified and quiet_s >= ANNOUNCE_TIMEOUT_S else None
    if job.deadline is not None and now > job.deadline:
        return "expire"  # any message makes the worker expire it first
    attempt = job.current_attempt
    if job.status in (JobStatus.ACCEPTED, JobStatus.ROUTED):
        if attempt is not None and attempt.status is AttemptStatus.SUBMITTING:
            return "reconcile" if quiet_s >= SUBMIT_TIMEOUT_S else None
        return "route" if quiet_s >= ROUTE_TIMEOUT_S else None
    return "poll" if quiet_s >= POLL_TIMEOUT_S else None
