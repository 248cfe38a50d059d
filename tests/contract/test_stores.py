"""What every store promises, checked on the DynamoDB implementation and on its in-memory twin alike."""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from botocore.exceptions import ParamValidationError

from hvr.memory import (
    MemoryBudgets,
    MemoryCampaigns,
    MemoryCircuits,
    MemoryJobs,
    MemoryKeys,
    MemoryLearned,
    MemoryLedger,
    MemoryNonces,
)
from router.models.budget import BudgetUpdate, SpendMode
from router.models.campaign import Campaign, InvalidItem, campaign_id
from router.models.campaign_plan import PlanInput
from router.models.common import Circuit, Priority, ProviderKind
from router.models.decision import DeliveredSpec
from router.models.job import Attempt, AttemptStatus, Job, JobStatus
from router.models.ledger import LedgerEntry
from router.models.request import VideoRequest
from router.policy.learning import Observation, OfferStats, observe
from router.store.budgets import BudgetRefused, BudgetRepository, Reservation
from router.store.errors import BadCursor, IllegalTransition, NotFound, StaleWrite, StoreUnavailable
from router.store.jobs import JobFilter
from router.store.keys import KeyExists, Principal, new_key
from router.store.learned import SEEN
from router.store.protocols import (
    BudgetStore,
    CampaignStore,
    CircuitStore,
    JobStore,
    KeyStore,
    LearnedStore,
    LedgerStore,
    Nonces,
)
from tests.contract.conftest import Stores

NOW = datetime(2025, 3, 14, 12, 0, 0, 250000, tzinfo=UTC)
PERIOD = "2025-03"
SPEC = DeliveredSpec(width=832, height=480, frames=81, fps=16.0)
# What botocore refuses before the call, or DynamoDB outright (the store raises that as StoreUnavailable); the twins
# raise ValueError for the same requests.
REFUSED_REQUEST = (ValueError, ParamValidationError, StoreUnavailable)


def run_together(count: int, work: Callable[[int], Any]) -> list[Any]:
    """`work(i)` for each i on its own thread, all released at once; the results in order of i."""
    barrier = threading.Barrier(count)
    results: list[Any] = [None] * count
    errors: list[BaseException] = []

    def one(i: int) -> None:
        barrier.wait()
        try:
            results[i] = work(i)
        except BaseException as exc:  # handed to the test's thread, which fails on it
            errors.append(exc)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    return results


def test_every_implementation_satisfies_its_protocol(stores: Stores) -> None:
    pairs: list[tuple[object, type]] = [
        (stores.jobs, JobStore), (stores.ledger, LedgerStore), (stores.budgets, BudgetStore),
        (stores.circuits, CircuitStore), (stores.learned, LearnedStore), (stores.campaigns, CampaignStore),
        (stores.keys, KeyStore), (stores.nonces, Nonces)]
    for store, protocol in pairs:
        assert isinstance(store, protocol), f"{type(store).__name__} is not a {protocol.__name__}"


def test_the_twins_are_what_the_memory_backend_uses(stores: Stores) -> None:
    twins = (MemoryJobs, MemoryLedger, MemoryBudgets, MemoryCircuits, MemoryLearned, MemoryCampaigns, MemoryKeys,
             MemoryNonces)
    held = (stores.jobs, stores.ledger, stores.budgets, stores.circuits, stores.learned, stores.campaigns,
            stores.keys, stores.nonces)
    assert all(isinstance(store, twin) == (stores.backend == "memory") for store, twin in zip(held, twins, strict=True))


# --- jobs -------------------------------------------------------------------------------------------------------


def new_job(job_id: str, tenant: str = "acme", *, status: JobStatus = JobStatus.ACCEPTED, created_at: datetime = NOW,
            updated_at: datetime | None = None, campaign: str | None = None, notified: bool = False,
            attempts: list[Attempt] | None = None) -> Job:
    return Job(id=job_id, tenant=tenant, status=status, created_at=created_at, updated_at=updated_at or created_at,
               request=VideoRequest(mode="t2v", prompt="a lighthouse at dusk", campaign_id=campaign),
               notified=notified, attempts=attempts or [])


def attempt(settle_as: str | None = None) -> Attempt:
    return Attempt(n=1, id="att_1", offer="runpod/wan-2.2", provider=ProviderKind.RUNPOD, target="runpod",
                   status=AttemptStatus.SUBMITTED, started_at=NOW, delivered=SPEC,
                   estimated_cost_usd=Decimal("0.1200"), settle_as=settle_as)


def test_a_created_job_reads_back_as_written(stores: Stores) -> None:
    job = new_job("job_1", attempts=[attempt()])
    stores.jobs.create(job)
    assert stores.jobs.get("acme", "job_1") == job
    with pytest.raises(NotFound):
        stores.jobs.get("beta", "job_1")  # the tenant is part of the key
    with pytest.raises(NotFound):
        stores.jobs.get("acme", "job_2")


def test_creating_a_job_again_is_a_replay_unless_the_id_holds_another_job(stores: Stores) -> None:
    job = new_job("job_1")
    stores.jobs.create(job)
    stores.jobs.create(job)  # a retried write whose first try landed
    with pytest.raises(StaleWrite):
        stores.jobs.create(job.model_copy(update={"progress": 0.5}))
    assert stores.jobs.get("acme", "job_1") == job


def test_a_read_job_is_a_copy(stores: Stores) -> None:
    stores.jobs.create(new_job("job_1"))
    read = stores.jobs.get("acme", "job_1")
    read.attempts.append(attempt())
    assert stores.jobs.get("acme", "job_1").attempts == []


def test_save_writes_the_next_version_and_refuses_a_stale_one(stores: Stores) -> None:
    stores.jobs.create(new_job("job_1"))
    read = stores.jobs.get("acme", "job_1")
    saved = stores.jobs.save(read, JobStatus.ROUTED)
    assert (saved.status, saved.version) == (JobStatus.ROUTED, 1)
    assert saved.updated_at > read.updated_at
    assert stores.jobs.get("acme", "job_1") == saved
    with pytest.raises(StaleWrite):
        stores.jobs.save(read, JobStatus.ROUTED)  # read at version 0, stored is 1
    with pytest.raises(StaleWrite):
        stores.jobs.save(new_job("job_never_created"), JobStatus.ROUTED)


def test_save_refuses_an_illegal_transition_and_any_change_to_a_terminal_job(stores: Stores) -> None:
    stores.jobs.create(new_job("job_1"))
    with pytest.raises(IllegalTransition):
        stores.jobs.save(stores.jobs.get("acme", "job_1"), JobStatus.SUCCEEDED)
    failed = stores.jobs.save(stores.jobs.get("acme", "job_1"), JobStatus.FAILED)
    with pytest.raises(IllegalTransition):
        stores.jobs.save(failed)
    assert stores.jobs.get("acme", "job_1").version == 1


