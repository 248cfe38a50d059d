"""HTTP bodies of API v1 that aren't domain models themselves (docs/architecture.md, "API contract")."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from router.models.budget import Budget
from router.models.decision import Candidate, Chosen
from router.models.job import JobView
from router.models.rating import LearnedQuality

UploadType = Literal["image/png", "image/jpeg", "image/webp", "audio/wav", "audio/mpeg", "video/mp4"]


class FieldProblem(BaseModel):
    field: str
    message: str


class Problem(BaseModel):
    """RFC 9457 problem details, served as application/problem+json."""

    type: str
    title: str
    status: int
    detail: str = ""
    errors: list[FieldProblem] = []
    reasons: list[str] = []


class JobList(BaseModel):
    items: list[JobView]
    next_cursor: str | None


class Quote(BaseModel):
    chosen: Chosen | None
    fallbacks: list[str]
    candidates: list[Candidate]
    reasons: list[str]
    # Per offer with a delivery, the render time behind its estimate: learned beside catalog, with the evidence.
    learned: dict[str, OfferLearned] = {}


class UploadRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    content_type: UploadType


class KeyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    tenant: Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[a-z0-9][a-z0-9_\-]*$")]
    role: Literal["member", "admin"] = "member"


class KeyCreated(BaseModel):
    key: str
    tenant: str
    role: str
    created_at: str


class OfferHealth(BaseModel):
    up: bool
    circuit: Literal["closed", "open", "half_open"] = "closed"
    queue_depth: float = 0


class OfferLearned(BaseModel):
    """An offer's learned figures beside the catalog's, for one render (`reference`), with the evidence."""

    summary: str  # "p50 38 s, learned from 27 runs; catalog 40 min"
    runs: int  # renders the time model learned from
    group_runs: int = 0  # runs of the other offers on its hardware (or provider) its prior started from
    attempts: int  # attempts behind the failure rate
    reference: str  # the render the seconds are for: "832x480, 81 frames"
    p50_s: float
    p90_s: float
    catalog_p50_s: float
    catalog_p90_s: float
    time_factor: float  # learned p50 / catalog p50
    cost_factor: float  # billed / the catalog's price of the billed units
    failure_rate: float  # per attempt
    cold_start_s: float  # learned where measured, else the catalog's
    queue_wait_s: float | None = None  # a warm start's typical delay, where measured
    # What its ratings say of its quality beside the catalog's stars (router.policy.quality), and whether routing
    # reads it yet.
    quality: LearnedQuality | None = None


class OfferView(BaseModel):
    id: str
    provider: str
    model: str
    modes: list[str]
    resolutions: list[str]
    max_frames: int
    fps: tuple[float, float]
    aspect_ratios: list[str]
    quality: int
    pricing: dict[str, Any]
    health: OfferHealth
    configured: bool
    learned: OfferLearned | None = None


class OfferList(BaseModel):
    offers: list[OfferView]


class BudgetList(BaseModel):
    budgets: list[Budget]


class Health(BaseModel):
    status: Literal["ok"]
    time: str
