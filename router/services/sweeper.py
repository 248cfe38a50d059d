"""The sweeper: every job that has gone quiet gets the message that moves it on.

It decides nothing itself. A job past its deadline, or stuck in a state longer than that state's timeout, gets a
`route` or `poll` message and the worker (whose every step is idempotent) does the rest; a terminal job that was
never announced is announced, and one that left an attempt to settle (router.services.settle) has it asked about
again. Timeouts are in production seconds, divided by the time scale locally.

An attempt's chain of delayed messages records when its next one is due (`Attempt.poll_due_at`). While that can't
have been lost (poll_chain.chain_alive) the sweeper sends nothing, so a dead target's polls back off instead of
multiplying; past it, the sweeper's poll starts a new chain, which supersedes the old one.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from router.models.common import ProviderKind
from router.models.job import Attempt, AttemptStatus, Job, JobStatus
from router.providers.errors import ProviderError
from router.services import agents, circuits, lifecycle, money, route
from router.services.deps import Deps
from router.services.poll_chain import UNREACHABLE_FLOOR_S, chain_alive
from router.services.reconcile import ReconciliationReport, daily_reconcile
from router.store.errors import StoreUnavailable
from router.store.messages import MessageKind, WorkerMessage

ROUTE_TIMEOUT_S = 60.0  # accepted/routed without progress: the route message was lost or is failing
SUBMIT_TIMEOUT_S = 120.0  # an attempt stuck `submitting`: the worker died mid-call; reconcile
POLL_TIMEOUT_S = 1800.0  # submitted/running, no write this long, and no due time recorded (older attempts)
ANNOUNCE_TIMEOUT_S = 60.0


@dataclass
class SweepReport:
    looked_at: int = 0
    nudged: dict[str, int] = field(default_factory=dict)

    def count(self, action: str) -> None:
        self.nudged[action] = self.nudged.get(action, 0) + 1


# Actions that rescue a message that may have been lost, as opposed to events (a deadline passed, a box lost, an
# ending never announced) that need a message of their own whatever the queue holds.
RESCUES = frozenset({"route", "reconcile", "poll", "settle"})

# Wall seconds of a sweep spent routing a lost box's jobs itself; the rest go by message. The sweep has a minute.
LOST_ROUTE_BUDGET_S = 20.0

logger = logging.getLogger(__name__)

RESERVATION_REAP_S = 900.0  # a reservation this old whose attempt has ended was left by a crash


def sweep(deps: Deps) -> SweepReport:
    now = deps.clock()
    report = SweepReport()
    reaped = money.release_stale(deps, now - timedelta(seconds=_wall(RESERVATION_REAP_S, deps.time_scale)))
    if reaped:
        report.nudged["reservations_released"] = reaped
    rolled = money.roll_over(deps, now)
    if rolled:
        report.nudged["budgets_rolled_over"] = rolled
    scale = deps.time_scale
    # A box whose heartbeats stopped holds nothing: each attempt on it gets a poll now, whatever its chain's pace
    # (a deep queue is polled rarely), and that poll ends it `agent_lost` unless the box answers after all.
    lost = frozenset(agents.lost(deps)) if ProviderKind.LOCAL in deps.providers else frozenset()
    probes: dict[str, ProviderError | None] = {}
    route_until = time.monotonic() + LOST_ROUTE_BUDGET_S
    # While the queue holds messages not yet taken, a quiet job's message is more likely waiting there than lost:
    # a rescue sent now would only queue behind it and lengthen the wait for everyone (a saturated embedded stack
    # once drew 1,276 route nudges for 300 jobs). Rescues wait for the backlog to clear; events don't.
    backlog = deps.queue.backlog()
    # Only a pre-filter: a chain's due time (chain_alive) and each state's timeout (_action) decide.
    quiet_since = now - timedelta(seconds=min(ROUTE_TIMEOUT_S, SUBMIT_TIMEOUT_S, ANNOUNCE_TIMEOUT_S) / scale)
    for job in deps.jobs.open_jobs(updated_before=quiet_since):
        report.looked_at += 1
        action = _action(job, now, scale, lost)
        if action is None:
            continue
        if backlog and action in RESCUES:
            report.count("held_for_backlog")
            continue
        # Routed here while the sweep's budget lasts (fallback at once: a box holds few jobs as a rule); past it,
        # by message, so a box that held hundreds can't run the sweep past its minute.
        next_hop = route.route_next if time.monotonic() < route_until else route.queue_route
        try:
            _act(job, action, deps, probes, next_hop)
        except StoreUnavailable as exc:
            # One job's write or send failing (throttled past botocore's retries) mustn't cost every job after it
            # this sweep: under AWS chaos, 35 of 92 sweeps ended at their first such error. The next sweep retries.
            logger.warning("sweep: %s on %s failed: %s", action, job.id, exc)
            report.count("failed")
            continue
        report.count(action)
    return report


def _act(job: Job, action: str, deps: Deps, probes: dict[str, ProviderError | None],
         next_hop: route.NextHop) -> None:
    if action == "announce":
        lifecycle.announce(job, deps)
        return
    attempt = job.current_attempt
    if action == "lost_box" and attempt is not None and _end_lost(job, attempt, deps, probes, next_hop):
        return
    if action in ("poll", "settle", "lost_box") and attempt is not None:
        # Outside any chain: the worker starts one only where none is alive (poll_chain.hint_chain).
        deps.queue.send(WorkerMessage(kind=MessageKind.POLL, tenant=job.tenant, job_id=job.id, attempt_id=attempt.id))
    else:
        # A submit retry chain's messages carry `submit_tries`; a route below it is dropped as superseded.
        deps.queue.send(WorkerMessage(kind=MessageKind.ROUTE, tenant=job.tenant, job_id=job.id,
                                      poll_n=attempt.submit_tries if attempt else 0))


def _end_lost(job: Job, attempt: Attempt, deps: Deps, probes: dict[str, ProviderError | None],
              next_hop: route.NextHop) -> bool:
    """End an attempt on a box that missed its heartbeats here, if the box doesn't answer either, and route its
    fallback by `next_hop`. Ending it by message instead would wait behind any backlog (a 300-job fleet run's lost
    attempts ended a median 70 s after the kill, against a 15 s heartbeat window). One status call asks for the
    whole box: a box that answers is back, and its attempts get polls; one that doesn't is asked nothing more this
    sweep (a black-holed tunnel costs its timeout once, not once per attempt)."""
    provider, ref = deps.providers[ProviderKind.LOCAL], attempt.provider_job_id
    if ref is None:
        return False  # still submitting: its poll reconciles it (route.gave_up ends it there if nothing answers)
    if attempt.target not in probes:
        try:
            circuits.ask(deps, attempt.target, lambda: provider.status(ref))
            probes[attempt.target] = None
        except ProviderError as exc:
            probes[attempt.target] = exc
    silence = probes[attempt.target]
    return silence is not None and route.gave_up(job, attempt, deps, silence, next_hop=next_hop)


def _action(job: Job, now: datetime, scale: float, lost_boxes: frozenset[str] = frozenset()) -> str | None:
    quiet_s = (now - job.updated_at).total_seconds()  # wall seconds

    def quiet_for(timeout_s: float) -> bool:
        return quiet_s >= _wall(timeout_s, scale)

    attempt = job.current_attempt
    if job.status.terminal:
        if not job.notified and quiet_for(ANNOUNCE_TIMEOUT_S):
            return "announce"
        unsettled = attempt is not None and attempt.awaits_settling
        return "settle" if unsettled else None
    if job.deadline is not None and now > job.deadline:
        return "expire"  # any message makes the worker expire it first
    if job.status in (JobStatus.ACCEPTED, JobStatus.ROUTED):
        if attempt is not None and attempt.status is AttemptStatus.SUBMITTING:
            if chain_alive(attempt, now, scale):
                return None
            return "reconcile" if quiet_for(SUBMIT_TIMEOUT_S) else None
        return "route" if quiet_for(ROUTE_TIMEOUT_S) else None
    if attempt is not None and attempt.provider is ProviderKind.LOCAL and attempt.target in lost_boxes:
        return "lost_box"
    if attempt is not None and attempt.poll_due_at is not None:
        return None if chain_alive(attempt, now, scale) else "poll"
    return "poll" if quiet_for(POLL_TIMEOUT_S) else None


def _wall(timeout_s: float, scale: float) -> float:
    """A timeout in production seconds as wall seconds: scaled locally, but never under the real-time floor. A queue
    lags in wall seconds whatever the time scale, and a nudge sent into a lagging queue only lengthens it (a saturated
    embedded stack at 4,000x once re-routed every accepted job each sweep, 15 ms after it was queued)."""
    return max(UNREACHABLE_FLOOR_S, timeout_s / scale)


# The daily task shares the sweeper's 60 s timeout: reconciliation stops asking providers after this long and says
# how many rows it left unchecked (they are checked by hand with `hvr reconcile`).
RECONCILE_BUDGET_S = 40.0


@dataclass
class DailyReport:
    drift: list[money.Drift]
    reconciliation: ReconciliationReport


def daily(deps: Deps) -> DailyReport:
    """Once a day: every budget's spend counter checked against the ledger, and yesterday's ledger against the
    providers' own records (router.services.reconcile); what either finds is logged and alerted."""
    drift = money.report_drift(deps, deps.clock())
    return DailyReport(drift=drift, reconciliation=daily_reconcile(deps, budget_s=RECONCILE_BUDGET_S))