def test_update_writes_what_change_decides(stores: Stores) -> None:
    stores.jobs.create(new_job("job_1"))

    def route(job: Job) -> JobStatus:
        job.progress = 0.25
        return JobStatus.ROUTED

    updated = stores.jobs.update("acme", "job_1", route)
    assert (updated.status, updated.progress, updated.version) == (JobStatus.ROUTED, 0.25, 1)
    assert stores.jobs.get("acme", "job_1") == updated


def test_update_writes_nothing_when_change_says_none_or_the_job_is_terminal(stores: Stores) -> None:
    stores.jobs.create(new_job("job_1"))

    def look_only(job: Job) -> None:
        job.progress = 0.9  # a draft: dropped with the None

    assert stores.jobs.update("acme", "job_1", look_only).progress == 0.0
    stores.jobs.save(stores.jobs.get("acme", "job_1"), JobStatus.CANCELLED)
    calls: list[Job] = []

    def route(job: Job) -> JobStatus:
        calls.append(job)
        return JobStatus.ROUTED

    unchanged = stores.jobs.update("acme", "job_1", route)
    assert (unchanged.status, unchanged.version, calls) == (JobStatus.CANCELLED, 1, [])
    with pytest.raises(NotFound):
        stores.jobs.update("acme", "job_missing", lambda job: JobStatus.ROUTED)


def test_update_gives_up_with_stale_write_after_losing_every_race(stores: Stores) -> None:
    stores.jobs.create(new_job("job_1", status=JobStatus.ROUTED))

    def lose_the_race(draft: Job) -> JobStatus:
        stores.jobs.save(stores.jobs.get("acme", "job_1"))  # someone else writes first, every time
        return JobStatus.SUBMITTED

    with pytest.raises(StaleWrite):
        stores.jobs.update("acme", "job_1", lose_the_race, tries=3)
    assert stores.jobs.get("acme", "job_1").version == 3


def test_concurrent_updates_each_land_once(stores: Stores) -> None:
    stores.jobs.create(new_job("job_1", status=JobStatus.ROUTED))

    def one_more(job: Job) -> JobStatus:
        job.progress += 1
        return JobStatus.ROUTED

    run_together(6, lambda _: [stores.jobs.update("acme", "job_1", one_more, tries=100) for _ in range(3)])
    final = stores.jobs.get("acme", "job_1")
    assert (final.progress, final.version) == (18, 18)


def test_amend_rewrites_only_a_terminal_job_keeping_its_status(stores: Stores) -> None:
    stores.jobs.create(new_job("job_1", attempts=[attempt(settle_as="cancelled")]))
    with pytest.raises(IllegalTransition):
        stores.jobs.amend("acme", "job_1", lambda job: True)
    stores.jobs.save(stores.jobs.get("acme", "job_1"), JobStatus.CANCELLED)
    assert stores.jobs.amend("acme", "job_1", lambda job: False).version == 1

    def close_attempt(job: Job) -> bool:
        job.attempts[0].status = AttemptStatus.CANCELLED
        return True

    amended = stores.jobs.amend("acme", "job_1", close_attempt)
    assert (amended.status, amended.version, amended.attempts[0].status) == (
        JobStatus.CANCELLED, 2, AttemptStatus.CANCELLED)
    assert stores.jobs.get("acme", "job_1") == amended


def test_each_new_version_is_stamped_by_the_stores_clock(stores: Stores) -> None:
    stores.jobs.create(new_job("job_1", attempts=[attempt(settle_as="cancelled")]))
    stores.clock.at = NOW + timedelta(hours=1)
    assert stores.jobs.save(stores.jobs.get("acme", "job_1"), JobStatus.ROUTED).updated_at == stores.clock.at
    stores.clock.at = NOW + timedelta(hours=2)
    assert stores.jobs.update("acme", "job_1", lambda job: JobStatus.CANCELLED).updated_at == stores.clock.at
    stores.clock.at = NOW + timedelta(hours=3)
    assert stores.jobs.amend("acme", "job_1", lambda job: True).updated_at == stores.clock.at
    assert stores.jobs.get("acme", "job_1").updated_at == NOW + timedelta(hours=3)


def test_mark_notified_sets_the_flag_without_a_new_version(stores: Stores) -> None:
    stores.jobs.create(new_job("job_1"))
    done = stores.jobs.save(stores.jobs.get("acme", "job_1"), JobStatus.REJECTED)
    stores.jobs.mark_notified(done)
    stores.jobs.mark_notified(done)  # a repeat writes the same item again
    stored = stores.jobs.get("acme", "job_1")
    assert (stored.notified, stored.version) == (True, 1)
    stores.jobs.mark_notified(stored)  # already notified: nothing to do
    with pytest.raises(StaleWrite):
        stores.jobs.mark_notified(new_job("job_1"))  # version 0 is long gone


def test_open_jobs_are_those_the_sweeper_still_owes_something(stores: Stores) -> None:
    old, cutoff = NOW - timedelta(minutes=10), NOW - timedelta(minutes=5)
    jobs = [
        new_job("job_running", status=JobStatus.RUNNING, updated_at=old),
        new_job("job_recent", status=JobStatus.RUNNING, updated_at=NOW),
        new_job("job_unannounced", status=JobStatus.SUCCEEDED, updated_at=old),
        new_job("job_done", status=JobStatus.SUCCEEDED, updated_at=old, notified=True),
        new_job("job_unsettled", status=JobStatus.CANCELLED, updated_at=old, notified=True,
                attempts=[attempt(settle_as="cancelled")]),
        new_job("job_other_tenant", "beta", status=JobStatus.ACCEPTED, updated_at=old),
    ]
    for job in jobs:
        stores.jobs.create(job)
    found = list(stores.jobs.open_jobs(cutoff))
    assert sorted(job.id for job in found) == ["job_other_tenant", "job_running", "job_unannounced", "job_unsettled"]
    assert {job.id: job for job in found}["job_running"] == jobs[0]


def test_open_jobs_leave_the_index_once_announced(stores: Stores) -> None:
    stores.jobs.create(new_job("job_1", updated_at=NOW - timedelta(hours=1)))
    done = stores.jobs.save(stores.jobs.get("acme", "job_1"), JobStatus.EXPIRED)
    later = NOW + timedelta(days=365 * 100)  # save stamps the wall clock's time
    assert [job.id for job in stores.jobs.open_jobs(later)] == ["job_1"]
    stores.jobs.mark_notified(done)
    assert list(stores.jobs.open_jobs(later)) == []


def test_open_jobs_compare_times_as_iso_strings(stores: Stores) -> None:
    """A quirk both keep: the index compares ISO strings, and `isoformat` drops a zero microsecond, so a job
    updated on a whole second sorts after that second's fractions ("…00Z" > "…00.5…Z") and is missed."""
    whole_second = NOW.replace(microsecond=0)
    stores.jobs.create(new_job("job_1", updated_at=whole_second))
    assert list(stores.jobs.open_jobs(whole_second + timedelta(milliseconds=500))) == []
    assert [job.id for job in stores.jobs.open_jobs(whole_second + timedelta(seconds=1))] == ["job_1"]


