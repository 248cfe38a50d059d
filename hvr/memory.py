"""In-memory twins of the stores (DynamoDB, and the S3, SQS and SNS ones), for tests of the services that use them.

They live outside the runtime package: no Lambda runs them, so the layer never carries them. Each twin keeps its
store's semantics (conditional writes, idempotence, orderings, cursors, the errors raised) and shares its pure logic
with the DynamoDB class rather than restating it; tests/contract runs the same tests on both.
Values are stored as the JSON documents DynamoDB would hold (or as immutable values), so a caller never holds a
reference into the store and every read round-trips exactly as a DynamoDB read does. One lock per store: a
store's reads and writes are atomic, as a single DynamoDB request is; callbacks run outside it.
"""

from __future__ import annotations

import builtins
import dataclasses
import tempfile
import threading
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, BinaryIO

from router.errors import Conflict
from router.models.agent import AgentKey, AgentRecord, AgentRegistration
from router.models.budget import Budget, BudgetAlert, BudgetUpdate, SpendMode
from router.models.campaign import Campaign, InvalidItem
from router.models.campaign_plan import PlanInput
from router.models.common import Circuit, iso, money, utcnow
from router.models.experiment import AssignedJob, Experiment, ExperimentState
from router.models.job import Job, JobStatus
from router.models.ledger import LedgerEntry
from router.models.rating import Rating, ScoreTally
from router.models.reconciliation import ReconciliationFinding
from router.models.request import VideoRequest
from router.policy.learning import Observation, OfferStats
from router.store.agent_keys import KeyRing, issued, live_key_ids, revoked, rotated, secret_for
from router.store.agents import unknown
from router.store.alert_history import PREFIX as ALERT_PREFIX
from router.store.alert_history import Row, alert_key, checked_alert_cursor, page_of
from router.store.artifacts import OUTPUT_TTL_S, VIDEO_TYPE
from router.store.budgets import BudgetRefused, Reservation, over_limit, unheld_excess
from router.store.campaigns import ItemRow, StoredCampaign, invalid_keys, own_rows
from router.store.circuits import circuit_state, open_until
from router.store.errors import NotFound, StaleWrite, StoreUnavailable
from router.store.experiments import CapReached
from router.store.exports import PREFIX as EXPORT_PREFIX
from router.store.exports import export_key
from router.store.findings import day_key, days, finding_key
from router.store.jobs import (
    INDEX_ATTRIBUTES,
    MAX_LIST_READS,
    OPEN_SHARDS,
    JobFilter,
    amend_retrying,
    checked_cursor,
    index_keys,
    job_document,
    job_key,
    listing_index,
    next_version,
    update_retrying,
)
from router.store.keys import KeyExists, Principal, hash_key
from router.store.learned import learn
from router.store.ledger import rank_offers
from router.store.messages import WorkerMessage


def _refused_by_dynamodb(reason: str) -> ValueError:
    """Requests DynamoDB or botocore rejects outright (an empty or repeated key list, a zero limit): the twin
    refuses them too, so a service test can't pass on a call that fails in AWS."""
    return ValueError(f"DynamoDB refuses this request: {reason}")


# --- jobs -------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _StoredJob:
    document: str
    version: int
    indexes: dict[str, tuple[str, str]]


