"""Reconciling the ledger with the providers' own records (router.services.reconcile): what a run finds, what it
counted, and the report `POST /v1/reconciliation/runs` and `hvr reconcile` show."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, PlainSerializer

from router.models.common import Money, ProviderKind

# Billed units (seconds) as the ledger keeps them: a decimal string with three places in JSON, never a float.
Units = Annotated[Decimal, PlainSerializer(lambda d: f"{d:.3f}", return_type=str, when_used="json")]


class FindingKind(StrEnum):
    MISMATCH = "mismatch"  # the provider's figure differs from the ledger row's beyond the tolerance
    MISSING_IN_LEDGER = "missing_in_ledger"  # the provider ran an attempt the ledger charges nothing for
    NOT_RUN = "not_run"  # the ledger charges (or names a provider job) for an attempt the provider says never ran


class ReconciliationFinding(BaseModel):
    """One disagreement between the ledger and a provider about one attempt; stored once per (attempt, kind)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    attempt_id: str
    tenant: str
    job_id: str
    provider: ProviderKind
    offer: str
    kind: FindingKind
    unit: str  # the billed unit compared: gpu_seconds (Replicate, RunPod, the GPU agent) or output_seconds (Veo)
    ledger_units: Units
    provider_units: Units | None  # None: the provider says it has no such job
    ledger_usd: Money
    provider_usd: Money | None  # the provider's stated charge, else its units at the row's unit price
    provider_job_id: str | None = None
    detail: str
    ended_at: datetime  # when the attempt ended (its ledger row's day, or the job's); findings are filed by its day
    found_at: datetime


class Tolerance(BaseModel):
    """How far the provider's figure may be from the ledger's before it is a mismatch: the larger of `relative`
    times the larger figure and `absolute_s` seconds (money: `absolute_usd`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    relative: float = Field(default=0.02, ge=0, le=1)
    # Below a few seconds a relative bound is noise: RunPod reports whole milliseconds, the ledger keeps three
    # places, and a clip's output seconds can differ by a frame (1/24 s) from what the provider counts. Half a
    # second is far above those and far below any render worth billing.
    absolute_s: float = Field(default=0.5, ge=0)
    absolute_usd: Decimal = Field(default=Decimal("0.0001"), ge=0)  # one unit of the ledger's four places

    def within(self, ours: Decimal, theirs: Decimal, floor: Decimal) -> bool:
        bound = max(floor, Decimal(str(self.relative)) * max(abs(ours), abs(theirs)))
        return abs(ours - theirs) <= bound


class ReconciliationCounts(BaseModel):
    """What happened to every ledger row of the window (rows = the sum of the row outcomes below) and to the
    attempts of ended jobs that have no row."""

    rows: int = 0  # ledger rows whose attempt ended in the window
    matched: int = 0  # the provider agrees within the tolerance (or, asked about a row that charged nothing, says
    # nothing ran)
    mismatch: int = 0
    not_run: int = 0
    missing_in_ledger: int = 0  # rows recorded `submit_unknown` that the provider did run, and attempts with no row
    expired_at_provider: int = 0  # the provider no longer keeps the job's record or its billed figure
    unreachable: int = 0  # the provider couldn't be asked now (a provider error): try again later
    no_lookup: int = 0  # no provider job id, and the provider can't find a job by our attempt id (RunPod, Veo)
    not_configured: int = 0  # this deployment has no adapter for the row's provider
    not_checked: int = 0  # left unasked when the run's time budget ran out
    jobs: int = 0  # ended jobs looked through for attempts the ledger lacks
    unsettled: int = 0  # attempts of ended jobs still waiting for the provider's word (billed when it answers)


class ReconciliationReport(BaseModel):
    model_config = ConfigDict(populate_by_name=True, serialize_by_alias=True)
    start: datetime = Field(alias="from")  # inclusive
    end: datetime = Field(alias="to")  # exclusive
    ran_at: datetime
    complete: bool  # False when the time budget ran out before every row was checked (`counts.not_checked`)
    tolerance: Tolerance
    counts: ReconciliationCounts
    new_findings: int  # findings stored (and alerted) for the first time by this run
    findings: list[ReconciliationFinding]


class FindingList(BaseModel):
    """`GET /v1/reconciliation`: stored findings of attempts that ended in [from, to] (UTC days)."""

    model_config = ConfigDict(populate_by_name=True, serialize_by_alias=True)
    start: date = Field(alias="from")
    end: date = Field(alias="to")
    findings: list[ReconciliationFinding]