def create_listing(stores: Stores) -> list[Job]:
    """Six acme jobs a minute apart (oldest first), alternately accepted and routed, four in campaign c1; one beta
    job in the middle of them."""
    jobs = [new_job(f"job_{i}", created_at=NOW + timedelta(minutes=i),
                    status=JobStatus.ACCEPTED if i % 2 == 0 else JobStatus.ROUTED, campaign="c1" if i < 4 else None)
            for i in range(6)]
    for job in [*jobs, new_job("job_beta", "beta", created_at=NOW + timedelta(seconds=150))]:
        stores.jobs.create(job)
    return jobs


def every_page(stores: Stores, limit: int, **filters: Any) -> list[list[str]]:
    pages: list[list[str]] = []
    cursor: dict[str, Any] | None = None
    while True:
        jobs, cursor = stores.jobs.list("acme", limit=limit, cursor=cursor, **filters)
        pages.append([job.id for job in jobs])
        if cursor is None:
            return pages


def all_pages(stores: Stores, limit: int, **filters: Any) -> list[str]:
    return [job_id for page in every_page(stores, limit, **filters) for job_id in page]


def test_list_is_newest_first_and_one_tenants(stores: Stores) -> None:
    jobs = create_listing(stores)
    listed, cursor = stores.jobs.list("acme")
    assert listed == jobs[::-1]
    assert cursor is None
    assert [job.id for job in stores.jobs.list("beta")[0]] == ["job_beta"]
    assert stores.jobs.list("nobody") == ([], None)


def test_list_pages_through_everything_once(stores: Stores) -> None:
    create_listing(stores)
    pages = every_page(stores, limit=4)
    assert pages[:2] == [["job_5", "job_4", "job_3", "job_2"], ["job_1", "job_0"]]
    assert [job_id for page in pages for job_id in page] == ["job_5", "job_4", "job_3", "job_2", "job_1", "job_0"]
    # Where a page ends on the last job, moto returns no cursor (AWS returns one, then an empty page): not pinned.
    assert all_pages(stores, limit=3) == ["job_5", "job_4", "job_3", "job_2", "job_1", "job_0"]


def test_list_by_day_and_by_where_a_job_ran_pages_past_what_the_filter_drops(stores: Stores) -> None:
    jobs = [new_job(f"job_{i}", created_at=NOW + timedelta(days=i), attempts=[attempt()] if i in (0, 3) else None)
            for i in range(5)]
    for job in jobs:
        stores.jobs.create(job)
    day = [(NOW + timedelta(days=i)).date().isoformat() for i in range(5)]
    assert all_pages(stores, 2, where=JobFilter(first_day=day[1], last_day=day[3])) == ["job_3", "job_2", "job_1"]
    assert all_pages(stores, 2, where=JobFilter(first_day=day[3])) == ["job_4", "job_3"]
    assert all_pages(stores, 2, where=JobFilter(last_day=day[0])) == ["job_0"]
    # job_4, job_2 and job_1 ran nowhere: the first page reads on past them instead of coming back empty.
    page, _ = stores.jobs.list("acme", limit=1, where=JobFilter(provider="runpod"))
    assert [job.id for job in page] == ["job_3"]
    assert all_pages(stores, 1, where=JobFilter(offer="runpod/wan-2.2")) == ["job_3", "job_0"]
    assert all_pages(stores, 5, where=JobFilter(provider="veo")) == []


def test_list_by_status_and_by_campaign(stores: Stores) -> None:
    create_listing(stores)
    assert [job.id for job in stores.jobs.list("acme", status=JobStatus.ROUTED)[0]] == ["job_5", "job_3", "job_1"]
    assert [job.id for job in stores.jobs.list("acme", campaign_id="c1")[0]] == ["job_3", "job_2", "job_1", "job_0"]
    assert all_pages(stores, 1, status=JobStatus.ACCEPTED) == ["job_4", "job_2", "job_0"]
    assert stores.jobs.list("beta", campaign_id="c1") == ([], None)


def test_list_by_status_follows_status_changes(stores: Stores) -> None:
    create_listing(stores)
    stores.jobs.save(stores.jobs.get("acme", "job_4"), JobStatus.ROUTED)
    assert [job.id for job in stores.jobs.list("acme", status=JobStatus.ACCEPTED)[0]] == ["job_2", "job_0"]
    assert [job.id for job in stores.jobs.list("acme", status=JobStatus.ROUTED)[0]][:2] == ["job_5", "job_4"]


def test_list_by_campaign_and_status_filters_after_the_limit(stores: Stores) -> None:
    """The limit counts the jobs read, before the status filter: a page may be short, even empty, with a cursor."""
    create_listing(stores)
    first, cursor = stores.jobs.list("acme", campaign_id="c1", status=JobStatus.ACCEPTED, limit=1)
    assert first == [] and cursor is not None  # job_3, the newest in c1, is routed
    # AWS may add an empty last page where moto ends (see test_list_pages_through_everything_once).
    assert every_page(stores, 1, campaign_id="c1", status=JobStatus.ACCEPTED)[:4] == [[], ["job_2"], [], ["job_0"]]
    assert every_page(stores, 3, campaign_id="c1", status=JobStatus.ROUTED)[:2] == [["job_3", "job_1"], []]


def test_list_resumes_after_the_cursors_job_even_when_that_job_has_moved(stores: Stores) -> None:
    create_listing(stores)
    first, cursor = stores.jobs.list("acme", status=JobStatus.ACCEPTED, limit=1)
    assert [job.id for job in first] == ["job_4"] and cursor is not None
    stores.jobs.save(stores.jobs.get("acme", "job_4"), JobStatus.ROUTED)
    rest, _ = stores.jobs.list("acme", status=JobStatus.ACCEPTED, cursor=cursor)
    assert [job.id for job in rest] == ["job_2", "job_0"]


@pytest.mark.parametrize("forge", [
    lambda cursor: {**cursor, "pk": {"S": "T#beta#J#job_beta"}},
    lambda cursor: {"x": 1},
    lambda cursor: {**cursor, "gsi1sk": {"S": ""}},
    lambda cursor: {**cursor, "gsi1sk": {"N": "1"}},
    lambda cursor: {**cursor, "gsi1sk": {"S": "x" * 1025}},
    lambda cursor: {**cursor, "extra": {"S": "x"}},
])
def test_list_refuses_a_cursor_it_never_handed_out(stores: Stores, forge: Callable[[dict[str, Any]], Any]) -> None:
    create_listing(stores)
    _, cursor = stores.jobs.list("acme", limit=2)
    assert cursor is not None
    with pytest.raises(BadCursor):
        stores.jobs.list("acme", limit=2, cursor=forge(cursor))