class MemoryJobs:
    def __init__(self, clock: Callable[[], datetime] = utcnow) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._jobs: dict[str, _StoredJob] = {}  # by the DynamoDB item's pk, so keys collide exactly as there

    def create(self, job: Job) -> None:
        self._put(job, expected_version=None)

    def get(self, tenant: str, job_id: str) -> Job:
        with self._lock:
            stored = self._jobs.get(_job_pk(tenant, job_id))
        if stored is None:
            raise NotFound(f"job {job_id} not found")
        return Job.model_validate_json(stored.document)

    def save(self, job: Job, new_status: JobStatus | None = None) -> Job:
        updated = next_version(job, new_status, self._clock())
        self._put(updated, expected_version=job.version)
        return updated

    def update(self, tenant: str, job_id: str, change: Callable[[Job], JobStatus | None], tries: int = 5) -> Job:
        # Optimistic like DynamoDB's, not under the lock: `change` may call back into the store.
        return update_retrying(job_id, lambda: self.get(tenant, job_id), self.save, change, tries)

    def amend(self, tenant: str, job_id: str, change: Callable[[Job], bool], tries: int = 5) -> Job:
        return amend_retrying(job_id, lambda: self.get(tenant, job_id), self._put, change, tries, self._clock)

    def mark_notified(self, job: Job) -> None:
        if job.notified:
            return
        self._put(job.model_copy(update={"notified": True}), expected_version=job.version)

    def open_jobs(self, updated_before: datetime) -> Iterator[Job]:
        before = iso(updated_before)
        with self._lock:
            indexed = [(*job.indexes["open"], pk, job.document) for pk, job in self._jobs.items()
                       if "open" in job.indexes]
        for shard in range(OPEN_SHARDS):
            # Shard by shard, oldest change first. Times compare as the stored ISO strings, as in the index: a whole
            # second (no fraction written) sorts after its own fractions.
            in_shard = sorted(row for row in indexed if row[0] == f"OPEN#{shard}" and row[1] < before)
            for _, _, _, document in in_shard:
                yield Job.model_validate_json(document)

    def _put(self, job: Job, expected_version: int | None) -> None:
        """Write `job` if the stored version is `expected_version` (None: only if there is no such job)."""
        pk = _job_pk(job.tenant, job.id)
        document = job_document(job)
        with self._lock:
            stored = self._jobs.get(pk)
            current = stored is None if expected_version is None else (
                stored is not None and stored.version == expected_version)
            if not current:
                # A retried write whose first try landed finds itself stored: that is success, not a race.
                if stored is not None and stored.document == document:
                    return
                raise StaleWrite(f"job {job.id}: version {job.version - 1} is no longer current")
            self._jobs[pk] = _StoredJob(document, job.version, index_keys(job))

    def list(
        self,
        tenant: str,
        *,
        status: JobStatus | None = None,
        campaign_id: str | None = None,
        where: JobFilter | None = None,
        limit: int = 50,
        cursor: dict[str, Any] | None = None,
    ) -> tuple[builtins.list[Job], dict[str, Any] | None]:
        index, key = listing_index(tenant, status, campaign_id)
        start = checked_cursor(cursor, index, key, tenant) if cursor else None
        if limit < 1:
            raise _refused_by_dynamodb("Limit must be at least 1")
        where = where or JobFilter()
        partition_name, sort_name = INDEX_ATTRIBUTES[index]
        low, high = where.first_day or "", f"{where.last_day or '9999-12-31'}~"  # the key range DynamoDB reads
        with self._lock:
            # Newest first: descending on the index's sort key, then on the item's key so the order is total.
            listed = sorted(((job.indexes[index][1], pk, job.document) for pk, job in self._jobs.items()
                             if index in job.indexes and job.indexes[index][0] == key
                             and low <= job.indexes[index][1] <= high), reverse=True)
        if start is not None:
            after = (start[sort_name]["S"], start["pk"]["S"])
            listed = [row for row in listed if (row[0], row[1]) < after]
        # Limit counts the items read, before the filters; as on moto, a cursor comes back only when more items
        # follow (DynamoDB in AWS also returns one when the page ends exactly at the last item). Reads go on as
        # the DynamoDB store's do (router.store.jobs.JobsRepository.list).
        jobs: builtins.list[Job] = []
        for _ in range(MAX_LIST_READS):
            page, listed = listed[:limit - len(jobs)], listed[limit - len(jobs):]
            read = [Job.model_validate_json(document) for _, _, document in page]
            jobs += [job for job in read if (not (campaign_id and status) or job.status == status)
                     and where.matches(job)]
            if not listed:
                return jobs, None
            if len(jobs) >= limit or not where.reads_documents:
                break
        last_sort, last_pk, _ = page[-1]
        return jobs, {"pk": {"S": last_pk}, partition_name: {"S": key}, sort_name: {"S": last_sort}}


def _job_pk(tenant: str, job_id: str) -> str:
    return str(job_key(tenant, job_id)["pk"]["S"])


# --- ledger -----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _LedgerRow:
    document: str
    period: str
    actual_usd: str  # the number as DynamoDB is given it, not the document's 4-place money

    def entry(self) -> LedgerEntry:
        return LedgerEntry.model_validate_json(self.document)


