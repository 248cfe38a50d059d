"""Stopping an attempt whose job ends early (cancelled, expired), and billing what the provider says it ran.

A charge is only ever what the provider reports. When it can't be asked at that moment — the submit's answer was
lost and it can't look jobs up by our attempt id (RunPod, Veo), the target doesn't answer, or the job can't be
cancelled and is still rendering (Veo) — the job still ends, but the attempt stays open with `settle_as` set and its
budget hold kept. A late webhook naming the attempt, or the sweeper's next nudge, then stops it at the provider and
bills it; past LATE_SETTLE_S it is closed with nothing billed and the reason said (docs/decisions.md, 2026-12-04).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from router.models.job import Attempt, AttemptStatus, Job
from router.models.outcome import NOTHING_BILLED, AttemptCode, AttemptOutcome, AttemptReason, Billed
from router.providers.base import ProviderState, ProviderStatus
from router.providers.errors import ProviderError, Rejected
from router.services import circuits
from router.services.billing import record_ledger
from router.services.deps import Deps
from router.services.poll_chain import UNREACHABLE_FLOOR_S
from router.store.messages import WorkerMessage

# RunPod keeps a finished job's result 30 minutes, so a webhook later than that can't be confirmed anyway.
LATE_SETTLE_S = 1800.0


@dataclass(frozen=True)
class Stopped:
    billed: Billed
    actual: Decimal
    provider_job_id: str | None


def stop(job: Job, attempt: Attempt, deps: Deps, outcome: AttemptOutcome,
         provider_job_id: str | None = None) -> Stopped | None:
    """Stop the attempt at its provider and write its ledger row with what the provider reports it ran. None when
    the provider can't say now; nothing is billed then, and the attempt is to be kept open (`close_or_hold`)."""
    provider = deps.providers.get(attempt.provider)
    if provider is None:  # its adapter is gone from this deployment: nobody can be asked, now or later
        return _bill(job, attempt, deps, outcome, None, None)
    ref = attempt.provider_job_id or provider_job_id
    try:
        if ref is None:
            # Unsent: the last submit provably created nothing. Else a provider that can search by our id says.
            found = None if attempt.unsent else circuits.ask(deps, attempt.target, lambda: provider.lookup(attempt.id))
            if found is None:
                return _bill(job, attempt, deps, outcome, None, None)
            ref, status = found.provider_job_id, found
        else:
            job_ref = ref
            status = circuits.ask(deps, attempt.target, lambda: provider.status(job_ref))
        if not status.state.ended:
            job_ref = ref
            with contextlib.suppress(Rejected):  # it can't be cancelled (Veo): it runs on, and is billed when it ends
                status = circuits.ask(deps, attempt.target, lambda: provider.cancel(job_ref))
    except ProviderError:
        return None
    if not status.state.ended:
        return None
    return _bill(job, attempt, deps, outcome, status, ref)


def close_or_hold(attempt: Attempt, stopped: Stopped | None, now: datetime, outcome: AttemptOutcome,
                  reason: AttemptReason) -> None:
    """Inside the write that ends the job: close the attempt with what was billed, or keep it open to settle."""
    if stopped is not None:
        attempt.close(now, AttemptStatus.CANCELLED, reason, stopped.billed, stopped.actual)
        attempt.provider_job_id = attempt.provider_job_id or stopped.provider_job_id
        return
    attempt.settle_as = outcome
    attempt.reason = AttemptReason(reason.code, f"{reason.detail}; what the provider ran is not known yet: "
                                                "billed when it answers")


def close_or_hold_current(draft: Job, stopped_id: str | None, stopped: Stopped | None, now: datetime,
                          outcome: AttemptOutcome, reason: AttemptReason) -> None:
    """Inside the write that ends the job: its open attempt, whichever it is now, closed with what was billed or
    kept open to settle. One a fall-back started after the job was read (not the one `stopped_id` names, which was
    stopped) is kept open too, so `settle_late` stops and bills it; it was once left running at its provider,
    unbilled, on a job already ended, and its budget hold reaped."""
    current = draft.current_attempt
    if current is not None and not current.status.ended:
        close_or_hold(current, stopped if current.id == stopped_id else None, now, outcome, reason)


def settle_late(job: Job, message: WorkerMessage, deps: Deps) -> None:
    """A terminal job's open attempt (`settle_as`), on a webhook's hint or the sweeper's nudge: stop it and bill it,
    or, past LATE_SETTLE_S since the job ended, close it with nothing billed."""
    attempt = job.attempt(message.attempt_id or "")
    if attempt is None or attempt.status.ended or attempt.settle_as is None:
        return
    outcome = attempt.settle_as
    code = AttemptCode(outcome.value)  # only a cancel or an expiry leaves an attempt to settle
    stopped = stop(job, attempt, deps, outcome, provider_job_id=message.provider_job_id)
    reason = AttemptReason(code, "stopped at the provider after the job ended; billed what it reports")
    if stopped is None:
        # Nothing writes a terminal job until its attempt settles, so `updated_at` is when it ended.
        waited = (deps.clock() - job.updated_at).total_seconds()
        if waited < max(UNREACHABLE_FLOOR_S, LATE_SETTLE_S / deps.time_scale):
            return  # the sweeper asks again
        stopped = _bill(job, attempt, deps, outcome, None, None)
        reason = AttemptReason(code, f"the provider never said what this ran within {waited:.0f} s of the job's "
                                     "end; nothing billed")

    def close(draft: Job) -> bool:
        current = draft.attempt(attempt.id)
        if current is None or current.status.ended:
            return False
        close_or_hold(current, stopped, deps.clock(), outcome, reason)
        draft.cost.actual_usd = draft.total_actual()
        if draft.cancel is not None and draft.current_attempt is current:
            draft.cancel.billed = stopped.actual > 0
        return True

    deps.jobs.amend(job.tenant, job.id, close)


def _bill(job: Job, attempt: Attempt, deps: Deps, outcome: AttemptOutcome, status: ProviderStatus | None,
          ref: str | None) -> Stopped:
    billed = status.billed if status is not None else NOTHING_BILLED
    named = attempt.model_copy(update={"provider_job_id": attempt.provider_job_id or ref})
    actual = record_ledger(job, named, deps, outcome, billed, None,
                           provider_cost=status.cost_usd if status is not None else None,
                           rendered=status is not None and status.state is ProviderState.SUCCEEDED)
    return Stopped(billed, actual, ref)