def test_a_listing_needs_a_positive_limit(stores: Stores) -> None:
    with pytest.raises(REFUSED_REQUEST):
        stores.jobs.list("acme", limit=0)


def test_a_cursor_belongs_to_its_tenant_and_its_listing(stores: Stores) -> None:
    create_listing(stores)
    _, plain = stores.jobs.list("acme", limit=2)
    _, routed = stores.jobs.list("acme", status=JobStatus.ROUTED, limit=1)
    assert plain is not None and routed is not None
    with pytest.raises(BadCursor):
        stores.jobs.list("beta", limit=2, cursor=plain)
    with pytest.raises(BadCursor):
        stores.jobs.list("acme", limit=2, cursor=routed)
    with pytest.raises(BadCursor):
        stores.jobs.list("acme", status=JobStatus.ACCEPTED, limit=2, cursor=routed)
    assert stores.jobs.list("acme", limit=1, cursor={})[0][0].id == "job_5"  # an empty cursor is no cursor


# --- ledger -----------------------------------------------------------------------------------------------------


def entry(attempt_id: str, *, tenant: str = "acme", job_id: str = "job_1", offer: str = "runpod/wan-2.2",
          actual: str = "0.1000", campaign: str | None = None, ended_at: datetime = NOW) -> LedgerEntry:
    return LedgerEntry(tenant=tenant, job_id=job_id, attempt_id=attempt_id, campaign_id=campaign,
                       provider=ProviderKind.RUNPOD, offer=offer, model="wan-2.2", outcome="succeeded",
                       billed_units={"gpu_seconds": Decimal("41.5")}, unit="gpu_seconds",
                       unit_price_usd=Decimal("0.00031"), pricing_version="2025-01", estimated_usd=Decimal("0.1200"),
                       actual_usd=Decimal(actual), resolution="480p", started_at=ended_at - timedelta(minutes=2),
                       ended_at=ended_at)


def test_ledger_records_an_attempt_once(stores: Stores) -> None:
    assert stores.ledger.record(entry("att_1")) is True
    assert stores.ledger.record(entry("att_1", actual="9.0000")) is False  # a duplicate finalize
    assert stores.ledger.for_job("acme", "job_1") == [entry("att_1")]
    assert stores.ledger.actual("acme", "job_1", "att_1") == Decimal("0.1")


def test_concurrent_records_of_one_attempt_write_one_row(stores: Stores) -> None:
    assert sorted(run_together(6, lambda _: stores.ledger.record(entry("att_1")))) == [False] * 5 + [True]
    assert len(stores.ledger.for_job("acme", "job_1")) == 1


def test_ledger_rows_by_job_and_by_attempt(stores: Stores) -> None:
    for row in (entry("att_2"), entry("att_1"), entry("att_3", job_id="job_2"), entry("att_4", tenant="beta")):
        stores.ledger.record(row)
    assert [row.attempt_id for row in stores.ledger.for_job("acme", "job_1")] == ["att_1", "att_2"]
    assert stores.ledger.for_job("beta", "job_2") == []
    assert stores.ledger.actual("acme", "job_1", "att_3") is None
    assert stores.ledger.actual("beta", "job_1", "att_4") == Decimal("0.1")


def test_ledger_rows_by_period(stores: Stores) -> None:
    stores.ledger.record(entry("att_2", ended_at=datetime(2025, 3, 31, 23, 59, tzinfo=UTC)))
    stores.ledger.record(entry("att_1", tenant="beta", job_id="job_9"))
    stores.ledger.record(entry("att_3", ended_at=datetime(2025, 4, 1, 0, 0, tzinfo=UTC)))
    assert [row.attempt_id for row in stores.ledger.for_period(PERIOD)] == ["att_1", "att_2"]
    assert [row.attempt_id for row in stores.ledger.for_period("2025-04")] == ["att_3"]
    assert stores.ledger.for_period("2025-05") == []


def test_top_offers_rank_a_scopes_spend(stores: Stores) -> None:
    rows = [entry("att_1", offer="b", actual="0.3000"), entry("att_2", offer="a", actual="0.2000"),
            entry("att_3", offer="a", actual="0.1000", campaign="c1"), entry("att_4", offer="c", actual="0.5000",
                                                                             tenant="beta"),
            entry("att_5", offer="d", actual="0.0500"),
            entry("att_6", offer="z", actual="9.0000", ended_at=datetime(2025, 2, 1, tzinfo=UTC))]
    for row in rows:
        stores.ledger.record(row)
    assert stores.ledger.top_offers("global", PERIOD) == [
        {"offer": "c", "actual_usd": "0.5000"}, {"offer": "a", "actual_usd": "0.3000"},
        {"offer": "b", "actual_usd": "0.3000"}]
    assert stores.ledger.top_offers("tenant:acme", PERIOD, limit=2) == [
        {"offer": "a", "actual_usd": "0.3000"}, {"offer": "b", "actual_usd": "0.3000"}]
    assert stores.ledger.top_offers("campaign:c1", PERIOD) == [{"offer": "a", "actual_usd": "0.1000"}]
    assert stores.ledger.top_offers("tenant:nobody", PERIOD) == []


# --- budgets ----------------------------------------------------------------------------------------------------


def limit(usd: str, spend_mode: SpendMode | None = None, thresholds: list[float] | None = None) -> BudgetUpdate:
    return BudgetUpdate(limit_usd=Decimal(usd), spend_mode=spend_mode, thresholds=thresholds or [0.8, 0.5])


def test_a_new_budget_has_everything_left(stores: Stores) -> None:
    budget = stores.budgets.put("tenant:acme", PERIOD, limit("10"), NOW, "admin")
    assert (budget.scope, budget.period, budget.limit_usd, budget.remaining_usd) == (
        "tenant:acme", PERIOD, Decimal("10.0000"), Decimal("10.0000"))
    assert (budget.spent_usd, budget.reserved_usd, budget.overspent_usd) == (Decimal(0), Decimal(0), Decimal(0))
    assert (budget.thresholds, budget.spend_mode) == ([0.5, 0.8], SpendMode.NORMAL)
    assert (budget.spend_mode_changed_by, budget.spend_mode_changed_at) == ("admin", NOW)
    assert stores.budgets.get_many(["tenant:acme", "global"], PERIOD) == {"tenant:acme": budget}


