"""Reconciliation on the stores' in-memory twins (tests/twins.py): ledger rows and ended jobs written as the worker
would leave them, and a provider whose records a test scripts — what it billed, what it no longer has, whether it
answers at all."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from router.models.common import ProviderKind
from router.models.decision import DeliveredSpec
from router.models.job import Attempt, AttemptStatus, Job, JobStatus
from router.models.ledger import LedgerEntry
from router.models.outcome import AttemptOutcome, Billed
from router.models.reconciliation import FindingKind, ReconciliationReport, Tolerance
from router.models.request import VideoRequest
from router.providers.base import ProviderState, ProviderStatus, Submission, TargetHealth, VideoProvider
from router.providers.errors import NotFound, OutcomeUnknown, Unavailable
from router.services.reconcile import DEFAULT_TOLERANCE, daily_reconcile, reconcile
from router.services.sweeper import daily
from tests.twins import Twins, twins

NOW = datetime(2026, 3, 15, 9, 0, tzinfo=UTC)
DAY = datetime(2026, 3, 14, tzinfo=UTC)  # the window: the day before NOW
ENDED = DAY + timedelta(hours=12)
SPEC = DeliveredSpec(width=832, height=480, frames=81, fps=16.0)
PRICE = Decimal("0.0014000000")  # USD per GPU-second


class Records(VideoProvider):
    """A provider's records as a test scripts them: `jobs` by provider job id, `found` by our attempt id."""

    def __init__(self, kind: ProviderKind, jobs: dict[str, ProviderStatus] | None = None,
                 found: dict[str, ProviderStatus] | None = None, *, lookup: bool = True) -> None:
        self.kind = kind
        self.jobs, self.found = jobs or {}, found or {}
        self.can_lookup, self.down = lookup, False
        self.asked: list[str] = []

    @property
    def target_name(self) -> str:
        return self.kind.value

    def _status(self, provider_job_id: str) -> ProviderStatus:
        self.asked.append(provider_job_id)
        if self.down:
            raise Unavailable("connect failed: the sandbox is off")
        if provider_job_id not in self.jobs:
            raise NotFound(f"HTTP 404: no job {provider_job_id}")
        return self.jobs[provider_job_id]

    def _lookup(self, attempt_id: str) -> ProviderStatus | None:
        self.asked.append(attempt_id)
        if self.down:
            raise Unavailable("connect failed: the sandbox is off")
        if not self.can_lookup:
            raise OutcomeUnknown(f"can't look {attempt_id} up")
        return self.found.get(attempt_id)

    def _submit(self, submission: Submission) -> ProviderStatus:
        raise NotImplementedError

    def _cancel(self, provider_job_id: str) -> ProviderStatus:
        raise NotImplementedError

    def _health(self) -> TargetHealth:
        return TargetHealth(name=self.target_name, up=True)


def done(ref: str, gpu_s: float | None = None, output_s: float | None = None, *,
         state: ProviderState = ProviderState.SUCCEEDED, cost: str | None = None, error: str | None = None
         ) -> ProviderStatus:
    return ProviderStatus(ref, state, progress=1.0, billed=Billed(gpu_s, output_s), error=error,
                          cost_usd=Decimal(cost) if cost is not None else None)


def row(attempt_id: str, gpu_s: str = "100.000", *, provider: ProviderKind = ProviderKind.REPLICATE,
        ref: str | None = None, outcome: AttemptOutcome = AttemptOutcome.SUCCEEDED, ended_at: datetime = ENDED,
        actual: str | None = None, unit: str = "gpu_second", price: Decimal = PRICE, output_s: str = "5.062",
        tenant: str = "acme", job_id: str | None = None) -> LedgerEntry:
    units = Decimal(gpu_s)
    charged = Decimal(actual) if actual is not None else (price * units).quantize(Decimal("0.0001"))
    return LedgerEntry(tenant=tenant, job_id=job_id or f"job_{attempt_id}", attempt_id=attempt_id,
                       provider=provider, offer=f"{provider.value}/wan", model="wan", outcome=outcome,
                       billed_units={"gpu_seconds": units, "output_seconds": Decimal(output_s),
                                     "frames": Decimal(81)},
                       unit=unit, unit_price_usd=price, pricing_version="test", estimated_usd=Decimal("0.2000"),
                       actual_usd=charged, resolution="832x480", started_at=ended_at - timedelta(minutes=3),
                       ended_at=ended_at, provider_job_id=ref)


def world(*providers: Records) -> Twins:
    return twins({p.kind: p for p in providers}, clock=lambda: NOW)


def record(w: Twins, *rows: LedgerEntry) -> None:
    for entry in rows:
        assert w.deps.ledger.record(entry)


