"""The experiments store and its twin, one set of tests: definitions created once and replaced at the version read,
assignments recorded once however often a route is redelivered, and the spend cap never exceeded, racing or not."""

from __future__ import annotations

import uuid
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from hvr.local.provision import provision
from hvr.memory import MemoryExperiments, MemoryLedger
from router.errors import Conflict
from router.models.experiment import AssignedJob, Experiment
from router.store.experiments import CapReached, ExperimentsRepository
from router.store.ledger import LedgerRepository
from router.store.protocols import ExperimentStore, LedgerStore
from tests.contract.conftest import moto_client
from tests.contract.test_stores import NOW, PERIOD, run_together


@pytest.fixture(params=["dynamodb", "memory"])
def stores(request: pytest.FixtureRequest, tables_template: Path) -> tuple[ExperimentStore, LedgerStore]:
    if request.param == "memory":
        return MemoryExperiments(), MemoryLedger()
    ddb = moto_client("dynamodb", request.getfixturevalue("moto_url"))
    tables = provision({"dynamodb": ddb}, stack_name=f"x{uuid.uuid4().hex[:10]}", path=tables_template).table_names
    return ExperimentsRepository(ddb, tables["LedgerTable"]), LedgerRepository(ddb, tables["LedgerTable"])


def experiment(name: str = "wan-vs-ad", cap: str = "10", share: float = 0.5) -> Experiment:
    return Experiment(name=name, arms=["local/wan21-1.3b", "local/animatediff-sd15"], share=share,
                      spend_cap_usd=Decimal(cap), ends_at=NOW + timedelta(days=30), created_at=NOW,
                      updated_at=NOW, created_by="api:ops")


def assigned(job_id: str, arm: str = "a", twin: bool = False) -> AssignedJob:
    return AssignedJob(tenant="acme", job_id=job_id, arm=arm, twin=twin, assigned_at=NOW)  # type: ignore[arg-type]


def test_defined_once_then_replaced_at_the_version_read(stores: tuple[ExperimentStore, LedgerStore]) -> None:
    store, _ = stores
    first = store.define(experiment(), None)
    assert (first.version, first.assigned, first.committed_usd) == (1, 0, Decimal(0))
    with pytest.raises(Conflict):
        store.define(experiment(), None)  # it exists: a create must not overwrite it
    store.assign("wan-vs-ad", [assigned("job_1")], Decimal("1.5"), Decimal(10))
    second = store.define(experiment(share=0.8), first.version)
    assert (second.version, second.experiment.share) == (2, 0.8)
    assert (second.assigned, second.committed_usd) == (1, Decimal("1.5"))  # a redefinition keeps the counters
    with pytest.raises(Conflict):
        store.define(experiment(share=0.9), first.version)  # read before the change
    assert [s.experiment.name for s in store.all()] == ["wan-vs-ad"]
    assert store.get("nothing") is None


def test_an_assignment_is_recorded_once_however_often_it_is_made(stores: tuple[ExperimentStore, LedgerStore]) -> None:
    store, _ = stores
    store.define(experiment(), None)
    pair = [assigned("job_1", "a"), assigned("job_1-pair", "b", twin=True)]
    assert store.assign("wan-vs-ad", pair, Decimal("2"), Decimal(10)).arm == "a"
    # A redelivered route: told the stored arm, nothing committed again.
    assert store.assign("wan-vs-ad", [assigned("job_1", "b")], Decimal("2"), Decimal(10)).arm == "a"
    state = store.get("wan-vs-ad")
    assert state is not None and (state.assigned, state.committed_usd) == (2, Decimal(2))
    assert [(j.job_id, j.arm, j.twin) for j in store.jobs("wan-vs-ad")] == [("job_1", "a", False),
                                                                         ("job_1-pair", "b", True)]
    found = store.assigned("wan-vs-ad", "acme", "job_1-pair")
    assert found is not None and found.twin


def test_the_cap_holds_what_is_committed_even_racing(stores: tuple[ExperimentStore, LedgerStore]) -> None:
    store, ledger = stores
    store.define(experiment(cap="5"), None)
    with pytest.raises(CapReached):
        store.assign("wan-vs-ad", [assigned("job_big")], Decimal("6"), Decimal(5))

    def one(i: int) -> bool:
        try:
            store.assign("wan-vs-ad", [assigned(f"job_{i}")], Decimal("1"), Decimal(5))
        except CapReached:
            return False
        return True

    won = run_together(8, one)
    state = store.get("wan-vs-ad")
    assert state is not None
    assert sum(won) == 5 and state.committed_usd == Decimal(5) and state.assigned == 5
    assert len(store.jobs("wan-vs-ad")) == 5  # a refused assignment records no job
    assert ledger.for_period(PERIOD) == []  # nothing here is a ledger row to a cost report