def test_a_new_budget_starts_from_what_was_spent_before_it_and_a_change_keeps_its_count(stores: Stores) -> None:
    made = stores.budgets.put("tenant:acme", PERIOD, limit("10"), NOW, "admin", spent_before=Decimal("2.5"))
    assert (made.spent_usd, made.remaining_usd) == (Decimal("2.5000"), Decimal("7.5000"))
    changed = stores.budgets.put("tenant:acme", PERIOD, limit("4"), NOW, "admin", spent_before=Decimal("9"))
    assert (changed.spent_usd, changed.remaining_usd) == (Decimal("2.5000"), Decimal("1.5000"))
    lowered = stores.budgets.put("tenant:acme", PERIOD, limit("1"), NOW, "admin")
    # Spent stands above the new limit: overspent says by how much, so spent + reserved <= limit + overspent.
    assert (lowered.remaining_usd, lowered.overspent_usd) == (Decimal("-1.5000"), Decimal("1.5000"))
    over = stores.budgets.put("global", PERIOD, limit("1"), NOW, "admin", spent_before=Decimal("3"))
    assert (over.spent_usd, over.overspent_usd) == (Decimal("3.0000"), Decimal("2.0000"))


def test_a_spend_that_held_nothing_is_counted_and_its_excess_over_what_was_left_is_overspent(stores: Stores) -> None:
    stores.budgets.put("global", PERIOD, limit("1"), NOW, "admin")
    assert stores.budgets.add_spent("global", PERIOD, Decimal("0.4")) is True
    assert stores.budgets.add_spent("global", PERIOD, Decimal("0.9")) is True
    budget = stores.budgets.get_many(["global"], PERIOD)["global"]
    assert (budget.spent_usd, budget.remaining_usd, budget.overspent_usd) == (
        Decimal("1.3000"), Decimal("-0.3000"), Decimal("0.3000"))
    assert stores.budgets.add_spent("tenant:none", PERIOD, Decimal(1)) is False  # no budget: nothing to count


def test_a_hold_from_an_earlier_period_is_released_without_counting_its_spend(stores: Stores) -> None:
    stores.budgets.put("global", PERIOD, limit("10"), NOW, "admin")
    stores.budgets.reserve("acme", "job_1", "att_1", PERIOD, ["global"], Decimal("2"), NOW)
    held = stores.budgets.reservation("att_1")
    assert held is not None and stores.budgets.settle(held, Decimal("3"), spent_here=False) is True
    budget = stores.budgets.get_many(["global"], PERIOD)["global"]
    assert (budget.spent_usd, budget.reserved_usd, budget.remaining_usd, budget.overspent_usd) == (
        Decimal(0), Decimal(0), Decimal("10.0000"), Decimal(0))
    assert stores.budgets.get_many(["tenant:acme"], "2025-04") == {}


def test_budgets_of_a_period_by_scope(stores: Stores) -> None:
    for scope in ("tenant:b", "global", "tenant:a"):
        stores.budgets.put(scope, PERIOD, limit("5"), NOW, "admin")
    stores.budgets.put("tenant:c", "2025-04", limit("5"), NOW, "admin")
    stores.budgets.reserve("acme", "job_1", "att_1", PERIOD, ["global"], Decimal("1"), NOW)  # not a budget
    assert [b.scope for b in stores.budgets.for_period(PERIOD)] == ["global", "tenant:a", "tenant:b"]
    assert stores.budgets.for_period("2025-05") == []


def test_budget_requests_dynamodb_refuses_are_refused(stores: Stores) -> None:
    stores.budgets.put("global", PERIOD, limit("5"), NOW, "admin")
    with pytest.raises(REFUSED_REQUEST):
        stores.budgets.get_many([], PERIOD)
    with pytest.raises(REFUSED_REQUEST):
        stores.budgets.get_many(["global", "global"], PERIOD)
    with pytest.raises(REFUSED_REQUEST):
        stores.budgets.reserve("acme", "job_1", "att_1", PERIOD, ["global", "global"], Decimal("1"), NOW)
    assert stores.budgets.reservation("att_1") is None
    stores.budgets.reserve("acme", "job_1", "att_1", PERIOD, ["global"], Decimal("1"), NOW)
    reservation = stores.budgets.reservation("att_1")
    assert reservation is not None
    with pytest.raises(REFUSED_REQUEST):  # a budget that isn't there: not "already settled"
        stores.budgets.settle(dataclasses.replace(reservation, scopes=("global", "tenant:gone")), Decimal("1"))
    with pytest.raises(REFUSED_REQUEST):
        stores.budgets.settle(dataclasses.replace(reservation, attempt_id="att_x", period="2025-04"), Decimal("1"))
    assert stores.budgets.get_many(["global"], PERIOD)["global"].reserved_usd == Decimal(1)
    assert stores.budgets.settle(reservation, Decimal("1")) is True


def test_changing_a_budget_keeps_what_is_spent_and_reserved(stores: Stores) -> None:
    stores.budgets.put("global", PERIOD, limit("10", SpendMode.ECONOMY), NOW, "admin")
    stores.budgets.reserve("acme", "job_1", "att_1", PERIOD, ["global"], Decimal("2"), NOW)
    stores.budgets.reserve("acme", "job_1", "att_2", PERIOD, ["global"], Decimal("1"), NOW)
    reservation = stores.budgets.reservation("att_1")
    assert reservation is not None
    stores.budgets.settle(reservation, Decimal("1.5"))
    later = NOW + timedelta(hours=1)
    changed = stores.budgets.put("global", PERIOD, limit("4", thresholds=[1.0]), later, "ops")
    assert (changed.spent_usd, changed.reserved_usd, changed.remaining_usd) == (
        Decimal("1.5000"), Decimal("1.0000"), Decimal("1.5000"))
    assert changed.thresholds == [1.0]
    # Unset in the update, the spend mode stays as it was, with who set it and when.
    assert (changed.spend_mode, changed.spend_mode_changed_by, changed.spend_mode_changed_at) == (
        SpendMode.ECONOMY, "admin", NOW)
    paused = stores.budgets.put("global", PERIOD, limit("4", SpendMode.PAUSED), later, "ops")
    assert (paused.spend_mode, paused.spend_mode_changed_by, paused.spend_mode_changed_at) == (
        SpendMode.PAUSED, "ops", later)
    assert stores.budgets.get_many(["global"], PERIOD) == {"global": paused}


def test_set_mode_moves_an_existing_budget_only(stores: Stores) -> None:
    stores.budgets.put("global", PERIOD, limit("10"), NOW, "admin")
    later = NOW + timedelta(minutes=3)
    assert stores.budgets.set_mode("global", PERIOD, SpendMode.LOCAL_ONLY, "aws-budgets", later) is True
    budget = stores.budgets.get_many(["global"], PERIOD)["global"]
    assert (budget.spend_mode, budget.spend_mode_changed_by, budget.spend_mode_changed_at) == (
        SpendMode.LOCAL_ONLY, "aws-budgets", later)
    assert stores.budgets.set_mode("global", "2025-04", SpendMode.PAUSED, "x", NOW) is False
    assert stores.budgets.get_many(["global"], "2025-04") == {}