class MemoryLedger:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rows: dict[tuple[str, str], _LedgerRow] = {}  # by (pk, sk) as in the ledger table

    def record(self, entry: LedgerEntry) -> bool:
        key = (f"T#{entry.tenant}#J#{entry.job_id}", f"A#{entry.attempt_id}")
        row = _LedgerRow(entry.model_dump_json(), iso(entry.ended_at)[:7], str(entry.actual_usd))
        with self._lock:
            if key in self._rows:
                return False
            self._rows[key] = row
        return True

    def for_job(self, tenant: str, job_id: str) -> list[LedgerEntry]:
        pk = f"T#{tenant}#J#{job_id}"
        with self._lock:
            rows = sorted((sk, row) for (row_pk, sk), row in self._rows.items() if row_pk == pk)
        return [row.entry() for _, row in rows]

    def actual(self, tenant: str, job_id: str, attempt_id: str) -> Decimal | None:
        with self._lock:
            row = self._rows.get((f"T#{tenant}#J#{job_id}", f"A#{attempt_id}"))
        return Decimal(row.actual_usd) if row else None

    def for_period(self, period: str) -> list[LedgerEntry]:
        with self._lock:  # the by_period index: sorted on the row's sort key
            rows = sorted(((sk, pk), row) for (pk, sk), row in self._rows.items() if row.period == period)
        return [row.entry() for _, row in rows]

    def top_offers(self, scope: str, period: str, limit: int = 3) -> list[dict[str, str]]:
        return rank_offers(self.for_period(period), scope, limit)


# --- budgets ----------------------------------------------------------------------------------------------------


@dataclass
class _BudgetRow:
    limit: Decimal
    thresholds: list[float]
    spend_mode: SpendMode
    mode_by: str
    mode_at: str
    spent: Decimal = Decimal(0)
    reserved: Decimal = Decimal(0)
    remaining: Decimal = Decimal(0)
    overspent: Decimal = Decimal(0)
    alerted: set[str] = field(default_factory=set)  # str(threshold), as the DynamoDB string set holds them
    version: int = 0

    def budget(self, scope: str, period: str) -> Budget:
        return Budget(scope=scope, period=period, limit_usd=money(self.limit), spent_usd=money(self.spent),
                      reserved_usd=money(self.reserved), remaining_usd=money(self.remaining),
                      thresholds=list(self.thresholds), spend_mode=self.spend_mode,
                      spend_mode_changed_by=self.mode_by,
                      spend_mode_changed_at=datetime.fromisoformat(self.mode_at.replace("Z", "+00:00")),
                      overspent_usd=money(self.overspent))