def run(w: Twins, tolerance: Tolerance = DEFAULT_TOLERANCE) -> ReconciliationReport:
    return reconcile(w.deps, DAY, DAY + timedelta(days=1), tolerance)


@pytest.mark.parametrize(("ledger", "provider", "kind"), [
    ("100.000", 101.9, None),  # 1.9 %: within 2 %
    ("100.000", 102.5, FindingKind.MISMATCH),  # 2.5 %
    ("0.300", 0.7, None),  # 133 %, but 0.4 s: under the half-second floor
    ("3.000", 3.6, FindingKind.MISMATCH),  # 0.6 s and 20 %
    ("0.000", 40.0, FindingKind.MISMATCH),  # the ledger billed nothing the provider ran
])
def test_the_tolerance_is_relative_with_an_absolute_floor(ledger: str, provider: float,
                                                          kind: FindingKind | None) -> None:
    replicate = Records(ProviderKind.REPLICATE, {"p1": done("p1", provider)})
    w = world(replicate)
    record(w, row("att_1", ledger, ref="p1"))
    report = run(w)
    assert [f.kind for f in report.findings] == ([kind] if kind else [])
    assert report.counts.rows == 1 and report.counts.matched == (0 if kind else 1)


def test_a_wider_tolerance_accepts_what_the_default_flags() -> None:
    w = world(Records(ProviderKind.REPLICATE, {"p1": done("p1", 104.0)}))
    record(w, row("att_1", "100.000", ref="p1"))
    assert run(w).counts.mismatch == 1
    assert run(w, Tolerance(relative=0.05)).counts.matched == 1


def test_a_mismatch_names_both_figures_and_what_the_provider_s_comes_to() -> None:
    replicate = Records(ProviderKind.REPLICATE, {"p1": done("p1", 130.0), "p2": done("p2", 80.0)})
    w = world(replicate)
    record(w, row("att_1", ref="p1"), row("att_2", ref="p2"))
    report = run(w)
    [over] = [f for f in report.findings if f.attempt_id == "att_1"]
    assert over.kind is FindingKind.MISMATCH and over.unit == "gpu_seconds"
    assert (over.ledger_units, over.provider_units) == (Decimal("100.000"), Decimal("130.000"))
    assert (over.ledger_usd, over.provider_usd) == (Decimal("0.1400"), Decimal("0.1820"))
    assert over.provider_job_id == "p1" and over.job_id == "job_att_1" and over.tenant == "acme"
    assert "+30.0%" in over.detail and over.ended_at == ENDED and over.found_at == NOW
    assert report.counts.mismatch == 2 and report.complete


def test_a_stated_charge_that_differs_is_a_mismatch_even_when_the_units_agree() -> None:
    runpod = Records(ProviderKind.RUNPOD, {"ep/j1": done("ep/j1", 60.0, cost="0.3600"),
                                            "ep/j2": done("ep/j2", 60.0, cost="0.3000")})
    w = world(runpod)
    fresh = NOW - timedelta(minutes=5)  # RunPod keeps a result 30 minutes
    record(w, row("att_1", "60.000", provider=ProviderKind.RUNPOD, ref="ep/j1", actual="0.3000", ended_at=fresh),
           row("att_2", "60.000", provider=ProviderKind.RUNPOD, ref="ep/j2", actual="0.3000", ended_at=fresh))
    report = reconcile(w.deps, DAY, NOW)
    [finding] = report.findings
    assert finding.attempt_id == "att_1" and finding.kind is FindingKind.MISMATCH
    assert finding.provider_usd == Decimal("0.3600") and "states 0.3600" in finding.detail
    assert report.counts.matched == 1


def test_a_job_the_provider_denies_is_not_run() -> None:
    replicate = Records(ProviderKind.REPLICATE)  # no prediction p9; and no prediction for att_2 or att_3
    w = world(replicate)
    record(w, row("att_1", ref="p9"),
           row("att_2", "0.000", outcome=AttemptOutcome.SUBMIT_UNKNOWN, actual="0.0500"),
           row("att_3", "0.000", outcome=AttemptOutcome.SUBMIT_UNKNOWN))
    report = run(w)
    assert sorted((f.attempt_id, f.kind) for f in report.findings) == [("att_1", FindingKind.NOT_RUN),
                                                                       ("att_2", FindingKind.NOT_RUN)]
    assert all(f.provider_units is None and f.provider_usd is None for f in report.findings)
    assert report.counts.matched == 1  # att_3 charged nothing, and nothing ran
    assert replicate.asked == ["p9", "att_2", "att_3"]