@pytest.mark.parametrize("mode", [SpendMode.NORMAL, SpendMode.ECONOMY, SpendMode.LOCAL_ONLY])
def test_set_mode_only_tightens_so_two_settles_crossing_a_rule_move_it_once(stores: Stores, mode: SpendMode) -> None:
    stores.budgets.put("global", PERIOD, limit("10", SpendMode.LOCAL_ONLY), NOW, "admin")
    assert stores.budgets.set_mode("global", PERIOD, mode, "threshold", NOW + timedelta(minutes=1)) is False
    budget = stores.budgets.get_many(["global"], PERIOD)["global"]
    assert (budget.spend_mode, budget.spend_mode_changed_by) == (SpendMode.LOCAL_ONLY, "admin")


def test_an_alert_is_claimed_once_per_scope_period_and_threshold(stores: Stores) -> None:
    assert stores.budgets.claim_alert("global", PERIOD, 0.5) is False  # no budget, nothing to alert on
    stores.budgets.put("global", PERIOD, limit("10"), NOW, "admin")
    stores.budgets.put("global", "2025-04", limit("10"), NOW, "admin")
    assert stores.budgets.claim_alert("global", PERIOD, 0.5) is True
    assert stores.budgets.claim_alert("global", PERIOD, 0.5) is False
    assert stores.budgets.claim_alert("global", PERIOD, 0.8) is True
    assert stores.budgets.claim_alert("global", "2025-04", 0.5) is True
    stores.budgets.put("global", PERIOD, limit("20"), NOW, "admin")
    assert stores.budgets.claim_alert("global", PERIOD, 0.5) is False  # a changed limit doesn't re-arm it
    assert sum(run_together(6, lambda _: stores.budgets.claim_alert("global", PERIOD, 1.0))) == 1


def test_a_reservation_holds_the_estimate_in_every_scope(stores: Stores) -> None:
    for scope in ("global", "tenant:acme"):
        stores.budgets.put(scope, PERIOD, limit("10"), NOW, "admin")
    stores.budgets.reserve("acme", "job_1", "att_1", PERIOD, ["global", "tenant:acme"], Decimal("2.5"), NOW)
    for budget in stores.budgets.get_many(["global", "tenant:acme"], PERIOD).values():
        assert (budget.reserved_usd, budget.remaining_usd) == (Decimal("2.5000"), Decimal("7.5000"))
    assert stores.budgets.reservation("att_1") == Reservation(
        attempt_id="att_1", tenant="acme", job_id="job_1", period=PERIOD, scopes=("global", "tenant:acme"),
        estimate=Decimal("2.5"), state="reserved", created_at="2025-03-14T12:00:00.250000Z")
    assert stores.budgets.reservation("att_2") is None


def test_a_redelivered_reservation_holds_nothing_more(stores: Stores) -> None:
    stores.budgets.put("global", PERIOD, limit("3"), NOW, "admin")
    for _ in range(2):
        stores.budgets.reserve("acme", "job_1", "att_1", PERIOD, ["global"], Decimal("2"), NOW)
    assert stores.budgets.get_many(["global"], PERIOD)["global"].reserved_usd == Decimal(2)


def test_a_reservation_over_any_limit_is_refused_and_holds_nothing(stores: Stores) -> None:
    stores.budgets.put("global", PERIOD, limit("10"), NOW, "admin")
    stores.budgets.put("tenant:acme", PERIOD, limit("1.5"), NOW, "admin")
    with pytest.raises(BudgetRefused) as refused:
        stores.budgets.reserve("acme", "job_1", "att_1", PERIOD, ["global", "tenant:acme"], Decimal("2"), NOW)
    assert refused.value.scope == "tenant:acme"
    assert str(refused.value) == "tenant:acme has $1.5000 left, the estimate is $2"
    assert stores.budgets.get_many(["global"], PERIOD)["global"].remaining_usd == Decimal(10)
    assert stores.budgets.reservation("att_1") is None
    stores.budgets.reserve("acme", "job_1", "att_1", PERIOD, ["global", "tenant:acme"], Decimal("1.5"), NOW)
    assert stores.budgets.get_many(["tenant:acme"], PERIOD)["tenant:acme"].remaining_usd == Decimal(0)


def test_the_refusal_names_the_first_scope_that_says_no(stores: Stores) -> None:
    stores.budgets.put("global", PERIOD, limit("1"), NOW, "admin")
    stores.budgets.put("tenant:acme", PERIOD, limit("1"), NOW, "admin")
    with pytest.raises(BudgetRefused) as refused:
        stores.budgets.reserve("acme", "job_1", "att_1", PERIOD, ["tenant:acme", "global"], Decimal("2"), NOW)
    assert refused.value.scope == "tenant:acme"


def test_a_scope_without_a_budget_or_paused_refuses_every_reservation(stores: Stores) -> None:
    with pytest.raises(BudgetRefused) as refused:
        stores.budgets.reserve("acme", "job_1", "att_1", PERIOD, ["global"], Decimal("0.01"), NOW)
    assert (refused.value.scope, str(refused.value)) == ("global", "global has $0 left, the estimate is $0.01")
    stores.budgets.put("global", PERIOD, limit("10", SpendMode.PAUSED), NOW, "admin")
    with pytest.raises(BudgetRefused):
        stores.budgets.reserve("acme", "job_1", "att_1", PERIOD, ["global"], Decimal("0.01"), NOW)
    stores.budgets.reserve("acme", "job_1", "att_1", PERIOD, [], Decimal("0.01"), NOW)  # no scope to refuse it
    assert stores.budgets.reservation("att_1") is not None


def test_concurrent_reservations_never_overspend(stores: Stores) -> None:
    stores.budgets.put("global", PERIOD, limit("5"), NOW, "admin")

    def reserve(i: int) -> bool:
        try:
            stores.budgets.reserve("acme", f"job_{i}", f"att_{i}", PERIOD, ["global"], Decimal("1"), NOW)
        except BudgetRefused:
            return False
        return True

    assert sum(run_together(8, reserve)) == 5
    budget = stores.budgets.get_many(["global"], PERIOD)["global"]
    assert (budget.reserved_usd, budget.remaining_usd) == (Decimal(5), Decimal(0))


def test_settle_moves_the_estimate_to_the_actual_once(stores: Stores) -> None:
    stores.budgets.put("global", PERIOD, limit("10"), NOW, "admin")
    stores.budgets.put("tenant:acme", PERIOD, limit("3"), NOW, "admin")
    stores.budgets.reserve("acme", "job_1", "att_1", PERIOD, ["global", "tenant:acme"], Decimal("2"), NOW)
    reservation = stores.budgets.reservation("att_1")
    assert reservation is not None
    assert stores.budgets.settle(reservation, Decimal("3.25")) is True
    assert stores.budgets.settle(reservation, Decimal("3.25")) is False
    budgets = stores.budgets.get_many(["global", "tenant:acme"], PERIOD)
    assert [(b.spent_usd, b.reserved_usd, b.remaining_usd, b.overspent_usd) for b in budgets.values()] == [
        (Decimal("3.25"), Decimal(0), Decimal("6.75"), Decimal("1.25")),
        (Decimal("3.25"), Decimal(0), Decimal("-0.25"), Decimal("1.25"))]
    settled = stores.budgets.reservation("att_1")
    assert settled is not None and (settled.state, settled.actual) == ("settled", Decimal("3.25"))
    assert reservation.actual is None  # while it held