class MemoryBudgets:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._budgets: dict[tuple[str, str], _BudgetRow] = {}  # by (scope, period)
        self._reservations: dict[str, Reservation] = {}  # by attempt id, in the order they were made

    def get_many(self, scopes: list[str], period: str) -> dict[str, Budget]:
        _check_keys(scopes)
        with self._lock:
            return {scope: row.budget(scope, period) for scope in scopes
                    if (row := self._budgets.get((scope, period))) is not None}

    def for_period(self, period: str) -> list[Budget]:
        with self._lock:
            budgets = [row.budget(scope, row_period) for (scope, row_period), row in self._budgets.items()
                       if row_period == period]
        return sorted(budgets, key=lambda b: b.scope)

    def put(self, scope: str, period: str, update: BudgetUpdate, now: datetime, by: str,
            spent_before: Decimal = Decimal(0)) -> Budget:
        with self._lock:
            row = self._budgets.get((scope, period))
            if row is None:
                row = self._budgets[(scope, period)] = _BudgetRow(
                    limit=update.limit_usd, thresholds=[], spend_mode=update.spend_mode or SpendMode.NORMAL,
                    mode_by=by, mode_at=iso(now), spent=spent_before)
            elif update.spend_mode is not None:
                row.spend_mode, row.mode_by, row.mode_at = update.spend_mode, by, iso(now)
            row.limit, row.thresholds = update.limit_usd, list(update.thresholds)
            row.remaining = update.limit_usd - row.spent - row.reserved
            row.overspent = over_limit(row.limit, row.spent, row.reserved, row.overspent)
            row.version += 1
            return row.budget(scope, period)

    def set_mode(self, scope: str, period: str, mode: SpendMode, by: str, now: datetime) -> bool:
        with self._lock:
            row = self._budgets.get((scope, period))
            if row is None or row.spend_mode.rank >= mode.rank:
                return False
            row.spend_mode, row.mode_by, row.mode_at = mode, by, iso(now)
            row.version += 1
        return True

    def claim_alert(self, scope: str, period: str, threshold: float) -> bool:
        with self._lock:
            row = self._budgets.get((scope, period))
            if row is None or str(threshold) in row.alerted:
                return False
            row.alerted.add(str(threshold))
        return True

    def reserve(self, tenant: str, job_id: str, attempt_id: str, period: str, scopes: list[str], estimate: Decimal,
                now: datetime) -> None:
        if len(set(scopes)) != len(scopes):
            raise _refused_by_dynamodb("a transaction names the same budget twice")
        with self._lock:
            if attempt_id in self._reservations:
                return  # a redelivered route: the attempt holds its reservation already
            rows: list[_BudgetRow] = []
            for scope in scopes:  # the first scope in order that says no is the one named
                row = self._budgets.get((scope, period))
                if row is None or row.remaining < estimate or row.spend_mode is SpendMode.PAUSED:
                    raise BudgetRefused(scope, money(row.remaining) if row else Decimal(0), estimate)
                rows.append(row)
            for row in rows:
                row.remaining -= estimate
                row.reserved += estimate
                row.version += 1
            self._reservations[attempt_id] = Reservation(
                attempt_id=attempt_id, tenant=tenant, job_id=job_id, period=period, scopes=tuple(scopes),
                estimate=estimate, state="reserved", created_at=iso(now))

    def reservation(self, attempt_id: str) -> Reservation | None:
        with self._lock:
            return self._reservations.get(attempt_id)

    def settle(self, reservation: Reservation, actual: Decimal, spent_here: bool = True) -> bool:
        estimate, actual = reservation.estimate, actual if spent_here else Decimal(0)
        keys = [(scope, reservation.period) for scope in reservation.scopes]
        with self._lock:
            # Checked before the reservation's state, as DynamoDB validates the whole transaction first.
            if any(key not in self._budgets for key in keys):
                raise _refused_by_dynamodb("settling against a budget that does not exist")
            stored = self._reservations.get(reservation.attempt_id)
            if stored is None or stored.state != "reserved":
                return False
            self._reservations[reservation.attempt_id] = dataclasses.replace(stored, state="settled", actual=actual)
            for row in (self._budgets[key] for key in keys):
                row.reserved -= estimate
                row.spent += actual
                row.remaining += estimate - actual
                row.overspent += max(Decimal(0), actual - estimate)
                row.version += 1
        return True

    def add_spent(self, scope: str, period: str, amount: Decimal) -> bool:
        with self._lock:
            row = self._budgets.get((scope, period))
            if row is None:
                return False
            row.overspent += unheld_excess(amount, row.remaining)
            row.spent += amount
            row.remaining -= amount
            row.version += 1
        return True

    def stale_reservations(self, created_before: datetime) -> list[Reservation]:
        before = iso(created_before)
        with self._lock:
            return [r for r in self._reservations.values() if r.state == "reserved" and r.created_at < before]


def _check_keys(keys: Sequence[str]) -> None:
    if not keys:
        raise _refused_by_dynamodb("no keys to get")
    if len(set(keys)) != len(keys):
        raise _refused_by_dynamodb("the same key twice")


# --- circuits ---------------------------------------------------------------------------------------------------


class MemoryCircuits:
    def __init__(self, threshold: int = 5, cooldown_s: float = 60.0) -> None:
        self.threshold = threshold
        self.cooldown_s = cooldown_s
        self._lock = threading.Lock()
        self._circuits: dict[str, tuple[int, str | None]] = {}  # target → (consecutive failures, open until)

    def failure(self, target: str, now: datetime, cooldown_s: float) -> int:
        with self._lock:
            failures, until = self._circuits.get(target, (0, None))
            failures += 1
            if failures >= self.threshold:
                until = open_until(now, cooldown_s)
            self._circuits[target] = (failures, until)
        return failures

    def success(self, target: str) -> None:
        with self._lock:  # like UpdateItem, this creates the target's circuit if it had none
            self._circuits[target] = (0, None)

    def states(self, now: datetime) -> dict[str, Circuit]:
        with self._lock:
            circuits = sorted(self._circuits.items())
        return {target: circuit_state(failures, until, now, self.threshold) for target, (failures, until) in circuits}


# --- learned offer models (calibration) -------------------------------------------------------------------------