def test_a_submit_unknown_row_whose_job_the_provider_did_run_is_missing_in_the_ledger() -> None:
    replicate = Records(ProviderKind.REPLICATE, found={"att_1": done("p7", 95.0)})
    w = world(replicate)
    record(w, row("att_1", "0.000", outcome=AttemptOutcome.SUBMIT_UNKNOWN))
    [finding] = run(w).findings
    assert finding.kind is FindingKind.MISSING_IN_LEDGER and finding.provider_job_id == "p7"
    assert (finding.ledger_units, finding.provider_units) == (Decimal(0), Decimal("95.000"))
    assert finding.provider_usd == Decimal("0.1330") and "submit_unknown" in finding.detail


def ended_job(job_id: str, attempts: list[Attempt], status: JobStatus = JobStatus.FAILED) -> Job:
    return Job(id=job_id, tenant="acme", status=status, created_at=ENDED - timedelta(hours=1), updated_at=ENDED,
               request=VideoRequest(mode="t2v", prompt="a lighthouse at dusk"), attempts=attempts, notified=True)


def attempt(attempt_id: str, n: int = 1, *, ref: str | None = None, status: AttemptStatus = AttemptStatus.FAILED,
            settle_as: AttemptOutcome | None = None, unsent: bool = False) -> Attempt:
    return Attempt(n=n, id=attempt_id, offer="replicate/wan", provider=ProviderKind.REPLICATE, target="replicate",
                   provider_job_id=ref, status=AttemptStatus.SUBMITTED if settle_as else status,
                   started_at=ENDED - timedelta(minutes=30),
                   ended_at=None if settle_as else ENDED - timedelta(minutes=1), delivered=SPEC,
                   estimated_cost_usd=Decimal("0.2000"), settle_as=settle_as, unsent=unsent)


def test_an_ended_job_s_attempt_with_no_ledger_row_is_missing_in_the_ledger() -> None:
    replicate = Records(ProviderKind.REPLICATE, {"p1": done("p1", 100.0), "p2": done("p2", 42.0)},
                        found={"att_b1": done("p3", 12.0)})
    w = world(replicate)
    # job_a: its first attempt has its row, the second lost it; job_b: an attempt the provider found by our id,
    # one still to be settled, and one that provably never left.
    w.jobs.create(ended_job("job_a", [attempt("att_a1", ref="p1"),
                                      attempt("att_a2", 2, ref="p2", status=AttemptStatus.SUCCEEDED)],
                            JobStatus.SUCCEEDED))
    w.jobs.create(ended_job("job_b", [attempt("att_b1"), attempt("att_b2", 2, settle_as=AttemptOutcome.CANCELLED),
                                      attempt("att_b3", 3, unsent=True)], JobStatus.CANCELLED))
    record(w, row("att_a1", ref="p1", job_id="job_a"))
    report = run(w)
    assert sorted((f.attempt_id, f.kind, f.provider_units) for f in report.findings) == [
        ("att_a2", FindingKind.MISSING_IN_LEDGER, Decimal("42.000")),
        ("att_b1", FindingKind.MISSING_IN_LEDGER, Decimal("12.000"))]
    missing = next(f for f in report.findings if f.attempt_id == "att_a2")
    assert (missing.ledger_units, missing.ledger_usd, missing.job_id) == (Decimal(0), Decimal(0), "job_a")
    assert report.counts.jobs == 2 and report.counts.unsettled == 1 and report.counts.matched == 1
    assert "att_b3" not in replicate.asked


def test_a_provider_that_cannot_be_asked_now_is_counted_never_a_finding() -> None:
    replicate = Records(ProviderKind.REPLICATE, {"p1": done("p1", 500.0)})
    replicate.down = True
    w = world(replicate)
    record(w, row("att_1", ref="p1"), row("att_2", provider=ProviderKind.LOCAL, ref="att_2"))
    report = run(w)
    assert report.findings == [] and report.counts.unreachable == 1 and report.counts.not_configured == 1
    assert w.alerts.published == []


def test_gone_records_are_expired_at_the_provider_not_findings() -> None:
    runpod = Records(ProviderKind.RUNPOD, {"ep/j2": done("ep/j2", state=ProviderState.FAILED,
                                                         error="expired: RunPod no longer has this job")})
    veo = Records(ProviderKind.VEO)  # its operations can no longer be found
    w = world(runpod, veo)
    record(w,
           # RunPod keeps a result 30 minutes: a row that ended hours ago is not even asked about.
           row("att_1", provider=ProviderKind.RUNPOD, ref="ep/j1", ended_at=NOW - timedelta(hours=2)),
           row("att_2", provider=ProviderKind.RUNPOD, ref="ep/j2", ended_at=NOW - timedelta(minutes=10)),
           row("att_3", "0.000", provider=ProviderKind.VEO, ref="operations/3#8s", unit="output_second"))
    report = reconcile(w.deps, DAY, NOW)
    assert report.findings == [] and report.counts.expired_at_provider == 3
    assert runpod.asked == ["ep/j2"]


