"""Reconciling the ledger with the providers' own records: what each attempt's provider says it billed, against the
units its ledger row recorded (docs/architecture.md, "Money").

Every ledger row whose attempt ended in the window is asked about again: by its provider job id, or, where the row
has none (a submit whose answer was lost), by our attempt id where the provider can search by it. The figure
compared is the one the row was billed on: GPU-seconds (Replicate `metrics.predict_time`, RunPod `executionTime`,
the agent's `gpu_seconds`) or, for Veo, output seconds of a delivered video. A run finds:

- `mismatch`: the provider's figure (or, where it states one, its charge) is off the row's beyond the tolerance;
- `not_run`: the provider says it has no job for the attempt (lookup finds none where the row charged something, or
  it denies a job id that its records are said to keep);
- `missing_in_ledger`: the provider ran an attempt the ledger charges nothing for: a row recorded `submit_unknown`
  whose job the provider does have, or an ended job's attempt with no row at all (found from the jobs store).

A provider that can't be asked now is counted `unreachable`, never a finding; a row whose provider record is gone is
counted `expired_at_provider`. Findings are stored once per attempt and kind (`deps.findings`), and the ones stored
for the first time go out in one alert per run.

How long the providers keep a finished job's record (docs/providers.md): RunPod keeps a `/run` result 30 minutes
(`ttl` may delete it sooner) and then answers 404, so RunPod rows can only be checked within half an hour of their
end and a daily run counts them expired. Replicate deletes an API prediction's input, output and logs after an hour;
the docs don't say the record with its `metrics` goes, and hvr takes it to stay (unconfirmed: a removed prediction
without `predict_time` is counted expired). Google documents no retention for Veo operations, and the only figure a
done operation gives is the length asked for; one it no longer finds is counted expired, not `not_run`. The GPU agent
keeps its jobs in SQLite for good.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from enum import Enum

from router.models.common import ProviderKind, iso, money
from router.models.job import Attempt, Job, JobStatus
from router.models.ledger import LedgerEntry
from router.models.outcome import AttemptOutcome
from router.models.reconciliation import (
    FindingKind,
    ReconciliationCounts,
    ReconciliationFinding,
    ReconciliationReport,
    Tolerance,
)
from router.models.request import MAX_DEADLINE_S
from router.providers.base import ProviderState, ProviderStatus, VideoProvider
from router.providers.errors import NotFound, OutcomeUnknown, ProviderError
from router.services.costs import periods
from router.services.deps import Deps
from router.store.protocols import JobStore

logger = logging.getLogger(__name__)

DEFAULT_TOLERANCE = Tolerance()
GPU_SECONDS, OUTPUT_SECONDS = "gpu_seconds", "output_seconds"
# Seconds a provider keeps a finished job's record after it ends, where its docs say (RunPod: /run results 30 min).
RECORD_KEPT_S: dict[ProviderKind, float] = {ProviderKind.RUNPOD: 1800.0}
# Providers whose "no such job" for an id they gave us means the record is gone, not that the job never ran: RunPod
# (retention above), Veo (no retention documented).
GONE_WHEN_NOT_FOUND = frozenset({ProviderKind.RUNPOD, ProviderKind.VEO})
# A job that ended in the window was created at most its longest deadline before (plus a late settle).
JOB_LOOKBACK = timedelta(seconds=MAX_DEADLINE_S) + timedelta(days=1)
ENDED = (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED, JobStatus.EXPIRED)
ALERT_LISTS = 50  # findings listed in one alert; the count says how many more
_PRICED_UNITS = {"gpu_second": GPU_SECONDS, "output_second": OUTPUT_SECONDS}


def unit_of(provider: ProviderKind) -> str:
    """The billed unit a provider's record can be checked on: Veo bills output seconds, the others GPU time."""
    return OUTPUT_SECONDS if provider is ProviderKind.VEO else GPU_SECONDS


def daily_reconcile(deps: Deps, *, budget_s: float | None = None) -> ReconciliationReport:
    """Yesterday (UTC), for the sweeper's daily task (`budget_s`: as for reconcile, to stay inside its timeout)."""
    today = deps.clock().astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return reconcile(deps, today - timedelta(days=1), today, budget_s=budget_s)