class MemoryLearned:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._models: dict[str, tuple[OfferStats, list[str]]] = {}  # key → (stats, attempt ids learned lately)
        self._explored: dict[date, tuple[int, Decimal]] = {}

    def all(self) -> dict[str, OfferStats]:
        with self._lock:
            return {key: stats for key, (stats, _) in sorted(self._models.items())}

    def observe(self, key: str, observation: Observation, attempt_id: str, tries: int = 5) -> OfferStats | None:
        with self._lock:  # one atomic step here, where DynamoDB needs `tries` optimistic ones
            stats, seen = self._models.get(key, (OfferStats(), []))
            learned = learn(stats, seen, observation, attempt_id)
            if learned is None:
                return None
            self._models[key] = learned
            return learned[0]

    def explored(self, day: date) -> tuple[int, Decimal]:
        with self._lock:
            return self._explored.get(day, (0, Decimal(0)))

    def count_exploration(self, day: date, cost_p90_usd: Decimal) -> None:
        with self._lock:
            jobs, usd = self._explored.get(day, (0, Decimal(0)))
            self._explored[day] = (jobs + 1, usd + cost_p90_usd)


# --- campaigns --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _StoredCampaign:
    document: str
    step: int
    next_sent: bool


@dataclass(frozen=True)
class _StoredItem:
    line: int
    request: str
    inputs: str


@dataclass
class _CampaignRecords:
    """Everything under one campaign's partition; `meta` is None until the campaign itself is written."""

    meta: _StoredCampaign | None = None
    items: dict[str, _StoredItem] = field(default_factory=dict)  # by item id
    invalid: dict[str, str] = field(default_factory=dict)  # sort key → InvalidItem document


class MemoryCampaigns:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._campaigns: dict[str, _CampaignRecords] = {}  # by the DynamoDB partition key

    def find(self, tenant: str, campaign_id: str) -> StoredCampaign | None:
        with self._lock:
            meta = self._records(tenant, campaign_id).meta
        if meta is None:
            return None
        return StoredCampaign(Campaign.model_validate_json(meta.document), meta.next_sent)

    def exists(self, tenant: str, campaign_id: str) -> bool:
        with self._lock:
            return self._records(tenant, campaign_id).meta is not None

    def get(self, tenant: str, campaign_id: str) -> Campaign:
        found = self.find(tenant, campaign_id)
        if found is None:
            raise NotFound(f"campaign {campaign_id} not found")
        return found.campaign

    def create(self, campaign: Campaign) -> bool:
        with self._lock:
            records = self._records(campaign.tenant, campaign.id)
            if records.meta is not None:
                return False
            records.meta = _StoredCampaign(campaign.model_dump_json(), campaign.step, next_sent=False)
        return True

    def advance(self, campaign: Campaign, expected_step: int) -> bool:
        with self._lock:
            records = self._records(campaign.tenant, campaign.id)
            if records.meta is None or records.meta.step != expected_step:
                return False
            records.meta = _StoredCampaign(campaign.model_dump_json(), campaign.step, next_sent=False)
        return True

    def mark_sent(self, tenant: str, campaign_id: str, step: int) -> None:
        with self._lock:
            records = self._records(tenant, campaign_id)
            if records.meta is not None and records.meta.step == step:  # else the chain moved on: nothing to mark
                records.meta = dataclasses.replace(records.meta, next_sent=True)

    def put_items(self, tenant: str, campaign_id: str, rows: Sequence[tuple[VideoRequest, PlanInput]]) -> set[str]:
        with self._lock:
            items = self._records(tenant, campaign_id).items
            mine = own_rows(rows, lambda item_ids: {i: items[i].line for i in item_ids if i in items})
            for item_id, (request, inputs) in mine.items():
                items[item_id] = _StoredItem(inputs.line, request.model_dump_json(), inputs.model_dump_json())
        return set(mine)

    def plan_inputs(self, tenant: str, campaign_id: str) -> Iterator[PlanInput]:
        with self._lock:
            stored = sorted(self._records(tenant, campaign_id).items.items())
        for _, item in stored:
            yield PlanInput.model_validate_json(item.inputs)

    def items(self, tenant: str, campaign_id: str, item_ids: Sequence[str]) -> dict[str, ItemRow]:
        with self._lock:
            items = self._records(tenant, campaign_id).items
            found = [items[i] for i in dict.fromkeys(item_ids) if i in items]
        rows: dict[str, ItemRow] = {}
        for item in found:
            inputs = PlanInput.model_validate_json(item.inputs)
            rows[inputs.item_id] = ItemRow(VideoRequest.model_validate_json(item.request), inputs)
        return rows

    def put_invalid(self, tenant: str, campaign_id: str, invalid: Sequence[InvalidItem]) -> None:
        documents = {sk: entry.model_dump_json() for sk, entry in invalid_keys(invalid).items()}
        with self._lock:
            self._records(tenant, campaign_id).invalid.update(documents)

    def invalid(self, tenant: str, campaign_id: str, limit: int = 1000) -> list[InvalidItem]:
        if limit < 1:
            raise _refused_by_dynamodb("Limit must be at least 1")
        with self._lock:
            documents = sorted(self._records(tenant, campaign_id).invalid.items())[:limit]
        return [InvalidItem.model_validate_json(document) for _, document in documents]

    def _records(self, tenant: str, campaign_id: str) -> _CampaignRecords:
        """The campaign's partition (created empty on first touch, which no reader can tell from absent)."""
        return self._campaigns.setdefault(f"C#{tenant}#{campaign_id}", _CampaignRecords())


