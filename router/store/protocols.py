"""The stores as contracts, so services can depend on what a store does rather than on DynamoDB, S3, SQS or SNS.

The boto3-backed repositories and their in-memory twins (hvr.memory) both satisfy these; the contract tests
(tests/contract) run one set of tests against both, which is what keeps the twins honest.
"""

from __future__ import annotations

import builtins
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, BinaryIO, Protocol, runtime_checkable

if TYPE_CHECKING:  # the store modules import botocore: only their types are needed here
    from datetime import date, datetime
    from decimal import Decimal
    from pathlib import Path

    from router.models.agent import AgentKey, AgentRecord, AgentRegistration
    from router.models.budget import Budget, BudgetAlert, BudgetUpdate, SpendMode
    from router.models.campaign import Campaign, InvalidItem
    from router.models.campaign_plan import PlanInput
    from router.models.common import Circuit
    from router.models.experiment import AssignedJob, Experiment, ExperimentState
    from router.models.job import Job, JobStatus
    from router.models.ledger import LedgerEntry
    from router.models.rating import Rating, ScoreTally
    from router.models.reconciliation import ReconciliationFinding
    from router.models.request import VideoRequest
    from router.policy.learning import Observation, OfferStats
    from router.store.budgets import Reservation
    from router.store.campaigns import ItemRow, StoredCampaign
    from router.store.jobs import JobFilter
    from router.store.keys import Principal
    from router.store.messages import WorkerMessage


@runtime_checkable
class JobStore(Protocol):
    def create(self, job: Job) -> None: ...

    def get(self, tenant: str, job_id: str) -> Job: ...

    def save(self, job: Job, new_status: JobStatus | None = None) -> Job: ...

    def update(self, tenant: str, job_id: str, change: Callable[[Job], JobStatus | None], tries: int = 5) -> Job: ...

    def amend(self, tenant: str, job_id: str, change: Callable[[Job], bool], tries: int = 5) -> Job: ...

    def mark_notified(self, job: Job) -> None: ...

    def open_jobs(self, updated_before: datetime) -> Iterator[Job]: ...

    def list(
        self,
        tenant: str,
        *,
        status: JobStatus | None = None,
        campaign_id: str | None = None,
        where: JobFilter | None = None,
        limit: int = 50,
        cursor: dict[str, Any] | None = None,
    ) -> tuple[builtins.list[Job], dict[str, Any] | None]: ...


@runtime_checkable
class LedgerStore(Protocol):
    def record(self, entry: LedgerEntry) -> bool: ...

    def for_job(self, tenant: str, job_id: str) -> list[LedgerEntry]: ...

    def actual(self, tenant: str, job_id: str, attempt_id: str) -> Decimal | None: ...

    def for_period(self, period: str) -> list[LedgerEntry]: ...

    def top_offers(self, scope: str, period: str, limit: int = 3) -> list[dict[str, str]]: ...


@runtime_checkable
class BudgetStore(Protocol):
    def get_many(self, scopes: list[str], period: str) -> dict[str, Budget]: ...

    def for_period(self, period: str) -> list[Budget]: ...

    def put(self, scope: str, period: str, update: BudgetUpdate, now: datetime, by: str,
            spent_before: Decimal = ...) -> Budget: ...

    def set_mode(self, scope: str, period: str, mode: SpendMode, by: str, now: datetime) -> bool: ...

    def claim_alert(self, scope: str, period: str, threshold: float) -> bool: ...

    def reserve(self, tenant: str, job_id: str, attempt_id: str, period: str, scopes: list[str], estimate: Decimal,
                now: datetime) -> None: ...

    def reservation(self, attempt_id: str) -> Reservation | None: ...

    def settle(self, reservation: Reservation, actual: Decimal, spent_here: bool = ...) -> bool: ...

    def add_spent(self, scope: str, period: str, amount: Decimal) -> bool: ...

    def stale_reservations(self, created_before: datetime) -> list[Reservation]: ...


@runtime_checkable
class CircuitStore(Protocol):
    # Attributes, not just methods: the circuits service reads the cooldown to scale it.
    threshold: int
    cooldown_s: float

    def failure(self, target: str, now: datetime, cooldown_s: float) -> int: ...

    def success(self, target: str) -> None: ...

    def states(self, now: datetime) -> dict[str, Circuit]: ...


@runtime_checkable
class LearnedStore(Protocol):
    def all(self) -> dict[str, OfferStats]: ...

    def observe(self, key: str, observation: Observation, attempt_id: str, tries: int = 5) -> OfferStats | None: ...

    def explored(self, day: date) -> tuple[int, Decimal]: ...

    def count_exploration(self, day: date, cost_p90_usd: Decimal) -> None: ...