def reconcile(deps: Deps, start: datetime, end: datetime, tolerance: Tolerance = DEFAULT_TOLERANCE, *,
              budget_s: float | None = None) -> ReconciliationReport:
    """Check every ledger row whose attempt ended in [start, end), and the ended jobs' attempts that have none.

    `budget_s` bounds the run's wall time (an API call has a Lambda's seconds): rows left are counted
    `not_checked` and the report says it is not complete."""
    if start.tzinfo is None or end.tzinfo is None:
        raise ValueError("start and end must be timezone-aware (UTC)")
    if end <= start:
        raise ValueError(f"the window [{iso(start)}, {iso(end)}) is empty")
    run = _Run(deps, tolerance, deps.clock(), None if budget_s is None else time.monotonic() + budget_s)
    first, last = start.astimezone(UTC).date(), (end - timedelta.resolution).astimezone(UTC).date()
    month_rows = [row for period in periods(first, last) for row in deps.ledger.for_period(period)]
    rows = sorted((row for row in month_rows if start <= row.ended_at < end), key=lambda r: (r.ended_at, r.attempt_id))
    for row in rows:
        run.check_row(row)
    # Tenants with a row in the window's months; one whose every attempt is missing from the ledger can't be found.
    tenants = sorted({row.tenant for row in month_rows})
    run.check_jobs(tenants, {row.attempt_id for row in rows}, start, end)
    if run.new:
        _alert(deps, run.new, start, end, run.now)
    return ReconciliationReport(start=start, end=end, ran_at=run.now, complete=run.counts.not_checked == 0,
                                tolerance=tolerance, counts=run.counts, new_findings=len(run.new),
                                findings=run.findings)