def test_settle_under_the_estimate_gives_the_rest_back(stores: Stores) -> None:
    stores.budgets.put("global", PERIOD, limit("10"), NOW, "admin")
    stores.budgets.reserve("acme", "job_1", "att_1", PERIOD, ["global"], Decimal("2"), NOW)
    reservation = stores.budgets.reservation("att_1")
    assert reservation is not None
    assert sum(run_together(4, lambda _: stores.budgets.settle(reservation, Decimal("0.5")))) == 1
    budget = stores.budgets.get_many(["global"], PERIOD)["global"]
    assert (budget.spent_usd, budget.reserved_usd, budget.remaining_usd, budget.overspent_usd) == (
        Decimal("0.5"), Decimal(0), Decimal("9.5"), Decimal(0))


def test_settling_a_reservation_never_made_does_nothing(stores: Stores) -> None:
    stores.budgets.put("global", PERIOD, limit("10"), NOW, "admin")
    ghost = Reservation(attempt_id="att_x", tenant="acme", job_id="job_1", period=PERIOD, scopes=("global",),
                        estimate=Decimal(1), state="reserved", created_at="2025-03-14T12:00:00Z")
    assert stores.budgets.settle(ghost, Decimal(1)) is False
    assert stores.budgets.get_many(["global"], PERIOD)["global"].spent_usd == Decimal(0)


def test_stale_reservations_are_old_and_unsettled(stores: Stores) -> None:
    stores.budgets.put("global", PERIOD, limit("10"), NOW, "admin")
    for i, minutes in enumerate((0, 20, 30, 40)):
        stores.budgets.reserve("acme", f"job_{i}", f"att_{i}", PERIOD, ["global"], Decimal("1"),
                               NOW - timedelta(minutes=minutes))
    settled = stores.budgets.reservation("att_3")
    assert settled is not None
    stores.budgets.settle(settled, Decimal("1"))
    stale = stores.budgets.stale_reservations(NOW - timedelta(minutes=15))
    assert sorted(r.attempt_id for r in stale) == ["att_1", "att_2"]
    assert all(r.state == "reserved" and r.scopes == ("global",) for r in stale)
    if isinstance(stores.budgets, BudgetRepository):  # DynamoDB's: every page of the index, not only the first
        paged = stores.budgets.stale_reservations(NOW - timedelta(minutes=15), page_size=1)
        assert sorted(r.attempt_id for r in paged) == ["att_1", "att_2"]


# --- circuits ---------------------------------------------------------------------------------------------------


def test_a_circuit_opens_at_the_threshold_then_half_opens_after_the_cooldown(stores: Stores) -> None:
    circuits = stores.circuits
    assert circuits.states(NOW) == {}
    counts = [circuits.failure("runpod", NOW, 30.0) for _ in range(circuits.threshold - 1)]
    assert counts == list(range(1, circuits.threshold))
    assert circuits.states(NOW) == {"runpod": Circuit.CLOSED}
    assert circuits.failure("runpod", NOW, 30.0) == circuits.threshold
    assert circuits.states(NOW + timedelta(seconds=29)) == {"runpod": Circuit.OPEN}
    assert circuits.states(NOW + timedelta(seconds=31)) == {"runpod": Circuit.HALF_OPEN}
    circuits.failure("runpod", NOW + timedelta(seconds=31), 30.0)  # the probe failed: open again
    assert circuits.states(NOW + timedelta(seconds=60)) == {"runpod": Circuit.OPEN}


def test_a_success_closes_a_circuit_and_resets_its_count(stores: Stores) -> None:
    circuits = stores.circuits
    for _ in range(circuits.threshold):
        circuits.failure("veo", NOW, 30.0)
    circuits.success("veo")
    circuits.success("replicate")  # a target never failed gets a closed circuit
    assert circuits.states(NOW) == {"veo": Circuit.CLOSED, "replicate": Circuit.CLOSED}
    assert circuits.failure("veo", NOW, 30.0) == 1


def test_concurrent_failures_are_all_counted(stores: Stores) -> None:
    counts = run_together(6, lambda _: stores.circuits.failure("runpod", NOW, 30.0))
    assert sorted(counts) == [1, 2, 3, 4, 5, 6]


# --- learned offer models (calibration) -------------------------------------------------------------------------


def run(render_s: float) -> Observation:
    return Observation(ok=True, render_s=render_s, catalog_render_s=60.0, billed_usd=0.11, priced_usd=0.1)


def test_observe_learns_each_attempt_once(stores: Stores) -> None:
    assert stores.learned.all() == {}
    first = stores.learned.observe("local/wan", run(30.0), "att_1")
    assert first == observe(OfferStats(), run(30.0))
    assert stores.learned.observe("local/wan", run(30.0), "att_1") is None  # a redelivered finalize
    second = stores.learned.observe("local/wan", Observation(ok=False), "att_2")
    assert second == observe(first, Observation(ok=False))
    stores.learned.observe("runpod/wan@eu", run(90.0), "att_1")  # attempt ids are remembered per key
    assert stores.learned.all() == {"local/wan": second, "runpod/wan@eu": observe(OfferStats(), run(90.0))}


def test_observe_remembers_only_the_latest_attempts(stores: Stores) -> None:
    for i in range(SEEN + 1):
        stores.learned.observe("local/wan", run(30.0 + i), f"att_{i}")
    assert stores.learned.observe("local/wan", run(30.0), f"att_{SEEN}") is None
    assert stores.learned.observe("local/wan", run(30.0), "att_1") is None  # the oldest still remembered
    again = stores.learned.observe("local/wan", run(30.0), "att_0")  # forgotten by now
    assert again is not None and again.runs == SEEN + 2


def test_concurrent_observations_are_all_learned(stores: Stores) -> None:
    run_together(6, lambda i: stores.learned.observe("local/wan", run(30.0), f"att_{i}", tries=100))
    assert stores.learned.all()["local/wan"].attempts == 6


def test_exploration_is_counted_per_day(stores: Stores) -> None:
    today = date(2025, 3, 14)
    assert stores.learned.explored(today) == (0, Decimal(0))
    stores.learned.count_exploration(today, Decimal("0.25"))
    stores.learned.count_exploration(today, Decimal("0.5"))
    stores.learned.count_exploration(date(2025, 3, 15), Decimal("1"))
    assert stores.learned.explored(today) == (2, Decimal("0.75"))


# --- campaigns --------------------------------------------------------------------------------------------------


def new_campaign(tenant: str = "acme", name: str = "spring", step: int = 0) -> Campaign:
    return Campaign(id=campaign_id(tenant, name), tenant=tenant, name=name, created_at=NOW, origin="inline",
                    step=step)


