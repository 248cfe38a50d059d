"""The ratings store and its twin, one set of tests: one rating per job and rater (a second replaces the first),
each offer's tally exact through replacements and races, ratings read back by job and by delivery window, and none
of it seen by the ledger rows that share the table."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import pytest

from hvr.local.provision import provision
from hvr.memory import MemoryLedger, MemoryRatings
from router.errors import Conflict
from router.models.common import ProviderKind
from router.models.rating import Rating, ScoreTally
from router.store.ledger import LedgerRepository
from router.store.protocols import LedgerStore, RatingStore
from router.store.ratings import RatingsRepository
from tests.contract.conftest import moto_client
from tests.contract.test_stores import NOW, PERIOD, entry, run_together

DAY = NOW.date()


@dataclass(frozen=True)
class Backend:
    ratings: RatingStore
    ledger: LedgerStore  # the same table as the ratings on DynamoDB


@pytest.fixture(params=["dynamodb", "memory"])
def backend(request: pytest.FixtureRequest, tables_template: Path) -> Backend:
    if request.param == "memory":
        return Backend(MemoryRatings(), MemoryLedger())
    ddb = moto_client("dynamodb", request.getfixturevalue("moto_url"))
    tables = provision({"dynamodb": ddb}, stack_name=f"r{uuid.uuid4().hex[:10]}", path=tables_template).table_names
    return Backend(RatingsRepository(ddb, tables["LedgerTable"]), LedgerRepository(ddb, tables["LedgerTable"]))


def rating(job_id: str, score: int, rater: str = "k1", *, tenant: str = "acme", offer: str = "local/wan21-14b",
           day: date = DAY, preferred_over: str | None = None) -> Rating:
    return Rating(tenant=tenant, job_id=job_id, rater=rater, score=score, offer=offer, provider=ProviderKind.LOCAL,
                  model=offer.partition("/")[2], delivered_on=day, rated_at=NOW, preferred_over=preferred_over,
                  preferred_over_offer="veo/veo-3.1-fast" if preferred_over else None)


def test_both_satisfy_the_protocol(backend: Backend) -> None:
    assert isinstance(backend.ratings, RatingStore)


def test_a_second_rating_by_the_same_key_replaces_the_first_and_the_tally_stays_exact(backend: Backend) -> None:
    store = backend.ratings
    assert store.put(rating("job_1", 2)) is None
    assert store.put(rating("job_1", 4, rater="k2")) is None
    replaced = store.put(rating("job_1", 5, preferred_over="job_0"))
    assert replaced is not None and replaced.score == 2
    assert [(r.rater, r.score) for r in store.for_job("acme", "job_1", DAY)] == [("k1", 5), ("k2", 4)]
    assert store.tallies() == {"local/wan21-14b": ScoreTally(n=2, total=9, squares=41)}
    assert store.for_job("acme", "job_1", DAY)[0].preferred_over == "job_0"


def test_ratings_are_read_by_tenant_job_and_delivery_window(backend: Backend) -> None:
    store = backend.ratings
    store.put(rating("job_1", 3))
    store.put(rating("job_2", 4, tenant="beta"))
    store.put(rating("job_3", 5, day=DAY + timedelta(days=20)))  # the next month
    store.put(rating("job_4", 1, day=DAY - timedelta(days=1), offer="veo/veo-3.1-fast"))
    assert store.for_job("beta", "job_1", DAY) == [] and store.for_job("acme", "job_1", DAY + timedelta(1)) == []
    assert [r.job_id for r in store.between(DAY, DAY)] == ["job_1", "job_2"]
    assert [r.job_id for r in store.between(DAY, DAY, tenant="acme")] == ["job_1"]
    assert [r.job_id for r in store.between(DAY - timedelta(days=1), DAY + timedelta(days=20), "acme")] == [
        "job_4", "job_1", "job_3"]
    assert store.tallies()["veo/veo-3.1-fast"] == ScoreTally(n=1, total=1, squares=1)


def test_racing_replacements_leave_one_rating_and_an_exact_tally(backend: Backend) -> None:
    store = backend.ratings

    def rate(i: int) -> str:
        try:
            store.put(rating("job_1", 1 + i % 5))
        except Conflict:  # lost the race on every try: the caller is told to rate again, nothing is counted
            return "lost"
        return "stored"

    outcomes = run_together(8, rate)
    assert "stored" in outcomes
    [kept] = store.for_job("acme", "job_1", DAY)
    assert store.tallies() == {"local/wan21-14b": ScoreTally(n=1, total=kept.score, squares=kept.score ** 2)}


def test_ratings_never_appear_among_the_ledger_rows_of_their_table(backend: Backend) -> None:
    backend.ledger.record(entry("att_1"))
    backend.ratings.put(rating("job_1", 4))
    assert [row.attempt_id for row in backend.ledger.for_period(PERIOD)] == ["att_1"]
    assert [row.attempt_id for row in backend.ledger.for_job("acme", "job_1")] == ["att_1"]