class _Run:
    def __init__(self, deps: Deps, tolerance: Tolerance, now: datetime, deadline: float | None) -> None:
        self.deps, self.tolerance, self.now, self.deadline = deps, tolerance, now, deadline
        self.counts = ReconciliationCounts()
        self.findings: list[ReconciliationFinding] = []
        self.new: list[ReconciliationFinding] = []

    def out_of_time(self) -> bool:
        if self.deadline is not None and time.monotonic() >= self.deadline:
            self.counts.not_checked += 1
            return True
        return False

    # --- ledger rows ---------------------------------------------------------------------------------------------

    def check_row(self, row: LedgerEntry) -> None:
        self.counts.rows += 1
        if self.out_of_time():
            return
        provider = self.deps.providers.get(row.provider)
        if provider is None:
            self.counts.not_configured += 1
            return
        kept_s = RECORD_KEPT_S.get(row.provider)
        if row.provider_job_id and kept_s is not None and (self.now - row.ended_at).total_seconds() > kept_s:
            self.counts.expired_at_provider += 1  # asking would only get the 404 of a deleted job
            return
        unit = unit_of(row.provider)
        ours = ledger_units(row, unit)
        status = self.answer(provider, row.provider_job_id, row.attempt_id)
        if status is UNASKED:
            return
        if status is None:
            if row.provider_job_id or ours > 0 or row.actual_usd > 0:
                named = f"job {row.provider_job_id}" if row.provider_job_id else "a job for this attempt"
                self.found(row, FindingKind.NOT_RUN, unit, ours, None, None, None,
                           f"the ledger charges {row.actual_usd:.4f} USD for {ours:.3f} {unit}; {row.provider.value} "
                           f"has no {named}")
            else:
                self.counts.matched += 1  # nothing ran, nothing charged
            return
        theirs = provider_units(status, unit)
        if theirs is None:
            self.counts.expired_at_provider += 1
            return
        usd = provider_usd(row, status, unit, theirs)
        if row.outcome is AttemptOutcome.SUBMIT_UNKNOWN and ran(status, theirs):
            self.found(row, FindingKind.MISSING_IN_LEDGER, unit, ours, theirs, usd, status.provider_job_id,
                       f"the ledger recorded submit_unknown (nothing known to have run); {row.provider.value} ran it "
                       f"as {status.provider_job_id} ({status.state.value}, {theirs:.3f} {unit})")
            return
        problems = []
        if not self.tolerance.within(ours, theirs, Decimal(str(self.tolerance.absolute_s))):
            problems.append(f"the ledger has {ours:.3f} {unit}, {row.provider.value} reports {theirs:.3f}"
                            f"{_change(ours, theirs)}")
        if status.cost_usd is not None and row.outcome is not AttemptOutcome.CONTENT_FILTERED and \
                not self.tolerance.within(row.actual_usd, money(status.cost_usd), self.tolerance.absolute_usd):
            problems.append(f"the ledger charges {row.actual_usd:.4f} USD, {row.provider.value} states "
                            f"{money(status.cost_usd):.4f}")
        if not problems:
            self.counts.matched += 1
            return
        if not status.state.ended:
            problems.append(f"the provider's job is still {status.state.value}")
        self.found(row, FindingKind.MISMATCH, unit, ours, theirs, usd, status.provider_job_id, "; ".join(problems))

    # --- attempts with no ledger row -----------------------------------------------------------------------------

    def check_jobs(self, tenants: list[str], recorded: set[str], start: datetime, end: datetime) -> None:
        since = start - JOB_LOOKBACK if start - datetime.min.replace(tzinfo=UTC) > JOB_LOOKBACK else start
        for tenant in tenants:
            for job in ended_jobs(self.deps.jobs, tenant, since):
                attempts = [a for a in job.attempts if start <= (a.ended_at or job.updated_at) < end]
                if not attempts:
                    continue
                self.counts.jobs += 1
                unrecorded = [a for a in attempts if a.id not in recorded]
                if not unrecorded:
                    continue
                # Its row may lie outside the window (written just before or after the attempt's end): ask the job.
                rows = {row.attempt_id for row in self.deps.ledger.for_job(tenant, job.id)}
                for attempt in unrecorded:
                    if attempt.id in rows:
                        continue
                    if attempt.awaits_settling:
                        self.counts.unsettled += 1  # the settle writes its row once the provider answers
                    elif attempt.status.ended:
                        self.check_attempt(job, attempt)

    def check_attempt(self, job: Job, attempt: Attempt) -> None:
        if attempt.provider_job_id is None and attempt.unsent:
            return  # its last submit provably created nothing, so nothing can have run
        if self.out_of_time():
            return
        provider = self.deps.providers.get(attempt.provider)
        if provider is None:
            self.counts.not_configured += 1
            return
        unit = unit_of(attempt.provider)
        status = self.answer(provider, attempt.provider_job_id, attempt.id)
        if status is UNASKED:
            return
        if status is None:
            return  # no row and no job: consistent
        theirs = provider_units(status, unit)
        if theirs is None:
            self.counts.expired_at_provider += 1
            return
        if not ran(status, theirs):
            return
        usd = money(status.cost_usd) if status.cost_usd is not None else None
        self.add(ReconciliationFinding(
            attempt_id=attempt.id, tenant=job.tenant, job_id=job.id, provider=attempt.provider, offer=attempt.offer,
            kind=FindingKind.MISSING_IN_LEDGER, unit=unit, ledger_units=Decimal("0.000"), provider_units=theirs,
            ledger_usd=Decimal("0.0000"), provider_usd=usd, provider_job_id=status.provider_job_id,
            detail=f"the job ended {job.status.value} with no ledger row for this attempt; {attempt.provider.value} "
                   f"ran it as {status.provider_job_id} ({status.state.value}, {theirs:.3f} {unit})",
            ended_at=attempt.ended_at or job.updated_at, found_at=self.now))

    # --- asking and recording ------------------------------------------------------------------------------------

    def answer(self, provider: VideoProvider, provider_job_id: str | None,
               attempt_id: str) -> ProviderStatus | _Unasked | None:
        """What the provider says of an attempt now (None: no such job), or UNASKED, counted by why: its record is
        gone, it can't look our attempt up, or it can't be asked now."""
        try:
            return self.ask(provider, provider_job_id, attempt_id)
        except _Gone:
            self.counts.expired_at_provider += 1
        except _NoLookup:
            self.counts.no_lookup += 1
        except ProviderError as exc:
            logger.warning("reconcile: %s can't be asked about %s now: %s", provider.kind.value, attempt_id, exc)
            self.counts.unreachable += 1
        return UNASKED

    def ask(self, provider: VideoProvider, provider_job_id: str | None, attempt_id: str) -> ProviderStatus | None:
        """The provider's record of the job (None: it says there is none), or _Gone / _NoLookup / ProviderError."""
        try:
            if provider_job_id:
                return provider.status(provider_job_id)
            return provider.lookup(attempt_id)
        except NotFound as exc:
            if provider.kind in GONE_WHEN_NOT_FOUND:
                raise _Gone(str(exc)) from exc
            return None
        except OutcomeUnknown as exc:
            if provider_job_id is None:  # only a lookup raises it: the provider can't tell which job is ours
                raise _NoLookup(str(exc)) from exc
            raise

    def found(self, row: LedgerEntry, kind: FindingKind, unit: str, ours: Decimal, theirs: Decimal | None,
              usd: Decimal | None, provider_job_id: str | None, detail: str) -> None:
        self.add(ReconciliationFinding(
            attempt_id=row.attempt_id, tenant=row.tenant, job_id=row.job_id, provider=row.provider, offer=row.offer,
            kind=kind, unit=unit, ledger_units=ours, provider_units=theirs, ledger_usd=row.actual_usd,
            provider_usd=usd, provider_job_id=provider_job_id or row.provider_job_id, detail=detail,
            ended_at=row.ended_at, found_at=self.now))

    def add(self, finding: ReconciliationFinding) -> None:
        setattr(self.counts, finding.kind.value, getattr(self.counts, finding.kind.value) + 1)
        self.findings.append(finding)
        if self.deps.findings.add(finding):
            self.new.append(finding)