def item(item_id: str, line: int, prompt: str = "a fox") -> tuple[VideoRequest, PlanInput]:
    return (VideoRequest(mode="t2v", prompt=prompt, campaign_id="cmp_x"),
            PlanInput(item_id=item_id, line=line, job_id=f"job_{item_id}", deadline=None, priority=Priority.BATCH,
                      local=None, cloud=None))


def test_a_campaign_is_created_once_and_only_its_tenant_finds_it(stores: Stores) -> None:
    campaign = new_campaign()
    assert stores.campaigns.find("acme", campaign.id) is None
    assert stores.campaigns.exists("acme", campaign.id) is False
    with pytest.raises(NotFound):
        stores.campaigns.get("acme", campaign.id)
    assert stores.campaigns.create(campaign) is True
    assert stores.campaigns.create(campaign.model_copy(update={"lines": 9})) is False
    found = stores.campaigns.find("acme", campaign.id)
    assert found is not None and (found.campaign, found.next_sent) == (campaign, False)
    assert stores.campaigns.exists("acme", campaign.id) is True
    assert stores.campaigns.get("acme", campaign.id) == campaign
    assert stores.campaigns.exists("beta", campaign.id) is False


def test_advance_moves_from_the_expected_step_only(stores: Stores) -> None:
    campaign = new_campaign()
    assert stores.campaigns.advance(campaign.model_copy(update={"step": 1}), expected_step=0) is False  # not created
    assert stores.campaigns.exists("acme", campaign.id) is False
    stores.campaigns.create(campaign)
    stores.campaigns.mark_sent("acme", campaign.id, 0)
    step_1 = campaign.model_copy(update={"step": 1, "lines": 10})
    assert stores.campaigns.advance(step_1, expected_step=0) is True
    assert stores.campaigns.advance(step_1.model_copy(update={"lines": 99}), expected_step=0) is False  # a copy
    found = stores.campaigns.find("acme", campaign.id)
    assert found is not None and (found.campaign, found.next_sent) == (step_1, False)
    step_2 = step_1.model_copy(update={"step": 2})
    assert sum(run_together(4, lambda _: stores.campaigns.advance(step_2, expected_step=1))) == 1


def test_mark_sent_marks_the_stored_step_only(stores: Stores) -> None:
    campaign = new_campaign(step=3)
    stores.campaigns.mark_sent("acme", campaign.id, 3)  # no campaign: nothing to mark, and nothing made
    assert stores.campaigns.exists("acme", campaign.id) is False
    stores.campaigns.create(campaign)
    stores.campaigns.mark_sent("acme", campaign.id, 2)  # the chain moved on
    found = stores.campaigns.find("acme", campaign.id)
    assert found is not None and found.next_sent is False
    stores.campaigns.mark_sent("acme", campaign.id, 3)
    found = stores.campaigns.find("acme", campaign.id)
    assert found is not None and found.next_sent is True


def test_an_item_id_belongs_to_its_first_line(stores: Stores) -> None:
    chunk = [item("b", 1), item("a", 2), item("b", 3, "a repeat"), item("c", 4)]
    assert stores.campaigns.put_items("acme", "cmp_x", chunk) == {"a", "b", "c"}
    assert stores.campaigns.put_items("acme", "cmp_x", chunk) == {"a", "b", "c"}  # a re-run: the same answer
    later = [item("a", 7, "a later repeat"), item("d", 8)]
    assert stores.campaigns.put_items("acme", "cmp_x", later) == {"d"}
    assert stores.campaigns.put_items("acme", "cmp_x", []) == set()
    assert [p.item_id for p in stores.campaigns.plan_inputs("acme", "cmp_x")] == ["a", "b", "c", "d"]
    assert [p.line for p in stores.campaigns.plan_inputs("acme", "cmp_x")] == [2, 1, 4, 8]
    assert list(stores.campaigns.plan_inputs("beta", "cmp_x")) == []


def test_items_are_read_by_id(stores: Stores) -> None:
    stores.campaigns.put_items("acme", "cmp_x", [item("a", 1, "first"), item("b", 2, "second")])
    rows = stores.campaigns.items("acme", "cmp_x", ["b", "zzz", "b", "a"])
    assert set(rows) == {"a", "b"}
    assert (rows["a"].request, rows["a"].inputs) == item("a", 1, "first")
    assert stores.campaigns.items("acme", "cmp_x", []) == {}
    assert stores.campaigns.items("acme", "cmp_other", ["a"]) == {}


def test_invalid_lines_are_kept_by_line_and_position(stores: Stores) -> None:
    errors = [InvalidItem(item_id="7", line=7, field="prompt", message="required"),
              InvalidItem(item_id="3", line=3, field="", message="not JSON"),
              InvalidItem(item_id="7", line=7, field="fps", message="too high")]
    stores.campaigns.put_invalid("acme", "cmp_x", errors)
    stores.campaigns.put_invalid("acme", "cmp_x", errors)  # a re-run chunk rewrites the same rows
    assert stores.campaigns.invalid("acme", "cmp_x") == [errors[1], errors[0], errors[2]]
    assert stores.campaigns.invalid("acme", "cmp_x", limit=2) == [errors[1], errors[0]]
    assert stores.campaigns.invalid("beta", "cmp_x") == []
    with pytest.raises(REFUSED_REQUEST):
        stores.campaigns.invalid("acme", "cmp_x", limit=0)
    stores.campaigns.put_invalid("acme", "cmp_x", [])


# --- API keys ---------------------------------------------------------------------------------------------------


def test_a_key_finds_its_principal(stores: Stores) -> None:
    key = new_key()
    stores.keys.put(key, Principal(tenant="acme", role="admin"), NOW)
    assert stores.keys.lookup(key) == Principal(tenant="acme", role="admin")
    assert stores.keys.lookup(new_key()) is None


def test_putting_a_key_twice_is_a_conflict_that_keeps_the_first(stores: Stores) -> None:
    key = new_key()
    stores.keys.put(key, Principal(tenant="acme", role="member"), NOW)
    with pytest.raises(KeyExists) as failed:
        stores.keys.put(key, Principal(tenant="beta", role="admin"), NOW)
    assert failed.value.status == 409 and key not in str(failed.value)
    assert stores.keys.lookup(key) == Principal(tenant="acme", role="member")


# --- seen-once values -------------------------------------------------------------------------------------------


def test_a_nonce_is_first_seen_once_per_scope(stores: Stores) -> None:
    assert stores.nonces.first_seen("webhook", "n1", 1_900_000_000) is True
    assert stores.nonces.first_seen("webhook", "n1", 1_900_000_000) is False
    assert stores.nonces.first_seen("delivery", "n1", 1_900_000_000) is True
    assert sum(run_together(6, lambda _: stores.nonces.first_seen("webhook", "n2", 1_900_000_000))) == 1
