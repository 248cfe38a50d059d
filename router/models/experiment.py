"""A/B experiments between two arms of the catalog (docs/architecture.md, "Experiments").

An admin defines one (`PUT /v1/experiments/{name}`); the route step assigns a share of the eligible traffic to one
arm or the other, deterministically by the sticky unit, and records the assignment on the job. An arm is an offer
id (`local/wan21-1.3b`) or a model family (`wan`: every offer whose model's leading word it is).
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from router.models.common import Money

NAME_PATTERN = r"^[a-z0-9][a-z0-9_\-]{0,63}$"
Arm = Literal["a", "b"]


class Stickiness(StrEnum):
    """What one draw assigns: every job of a campaign (a job outside one is its own unit), of a tenant, or each
    request on its own."""

    CAMPAIGN = "campaign"
    TENANT = "tenant"
    REQUEST = "request"


class ExperimentSpec(BaseModel):
    """`PUT /v1/experiments/{name}`."""

    model_config = ConfigDict(extra="forbid")
    arms: Annotated[list[Annotated[str, Field(min_length=2, max_length=120)]], Field(
        min_length=2, max_length=2, description="arm a and arm b: each an offer id or a model family (`wan`, `veo`)")]
    share: Annotated[float, Field(gt=0, le=1, description="of the eligible requests (both arms can serve them "
                                                          "within their constraints), the share the experiment takes")]
    stickiness: Stickiness = Stickiness.CAMPAIGN
    spend_cap_usd: Annotated[Money, Field(gt=Decimal(0), le=Decimal(100000), decimal_places=4, description=(
        "the most the experiment's renders may be estimated to cost (each assignment commits its p90 estimate, "
        "both renders of a pair)"))]
    ends_at: datetime = Field(description="no job is assigned after this")
    paired: bool = Field(False, description="render each assigned request on both arms (both billed to its tenant) "
                                            "so raters compare them side by side")
    description: Annotated[str, Field(max_length=500)] | None = None

    @field_validator("arms")
    @classmethod
    def _two_different(cls, arms: list[str]) -> list[str]:
        if arms[0] == arms[1]:
            raise ValueError("the two arms must differ")
        return arms

    @field_validator("ends_at")
    @classmethod
    def _aware(cls, value: datetime) -> datetime:
        if value.tzinfo is None:
            raise ValueError("must carry a time zone (e.g. 2027-01-31T00:00:00Z)")
        return value


class Experiment(ExperimentSpec):
    name: str
    created_at: datetime
    updated_at: datetime
    created_by: str


class ExperimentAssignment(BaseModel):
    """What a job's route step drew, kept on the job: the arm it was sent to and, for a paired request, its twin."""

    model_config = ConfigDict(extra="forbid")
    name: str
    arm: Arm
    arm_spec: str  # the arm as defined: an offer id or a family
    unit: str  # the sticky unit the draw was made for: `campaign:<id>`, `tenant:<id>` or `job:<id>`
    paired_with: str | None = None  # the other job of a pair
    twin: bool = False  # True: the extra render a paired experiment made (not the client's own request)


class ExperimentState(BaseModel):
    """An experiment with what it has committed so far."""

    experiment: Experiment
    assigned: int = 0  # jobs assigned (a pair counts two)
    committed_usd: Money = Decimal(0)  # p90 estimates of the renders it assigned
    version: int = 0

    def status(self, now: datetime) -> str:
        if now >= self.experiment.ends_at:
            return "ended"
        if self.committed_usd >= self.experiment.spend_cap_usd:
            return "cap_reached"
        return "running"


class AssignedJob(BaseModel):
    """One job an experiment assigned, as the experiment lists it (its results read these jobs)."""

    tenant: str
    job_id: str
    arm: Arm
    twin: bool = False
    assigned_at: datetime