# --- API keys ---------------------------------------------------------------------------------------------------


class MemoryKeys:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._principals: dict[str, Principal] = {}  # by the key's hash, as stored in DynamoDB

    def put(self, key: str, principal: Principal, created_at: datetime) -> None:
        with self._lock:
            if hash_key(key) in self._principals:
                raise KeyExists("this API key exists already")
            self._principals[hash_key(key)] = principal

    def lookup(self, key: str) -> Principal | None:
        with self._lock:
            return self._principals.get(hash_key(key))


# --- the fleet registry and its keys ----------------------------------------------------------------------------


class MemoryAgents:
    """The registry as DynamoDB holds it: one JSON document per agent name."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._records: dict[str, str] = {}

    def heartbeat(self, name: str, registration: AgentRegistration, key_id: str, now: datetime) -> AgentRecord:
        with self._lock:
            known = self._records.get(name)
            before = AgentRecord.model_validate_json(known) if known else None
            record = AgentRecord(name=name, registration=registration, key_id=key_id, last_seen=now,
                                 registered_at=before.registered_at if before else now,
                                 draining=before.draining if before else False,
                                 drained_at=before.drained_at if before else None)
            self._records[name] = record.model_dump_json()
        return record

    def set_draining(self, name: str, draining: bool, now: datetime) -> AgentRecord:
        with self._lock:
            known = self._records.get(name)
            if known is None:
                raise unknown(name)
            record = AgentRecord.model_validate_json(known).model_copy(
                update={"draining": draining, "drained_at": now if draining else None})
            self._records[name] = record.model_dump_json()
        return record

    def get(self, name: str) -> AgentRecord | None:
        with self._lock:
            known = self._records.get(name)
        return AgentRecord.model_validate_json(known) if known else None

    def all(self) -> builtins.list[AgentRecord]:
        with self._lock:
            documents = [self._records[name] for name in sorted(self._records)]
        return [AgentRecord.model_validate_json(document) for document in documents]


class MemoryAgentKeys:
    """One key ring per agent, as the Secrets Manager secret holds it (its JSON)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rings: dict[str, str] = {}

    def issue(self, name: str, now: datetime, overlap_s: float) -> AgentKey:
        with self._lock:
            fresh = rotated(self._ring(name), now, overlap_s)
            self._rings[name] = fresh.model_dump_json()
        return issued(name, fresh)

    def revoke(self, name: str, now: datetime) -> builtins.list[str] | None:
        with self._lock:
            ring = self._ring(name)
            if ring is None:
                return None
            self._rings[name] = revoked(ring, now).model_dump_json()
        return live_key_ids(ring, now)

    def secret(self, name: str, key_id: str, now: datetime) -> str:
        with self._lock:
            ring = self._ring(name)
        return secret_for(ring, name, key_id, now)

    def _ring(self, name: str) -> KeyRing | None:
        known = self._rings.get(name)
        return KeyRing.model_validate_json(known) if known else None


# --- seen-once values -------------------------------------------------------------------------------------------


class MemoryNonces:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        # Never forgotten: moto doesn't expire items, and in AWS a record past its TTL still blocks until deleted.
        self._seen: set[str] = set()

    def first_seen(self, scope: str, value: str, expires_at: int) -> bool:
        item_id = f"seen#{scope}#{value}"
        with self._lock:
            if item_id in self._seen:
                return False
            self._seen.add(item_id)
        return True


# --- S3, SQS and SNS --------------------------------------------------------------------------------------------


