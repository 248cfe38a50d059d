"""The reconciliation findings store and its twin, one set of tests: each attempt's finding of a kind is stored
once, read back by the day its attempt ended, and never mixed into the ledger rows that share its table."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from hvr.local.provision import provision
from hvr.memory import MemoryFindings, MemoryLedger
from router.models.common import ProviderKind
from router.models.reconciliation import FindingKind, ReconciliationFinding
from router.store.findings import FindingsRepository
from router.store.ledger import LedgerRepository
from router.store.protocols import Findings, LedgerStore
from tests.contract.conftest import moto_client
from tests.contract.test_stores import NOW, PERIOD, entry, run_together


@dataclass(frozen=True)
class Backend:
    findings: Findings
    ledger: LedgerStore  # the same table as the findings on DynamoDB


@pytest.fixture(params=["dynamodb", "memory"])
def backend(request: pytest.FixtureRequest, tables_template: Path) -> Backend:
    if request.param == "memory":
        return Backend(MemoryFindings(), MemoryLedger())
    ddb = moto_client("dynamodb", request.getfixturevalue("moto_url"))
    tables = provision({"dynamodb": ddb}, stack_name=f"f{uuid.uuid4().hex[:10]}", path=tables_template).table_names
    return Backend(FindingsRepository(ddb, tables["LedgerTable"]), LedgerRepository(ddb, tables["LedgerTable"]))


def finding(attempt_id: str, kind: FindingKind = FindingKind.MISMATCH, *, days: int = 0, provider_units: str = "130",
            tenant: str = "acme") -> ReconciliationFinding:
    return ReconciliationFinding(
        attempt_id=attempt_id, tenant=tenant, job_id="job_1", provider=ProviderKind.REPLICATE,
        offer="replicate/wan-2.1-t2v-480p", kind=kind, unit="gpu_seconds", ledger_units=Decimal("100.000"),
        provider_units=Decimal(provider_units), ledger_usd=Decimal("0.1400"), provider_usd=None,
        provider_job_id="p1", detail="the ledger has 100.000 gpu_seconds, replicate reports 130.000 (+30.0%)",
        ended_at=NOW + timedelta(days=days), found_at=NOW + timedelta(days=days, hours=20))


def test_both_satisfy_the_protocol(backend: Backend) -> None:
    assert isinstance(backend.findings, Findings)


def test_a_finding_is_stored_once_per_attempt_and_kind(backend: Backend) -> None:
    assert backend.findings.add(finding("att_1")) is True
    # Found again on a later run, with other figures: the first one stays.
    later = finding("att_1", provider_units="140").model_copy(update={"found_at": NOW + timedelta(days=3)})
    assert backend.findings.add(later) is False
    assert backend.findings.add(finding("att_1", FindingKind.NOT_RUN)) is True
    day = NOW.date()
    assert backend.findings.between(day, day) == [finding("att_1"), finding("att_1", FindingKind.NOT_RUN)]


def test_findings_read_back_exactly_by_the_day_their_attempt_ended(backend: Backend) -> None:
    for item in (finding("att_3", days=1), finding("att_2"), finding("att_1", tenant="beta"), finding("att_4", days=3)):
        assert backend.findings.add(item)
    day = NOW.date()
    assert [f.attempt_id for f in backend.findings.between(day, day + timedelta(days=1))] == ["att_1", "att_2", "att_3"]
    assert backend.findings.between(day + timedelta(days=2), day + timedelta(days=2)) == []
    [read] = backend.findings.between(day + timedelta(days=3), day + timedelta(days=5))
    assert read == finding("att_4", days=3) and read.ended_at == NOW + timedelta(days=3)


def test_concurrent_adds_of_one_finding_store_it_once(backend: Backend) -> None:
    assert sorted(run_together(6, lambda _: backend.findings.add(finding("att_1")))) == [False] * 5 + [True]
    assert len(backend.findings.between(NOW.date(), NOW.date())) == 1


def test_findings_stay_out_of_the_ledger_rows_beside_them(backend: Backend) -> None:
    backend.ledger.record(entry("att_1"))
    backend.findings.add(finding("att_1"))
    assert backend.ledger.for_period(PERIOD) == [entry("att_1")]
    assert backend.ledger.for_job("acme", "job_1") == [entry("att_1")]
