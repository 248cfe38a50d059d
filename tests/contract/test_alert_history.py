"""The budget alert history and its twin, one set of tests: every alert kept as recorded, listed newest first over
the scopes asked for, a period at a time, in pages whose cursors only this listing accepts; and in the budgets
table without ever reading as a budget or a reservation."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from hvr.local.provision import provision
from hvr.memory import MemoryAlertHistory, MemoryBudgets
from router.models.budget import BudgetAlert, BudgetUpdate, SpendMode
from router.store.alert_history import AlertHistoryRepository
from router.store.budgets import BudgetRepository
from router.store.errors import BadCursor
from router.store.protocols import AlertHistory, BudgetStore
from tests.contract.conftest import moto_client
from tests.contract.test_stores import NOW, PERIOD


@dataclass(frozen=True)
class Backend:
    history: AlertHistory
    budgets: BudgetStore  # the same table as the alerts on DynamoDB


@pytest.fixture(params=["dynamodb", "memory"])
def backend(request: pytest.FixtureRequest, tables_template: Path) -> Backend:
    if request.param == "memory":
        return Backend(MemoryAlertHistory(), MemoryBudgets())
    ddb = moto_client("dynamodb", request.getfixturevalue("moto_url"))
    tables = provision({"dynamodb": ddb}, stack_name=f"a{uuid.uuid4().hex[:10]}", path=tables_template).table_names
    return Backend(AlertHistoryRepository(ddb, tables["BudgetsTable"]), BudgetRepository(ddb, tables["BudgetsTable"]))


def alert(scope: str = "tenant:acme", minutes: int = 0, *, threshold: float | None = 0.5,
          mode: SpendMode | None = None, period: str = PERIOD) -> BudgetAlert:
    return BudgetAlert(scope=scope, period=period, kind="spend_mode" if mode else "threshold", threshold=threshold,
                       spent_usd=Decimal("6.1234"), limit_usd=Decimal("12.0000"), mode=mode,
                       at=NOW + timedelta(minutes=minutes), source=f"threshold {threshold:.0%} of limit")


def every_page(history: AlertHistory, scopes: list[str] | None, period: str | None, limit: int
               ) -> list[list[BudgetAlert]]:
    pages, cursor = [], None
    while True:
        page, cursor = history.list(scopes, period, limit=limit, cursor=cursor)
        pages.append(page)
        if cursor is None:
            return pages


def test_both_satisfy_the_protocol(backend: Backend) -> None:
    assert isinstance(backend.history, AlertHistory)


def test_an_alert_reads_back_as_recorded(backend: Backend) -> None:
    moved = alert("campaign:cmp_1", threshold=1.0, mode=SpendMode.LOCAL_ONLY)
    backend.history.record(moved)
    assert backend.history.list(None, None) == ([moved], None)
    [read] = backend.history.list(["campaign:cmp_1"], PERIOD)[0]
    assert read.spent_usd == Decimal("6.1234") and read.at == NOW and read.mode is SpendMode.LOCAL_ONLY


def test_newest_first_over_the_scopes_asked_for_and_the_period(backend: Backend) -> None:
    recorded = [alert("tenant:acme", 0), alert("campaign:cmp_1", 1), alert("global", 2), alert("tenant:beta", 3),
                alert("tenant:acme", 4, threshold=1.0), alert("tenant:acme", -60 * 24 * 30, period="2025-02")]
    for each in recorded:
        backend.history.record(each)
    everything, _ = backend.history.list(None, None)
    assert everything == sorted(recorded, key=lambda a: a.at, reverse=True)
    acme, _ = backend.history.list(["tenant:acme", "campaign:cmp_1"], PERIOD)
    assert acme == [recorded[4], recorded[1], recorded[0]]
    assert backend.history.list(["tenant:acme"], "2025-02")[0] == [recorded[5]]
    assert backend.history.list(None, "2025-02")[0] == [recorded[5]]
    assert backend.history.list(["tenant:gamma"], None) == ([], None)
    assert backend.history.scopes() == {"tenant:acme", "campaign:cmp_1", "global", "tenant:beta"}


def test_two_alerts_of_one_scope_at_one_instant_are_both_kept(backend: Backend) -> None:
    backend.history.record(alert(threshold=0.5))
    backend.history.record(alert(threshold=1.0))
    listed, _ = backend.history.list(["tenant:acme"], None)
    assert sorted(a.threshold or 0 for a in listed) == [0.5, 1.0]


@pytest.mark.parametrize("scopes", [None, ["tenant:acme", "campaign:cmp_1", "global"]])
@pytest.mark.parametrize("period", [None, PERIOD])
def test_pages_cover_the_listing_once_in_order(backend: Backend, scopes: list[str] | None,
                                               period: str | None) -> None:
    for minute in range(7):
        backend.history.record(alert(["tenant:acme", "campaign:cmp_1", "global"][minute % 3], minute))
    backend.history.record(alert("tenant:acme", 3, period="2025-02"))  # filtered out of the period's pages
    whole, cursor = backend.history.list(scopes, period, limit=100)
    assert cursor is None and len(whole) == (7 if period else 8)
    pages = every_page(backend.history, scopes, period, limit=3)
    assert [a for page in pages for a in page] == whole
    assert [len(page) for page in pages[:-1]] == [3] * (len(pages) - 1)


def test_a_cursor_from_elsewhere_is_refused(backend: Backend) -> None:
    for minute in range(3):
        backend.history.record(alert("tenant:acme", minute))
    backend.history.record(alert("tenant:beta", 5))
    _, cursor = backend.history.list(["tenant:acme"], None, limit=1)
    assert cursor is not None
    forged: list[dict[str, Any]] = [
        {}, {"pk": cursor["pk"]}, {**cursor, "extra": {"S": "x"}}, {"pk": {"S": "B#tenant:acme"}, "sk": cursor["sk"]},
        {"pk": {"N": "1"}, "sk": cursor["sk"]}, {"pk": cursor["pk"], "sk": {"S": ""}},
        {"pk": cursor["pk"], "sk": {"S": "x" * 1025}}, {"pk": {"S": "A#not a scope"}, "sk": cursor["sk"]},
    ]
    for bad in forged:
        with pytest.raises(BadCursor):
            backend.history.list(None, None, cursor=bad)
    with pytest.raises(BadCursor):  # a scope the listing doesn't cover: it would start inside someone else's
        backend.history.list(["tenant:beta"], None, cursor=cursor)
    rest, _ = backend.history.list(None, None, cursor=cursor)  # every scope covers it
    assert [a.at for a in rest] == [NOW + timedelta(minutes=1), NOW]


def test_a_limit_below_one_is_refused(backend: Backend) -> None:
    with pytest.raises(ValueError):
        backend.history.list(None, None, limit=0)


def test_alerts_share_the_budgets_table_without_reading_as_budgets_or_holds(backend: Backend) -> None:
    backend.budgets.put("tenant:acme", PERIOD, BudgetUpdate(limit_usd=Decimal(12)), NOW, by="test")
    backend.history.record(alert("tenant:acme"))
    backend.history.record(alert("global"))
    assert [b.scope for b in backend.budgets.for_period(PERIOD)] == ["tenant:acme"]
    assert backend.budgets.stale_reservations(NOW + timedelta(days=1)) == []
    assert backend.history.scopes() == {"tenant:acme", "global"}