class MemoryArtifacts:
    """Objects by key. Presigned URLs name the object (`memory://bucket/key`) but nothing serves them: a test
    that needs a provider to GET an input or PUT an output uses the embedded stack."""

    def __init__(self, bucket: str = "hvr-memory") -> None:
        self.bucket = bucket
        self._lock = threading.Lock()
        self._objects: dict[str, bytes] = {}

    def presign_put(self, key: str, content_type: str = VIDEO_TYPE, expires_s: int = OUTPUT_TTL_S) -> str:
        return f"memory://{self.bucket}/{key}?method=PUT&expires={expires_s}"

    def presign_get(self, key: str, expires_s: int = 3600) -> str:
        return f"memory://{self.bucket}/{key}?method=GET&expires={expires_s}"

    def upload_stream(self, key: str, stream: BinaryIO, content_type: str = VIDEO_TYPE) -> None:
        self.put(key, stream.read())

    def put(self, key: str, body: bytes) -> None:
        with self._lock:
            self._objects[key] = body

    def size(self, key: str) -> int | None:
        with self._lock:
            body = self._objects.get(key)
        return len(body) if body is not None else None

    def download(self, key: str, directory: str | None = None) -> Path:
        with self._lock:
            body = self._objects.get(key)
        if body is None:  # S3 answers NoSuchKey, which the store lets through as unavailable
            raise StoreUnavailable(f"GetObject: NoSuchKey {key}")
        with tempfile.NamedTemporaryFile(suffix=Path(key).suffix, dir=directory, delete=False) as handle:
            handle.write(body)
        return Path(handle.name)


class MemoryQueue:
    """Messages in the order sent, each with its delay; the test decides when a delayed one is due."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._messages: deque[tuple[WorkerMessage, float]] = deque()

    def send(self, message: WorkerMessage, delay_s: float = 0) -> None:
        with self._lock:
            self._messages.append((message, delay_s))

    def take(self) -> tuple[WorkerMessage, float] | None:
        with self._lock:
            return self._messages.popleft() if self._messages else None

    def backlog(self) -> int:
        with self._lock:
            return sum(1 for _, delay_s in self._messages if delay_s <= 0)

    def __len__(self) -> int:
        with self._lock:
            return len(self._messages)


class MemoryExports:
    def __init__(self) -> None:
        self._rows: dict[str, LedgerEntry] = {}  # by export key: writing a row again rewrites it, as in S3

    def write(self, entry: LedgerEntry) -> None:
        self._rows[export_key(entry)] = entry

    def read_day(self, day: str) -> builtins.list[LedgerEntry]:
        return [row for key, row in sorted(self._rows.items()) if key.startswith(f"{EXPORT_PREFIX}/dt={day}/")]


class MemoryAlerts:
    def __init__(self) -> None:
        self.published: builtins.list[tuple[str, str]] = []  # (message, subject)

    def publish(self, message: str, subject: str) -> None:
        self.published.append((message, subject[:100]))


class MemoryEvents:
    def __init__(self) -> None:
        self.ended: builtins.list[Job] = []

    def job_ended(self, job: Job) -> None:
        self.ended.append(job.model_copy(deep=True))


class MemoryFindings:
    """Reconciliation findings by (day, attempt and kind), stored once each, as the DynamoDB store keys them."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: dict[tuple[str, str], str] = {}  # (pk, sk) -> the finding's JSON document

    def add(self, finding: ReconciliationFinding) -> bool:
        key = finding_key(finding)
        with self._lock:
            if key in self._items:
                return False
            self._items[key] = finding.model_dump_json()
        return True

    def between(self, first: date, last: date) -> builtins.list[ReconciliationFinding]:
        wanted = {day_key(day) for day in days(first, last)}
        with self._lock:
            rows = sorted((key, doc) for key, doc in self._items.items() if key[0] in wanted)
        return [ReconciliationFinding.model_validate_json(doc) for _, doc in rows]