class _Unasked(Enum):
    UNASKED = "unasked"


UNASKED = _Unasked.UNASKED


class _Gone(ProviderError):
    """The provider no longer keeps the job's record."""


class _NoLookup(ProviderError):
    """The row names no provider job and the provider can't find one by our attempt id."""


def ended_jobs(jobs: JobStore, tenant: str, created_since: datetime) -> Iterator[Job]:
    """A tenant's ended jobs (rejected ones never ran anything) created since then, newest first per status."""
    for status in ENDED:
        cursor = None
        while True:
            page, cursor = jobs.list(tenant, status=status, limit=100, cursor=cursor)
            old = False
            for job in page:
                if job.created_at < created_since:
                    old = True
                    break
                yield job
            if old or cursor is None:
                break


def ledger_units(row: LedgerEntry, unit: str) -> Decimal:
    """The row's billed figure in `unit`. A row keeps the delivered length even where nothing was delivered; only a
    delivered video's output seconds are billed."""
    value = row.billed_units.get(unit, Decimal(0))
    if unit == OUTPUT_SECONDS and not delivered(row):
        return Decimal("0.000")
    return value


def delivered(row: LedgerEntry) -> bool:
    return row.outcome is AttemptOutcome.SUCCEEDED or (row.unit in ("output_second", "video") and row.actual_usd > 0)


def provider_units(status: ProviderStatus, unit: str) -> Decimal | None:
    """The provider's figure in `unit`; 0 where it reports nothing billed, None where its record has lost it."""
    value = status.billed.gpu_seconds if unit == GPU_SECONDS else status.billed.output_seconds
    if value is None:
        # RunPod answers 404 for a deleted job (the adapter reads it as `expired: …`); Replicate's removed data.
        return None if "expired" in (status.error or "").lower() else Decimal("0.000")
    return Decimal(f"{value:.3f}")


def provider_usd(row: LedgerEntry, status: ProviderStatus, unit: str, units: Decimal) -> Decimal | None:
    """What the provider's record comes to: its own stated charge (RunPod `cost`), else its units at the row's unit
    price where the row was priced on that unit."""
    if status.cost_usd is not None:
        return money(status.cost_usd)
    if _PRICED_UNITS.get(row.unit) == unit:
        return money(row.unit_price_usd * units)
    return None


def ran(status: ProviderStatus, units: Decimal) -> bool:
    """Whether the provider's record shows a job that ran (or runs still), so that it bills."""
    return status.state is ProviderState.SUCCEEDED or not status.state.ended or units > 0 or bool(status.cost_usd)


def _change(ours: Decimal, theirs: Decimal) -> str:
    return f" ({(theirs - ours) / ours:+.1%})" if ours else ""


def _alert(deps: Deps, new: list[ReconciliationFinding], start: datetime, end: datetime, now: datetime) -> None:
    """One alert per run for the findings stored for the first time: a finding is never alerted twice."""
    kinds = {kind.value: sum(f.kind is kind for f in new) for kind in FindingKind}
    message = {"type": "reconciliation.findings", "from": iso(start), "to": iso(end), "at": iso(now),
               "count": len(new), "kinds": {k: n for k, n in kinds.items() if n},
               "findings": [f.model_dump(mode="json") for f in new[:ALERT_LISTS]],
               "more": max(0, len(new) - ALERT_LISTS)}
    logger.warning("reconciliation %s to %s: %d new finding(s) %s", iso(start), iso(end), len(new), message["kinds"])
    deps.alerts.publish(json.dumps(message), subject=f"hvr reconciliation: {len(new)} new finding(s)")