def test_a_row_without_a_job_id_on_a_provider_that_cannot_search_is_counted() -> None:
    runpod = Records(ProviderKind.RUNPOD, lookup=False)
    w = world(runpod)
    record(w, row("att_1", "0.000", provider=ProviderKind.RUNPOD, outcome=AttemptOutcome.SUBMIT_UNKNOWN))
    report = run(w)
    assert report.findings == [] and report.counts.no_lookup == 1


def test_veo_is_checked_on_a_delivered_video_s_output_seconds() -> None:
    veo = Records(ProviderKind.VEO, {"op/1#8s": done("op/1#8s", output_s=8.0), "op/2#8s": done("op/2#8s", output_s=6.0),
                                     "op/3#8s": done("op/3#8s", state=ProviderState.FAILED, error="INTERNAL")})
    w = world(veo)
    price = Decimal("0.1000000000")
    record(w, row("att_1", "0.000", provider=ProviderKind.VEO, ref="op/1#8s", unit="output_second", price=price,
                  output_s="8.000", actual="0.8000"),
           row("att_2", "0.000", provider=ProviderKind.VEO, ref="op/2#8s", unit="output_second", price=price,
               output_s="8.000", actual="0.8000"),
           # failed: the row keeps the length it would have had, but bills none of it
           row("att_3", "0.000", provider=ProviderKind.VEO, ref="op/3#8s", unit="output_second", price=price,
               output_s="8.000", actual="0.0000", outcome=AttemptOutcome.FAILED))
    report = run(w)
    [finding] = report.findings
    assert finding.attempt_id == "att_2" and finding.unit == "output_seconds"
    assert (finding.ledger_units, finding.provider_units, finding.provider_usd) == (
        Decimal("8.000"), Decimal("6.000"), Decimal("0.6000"))
    assert report.counts.matched == 2


def test_findings_are_stored_and_alerted_once() -> None:
    replicate = Records(ProviderKind.REPLICATE, {"p1": done("p1", 130.0)})
    w = world(replicate)
    record(w, row("att_1", ref="p1"), row("att_2", ref="p_gone"))
    first = run(w)
    assert first.new_findings == 2 and len(w.alerts.published) == 1
    message, subject = w.alerts.published[0]
    alert = json.loads(message)
    assert subject == "hvr reconciliation: 2 new finding(s)"
    assert alert["count"] == 2 and alert["kinds"] == {"mismatch": 1, "not_run": 1}
    assert {f["attempt_id"] for f in alert["findings"]} == {"att_1", "att_2"}
    again = run(w)
    assert again.new_findings == 0 and len(again.findings) == 2 and len(w.alerts.published) == 1
    stored = w.deps.findings.between(DAY.date(), DAY.date())
    assert [(f.attempt_id, f.kind) for f in stored] == [("att_1", FindingKind.MISMATCH),
                                                        ("att_2", FindingKind.NOT_RUN)]


def test_only_rows_that_ended_in_the_window_are_checked_and_daily_is_yesterday() -> None:
    replicate = Records(ProviderKind.REPLICATE, {"p1": done("p1", 100.0), "p2": done("p2", 100.0),
                                                 "p3": done("p3", 100.0)})
    w = world(replicate)
    record(w, row("att_1", ref="p1", ended_at=DAY - timedelta(microseconds=1)), row("att_2", ref="p2"),
           row("att_3", ref="p3", ended_at=DAY + timedelta(days=1)))
    report = daily_reconcile(w.deps)
    assert (report.start, report.end) == (DAY, DAY + timedelta(days=1))
    assert report.counts.rows == report.counts.matched == 1 and replicate.asked == ["p2"]


def test_a_run_out_of_time_says_what_it_left() -> None:
    w = world(Records(ProviderKind.REPLICATE, {"p1": done("p1", 100.0)}))
    record(w, row("att_1", ref="p1"), row("att_2", ref="p1"))
    report = reconcile(w.deps, DAY, DAY + timedelta(days=1), budget_s=0)
    assert not report.complete and report.counts.not_checked == 2 and report.counts.rows == 2


def test_an_empty_or_naive_window_is_refused() -> None:
    w = world()
    with pytest.raises(ValueError):
        reconcile(w.deps, DAY, DAY)
    with pytest.raises(ValueError):
        reconcile(w.deps, DAY.replace(tzinfo=None), NOW)


def test_the_sweepers_daily_task_reconciles_yesterday_and_checks_the_budgets() -> None:
    replicate = Records(ProviderKind.REPLICATE, {"p1": done("p1", 150.0)})  # it now says 1.5x what we billed
    w = world(replicate)
    record(w, row("att_1", ref="p1"))
    books = daily(w.deps)
    assert books.drift == [] and books.reconciliation.complete
    [finding] = books.reconciliation.findings
    assert (finding.attempt_id, finding.kind) == ("att_1", FindingKind.MISMATCH)