class MemoryAlertHistory:
    """Alerts by (pk, sk) as the budgets table keys them, listed with the DynamoDB store's own ordering and cursors."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: dict[tuple[str, str], tuple[str, str]] = {}  # (pk, sk) -> (period, the alert's JSON document)

    def record(self, alert: BudgetAlert) -> None:
        with self._lock:
            self._items[alert_key(alert)] = (alert.period, alert.model_dump_json())

    def list(self, scopes: builtins.list[str] | None, period: str | None, limit: int = 50,
             cursor: dict[str, Any] | None = None) -> tuple[builtins.list[BudgetAlert], dict[str, Any] | None]:
        after = checked_alert_cursor(cursor, scopes) if cursor is not None else None
        if limit < 1:
            raise ValueError("limit must be at least 1")
        wanted = None if scopes is None else {f"{ALERT_PREFIX}{scope}" for scope in scopes}
        with self._lock:
            rows: builtins.list[Row] = [(sk, pk, doc) for (pk, sk), (row_period, doc) in self._items.items()
                                        if (wanted is None or pk in wanted) and period in (None, row_period)]
        return page_of(rows, limit, after)

    def scopes(self) -> set[str]:
        with self._lock:
            return {pk.removeprefix(ALERT_PREFIX) for pk, _ in self._items}


class MemoryRatings:
    """router.store.ratings.RatingsRepository's twin: ratings by (tenant, job, rater), tallies kept as it keeps them."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._ratings: dict[tuple[str, str, str], Rating] = {}
        self._tallies: dict[str, ScoreTally] = {}

    def put(self, rating: Rating, tries: int = 5) -> Rating | None:
        with self._lock:
            key = (rating.tenant, rating.job_id, rating.rater)
            before = self._ratings.get(key)
            tally = self._tallies.get(rating.offer, ScoreTally())
            if before is not None:
                tally = tally.minus(before.score)
            self._tallies[rating.offer] = tally.plus(rating.score)
            self._ratings[key] = rating
            return before

    def for_job(self, tenant: str, job_id: str, delivered_on: date) -> builtins.list[Rating]:
        with self._lock:
            return sorted((r for (t, j, _), r in self._ratings.items()
                           if t == tenant and j == job_id and r.delivered_on == delivered_on),
                          key=lambda r: r.rater)

    def between(self, first: date, last: date, tenant: str | None = None) -> builtins.list[Rating]:
        with self._lock:
            found = [r for r in self._ratings.values()
                     if first <= r.delivered_on <= last and (tenant is None or r.tenant == tenant)]
        return sorted(found, key=lambda r: (r.delivered_on, r.tenant, r.job_id, r.rater))

    def tallies(self) -> dict[str, ScoreTally]:
        with self._lock:
            return dict(self._tallies)


class MemoryExperiments:
    """router.store.experiments.ExperimentsRepository's twin: definitions with their counters, and assigned jobs."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._states: dict[str, ExperimentState] = {}
        self._jobs: dict[str, dict[tuple[str, str], AssignedJob]] = {}

    def define(self, experiment: Experiment, expected_version: int | None) -> ExperimentState:
        with self._lock:
            current = self._states.get(experiment.name)
            if (current is None) != (expected_version is None) or (
                    current is not None and current.version != expected_version):
                raise Conflict(f"experiment {experiment.name} changed meanwhile: read it and put it again")
            state = ExperimentState(experiment=experiment, assigned=current.assigned if current else 0,
                                    committed_usd=current.committed_usd if current else Decimal(0),
                                    version=(current.version if current else 0) + 1)
            self._states[experiment.name] = state
            return state

    def get(self, name: str) -> ExperimentState | None:
        with self._lock:
            return self._states.get(name)

    def all(self) -> builtins.list[ExperimentState]:
        with self._lock:
            return [self._states[name] for name in sorted(self._states)]

    def assign(self, name: str, jobs: builtins.list[AssignedJob], cost_usd: Decimal, cap_usd: Decimal) -> AssignedJob:
        with self._lock:
            assigned = self._jobs.setdefault(name, {})
            first = jobs[0]
            if (first.tenant, first.job_id) in assigned:
                return assigned[(first.tenant, first.job_id)]
            state = self._states.get(name)
            if state is None or state.committed_usd + cost_usd > cap_usd:
                raise CapReached(f"experiment {name}: its ${cap_usd} cap can't hold another ${cost_usd}")
            for job in jobs:
                assigned[(job.tenant, job.job_id)] = job
            self._states[name] = state.model_copy(update={"assigned": state.assigned + len(jobs),
                                                          "committed_usd": state.committed_usd + cost_usd})
            return first

    def assigned(self, name: str, tenant: str, job_id: str) -> AssignedJob | None:
        with self._lock:
            return self._jobs.get(name, {}).get((tenant, job_id))

    def jobs(self, name: str) -> builtins.list[AssignedJob]:
        with self._lock:
            return [job for _, job in sorted(self._jobs.get(name, {}).items())]