@runtime_checkable
class CampaignStore(Protocol):
    def find(self, tenant: str, campaign_id: str) -> StoredCampaign | None: ...

    def exists(self, tenant: str, campaign_id: str) -> bool: ...

    def get(self, tenant: str, campaign_id: str) -> Campaign: ...

    def create(self, campaign: Campaign) -> bool: ...

    def advance(self, campaign: Campaign, expected_step: int) -> bool: ...

    def mark_sent(self, tenant: str, campaign_id: str, step: int) -> None: ...

    def put_items(self, tenant: str, campaign_id: str, rows: Sequence[tuple[VideoRequest, PlanInput]]) -> set[str]: ...

    def plan_inputs(self, tenant: str, campaign_id: str) -> Iterator[PlanInput]: ...

    def items(self, tenant: str, campaign_id: str, item_ids: Sequence[str]) -> dict[str, ItemRow]: ...

    def put_invalid(self, tenant: str, campaign_id: str, invalid: Sequence[InvalidItem]) -> None: ...

    def invalid(self, tenant: str, campaign_id: str, limit: int = 1000) -> list[InvalidItem]: ...


@runtime_checkable
class KeyStore(Protocol):
    def put(self, key: str, principal: Principal, created_at: datetime) -> None: ...

    def lookup(self, key: str) -> Principal | None: ...


@runtime_checkable
class AgentRegistry(Protocol):
    """The fleet registry (router.store.agents): each box's latest registration, last heartbeat and drain."""

    def heartbeat(self, name: str, registration: AgentRegistration, key_id: str, now: datetime) -> AgentRecord: ...

    def set_draining(self, name: str, draining: bool, now: datetime) -> AgentRecord: ...  # NotFound if unregistered

    def get(self, name: str) -> AgentRecord | None: ...

    def all(self) -> builtins.list[AgentRecord]: ...


@runtime_checkable
class AgentKeyStore(Protocol):
    """Per-agent HMAC keys (router.store.agent_keys): Secrets Manager in a deployment."""

    def issue(self, name: str, now: datetime, overlap_s: float) -> AgentKey: ...  # create, or rotate with overlap

    def revoke(self, name: str, now: datetime) -> builtins.list[str] | None: ...  # None: it never had a key

    def secret(self, name: str, key_id: str, now: datetime) -> str: ...  # KeyRefused saying why not


@runtime_checkable
class Nonces(Protocol):
    def first_seen(self, scope: str, value: str, expires_at: int) -> bool: ...


@runtime_checkable
class AlertHistory(Protocol):
    """Budget alerts as they happened (router.services.money, budget_alerts), read by `GET /v1/alerts`."""

    def record(self, alert: BudgetAlert) -> None: ...

    def list(self, scopes: builtins.list[str] | None, period: str | None, limit: int = 50,
             cursor: dict[str, Any] | None = None) -> tuple[builtins.list[BudgetAlert], dict[str, Any] | None]: ...

    def scopes(self) -> set[str]: ...  # every scope that has an alert, so a caller can pick the ones it may see


@runtime_checkable
class Findings(Protocol):
    """Reconciliation findings (router.services.reconcile), filed by the UTC day their attempt ended."""

    def add(self, finding: ReconciliationFinding) -> bool: ...  # False: this attempt's finding of that kind is stored

    def between(self, first: date, last: date) -> builtins.list[ReconciliationFinding]: ...  # days, both inclusive


@runtime_checkable
class RatingStore(Protocol):
    """Ratings of delivered jobs and each offer's tally of them (router.store.ratings)."""

    def put(self, rating: Rating, tries: int = 5) -> Rating | None: ...  # the rating it replaced, if any

    def for_job(self, tenant: str, job_id: str, delivered_on: date) -> builtins.list[Rating]: ...

    def between(self, first: date, last: date, tenant: str | None = None) -> builtins.list[Rating]: ...

    def tallies(self) -> dict[str, ScoreTally]: ...


class ExperimentStore(Protocol):
    """Experiments and the jobs they assigned (router.store.experiments)."""

    def define(self, experiment: Experiment, expected_version: int | None) -> ExperimentState: ...

    def get(self, name: str) -> ExperimentState | None: ...

    def all(self) -> builtins.list[ExperimentState]: ...

    def assign(self, name: str, jobs: builtins.list[AssignedJob], cost_usd: Decimal,
               cap_usd: Decimal) -> AssignedJob: ...

    def assigned(self, name: str, tenant: str, job_id: str) -> AssignedJob | None: ...

    def jobs(self, name: str) -> builtins.list[AssignedJob]: ...


# --- S3, SQS and SNS ----------------------------------------------------------------------------------------------


@runtime_checkable
class Artifacts(Protocol):
    bucket: str

    def presign_put(self, key: str, content_type: str = ..., expires_s: int = ...) -> str: ...

    def presign_get(self, key: str, expires_s: int = ...) -> str: ...

    def upload_stream(self, key: str, stream: BinaryIO, content_type: str = ...) -> None: ...

    def size(self, key: str) -> int | None: ...

    def download(self, key: str, directory: str | None = None) -> Path: ...


@runtime_checkable
class Queue(Protocol):
    def send(self, message: WorkerMessage, delay_s: float = 0) -> None: ...

    def backlog(self) -> int:
        """Messages ready to be received and not yet taken (SQS's approximate count; delayed ones not included)."""
        ...


@runtime_checkable
class LedgerExports(Protocol):
    def write(self, entry: LedgerEntry) -> None: ...

    def read_day(self, day: str) -> builtins.list[LedgerEntry]: ...


@runtime_checkable
class Alerts(Protocol):
    def publish(self, message: str, subject: str) -> None: ...


@runtime_checkable
class Events(Protocol):
    def job_ended(self, job: Job) -> None: ...
