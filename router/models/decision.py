"""What the policy decided, and why: stored on the job and returned by quotes.

Why an offer can't take a request is a `Reason`: a code the code acts on (the worker reads a budget refusal's
scope, the campaign planner and exploration read which codes are soft), a detail for people, and the budget scope
where one is named. The API and the stored document carry each as its text, `code: detail`, as they always have.

These are frozen stdlib dataclasses, not pydantic models: the engine builds one row per offer for every decision,
and constructing pydantic models dominated its time. Pydantic still validates and serializes them wherever they
sit inside a model (the Job, the Quote), so the API contract and the stored document are unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any

from pydantic import BeforeValidator, PlainSerializer, WithJsonSchema

from router.models.common import Money, ProviderKind


class Refusal(StrEnum):
    """Why an offer can't take a request (the codes of the candidate table)."""

    SPEND_MODE = "spend_mode"
    PINNED = "pinned"
    PROVIDER_NOT_ALLOWED = "provider_not_allowed"
    NOT_CONFIGURED = "not_configured"
    TARGET_DOWN = "target_down"
    CIRCUIT_OPEN = "circuit_open"
    ALREADY_TRIED = "already_tried"
    MODE = "mode"
    QUALITY = "quality"
    RESOLUTION = "resolution"
    FPS = "fps"
    DURATION = "duration"
    PRICING = "pricing"
    OVER_CAP = "over_cap"
    BUDGET = "budget"
    DEADLINE = "deadline"
    DISPLACES = "displaces"
    VRAM = "vram"
    NOT_INSTALLED = "not_installed"


@dataclass(frozen=True, slots=True)
class Reason:
    code: str  # a Refusal on a candidate; a failure code (services.route) on an attempt
    detail: str
    scope: str | None = None  # the budget scope a `budget` refusal names

    def __str__(self) -> str:
        return f"{self.code}: {self.detail}" if self.detail else self.code

    @classmethod
    def from_text(cls, value: Any) -> Any:
        """A stored or sent reason (`code: detail`) read back; the scope isn't kept in the text, and nothing that
        reads a stored decision needs it."""
        if isinstance(value, str):
            code, _, detail = value.partition(":")
            return cls(code.strip(), detail.strip())
        return value


# A Reason in the API and the stored document: its text, as before the type existed.
ReasonText = Annotated[Reason, BeforeValidator(Reason.from_text), PlainSerializer(str, return_type=str),
                       WithJsonSchema({"type": "string"})]


@dataclass(frozen=True, slots=True)
class DeliveredSpec:
    """What an offer will actually render for a request, after its rounding rules: `frames` in all, as `segments`
    equal renders chained by their last frame where the video is longer than one render (long-form)."""

    width: int
    height: int
    frames: int
    fps: float
    segments: int = 1

    @property
    def duration_s(self) -> float:
        return self.frames / self.fps

    @property
    def segment_frames(self) -> int:
        return self.frames // self.segments

    def first_segment(self) -> DeliveredSpec:
        """What one render of a long-form delivery makes: the spec an attempt renders and is checked against."""
        return DeliveredSpec(self.width, self.height, self.segment_frames, self.fps)


@dataclass(frozen=True, slots=True)
class Candidate:
    offer: str
    provider: ProviderKind
    feasible: bool
    reasons: list[ReasonText] = field(default_factory=list)
    estimated_cost_usd: Money | None = None
    estimated_cost_p90_usd: Money | None = None
    estimated_ready_at: datetime | None = None
    score: float | None = None
    delivered: DeliveredSpec | None = None
    # The box of a fleet the estimate was made for (None: the offer's provider is its one target). A campaign's
    # planned offer is placed there, where its figures hold (policy.plan.follow_plan).
    target: str | None = None


@dataclass(frozen=True, slots=True)
class Chosen:
    offer: str
    provider: ProviderKind
    target: str
    estimated_cost_usd: Money
    estimated_cost_p90_usd: Money
    estimated_ready_at: datetime
    score: float
    delivered: DeliveredSpec
    reason: str
    # Set when the offer was chosen to explore it (router.policy.exploration): why, and the abandon point past
    # which the worker stops it and falls back.
    explored: str | None = None
    explore_until: datetime | None = None


@dataclass(frozen=True, slots=True)
class Decision:
    chosen: Chosen | None
    fallbacks: list[str]
    candidates: list[Candidate]
    reasons: list[str]
    decided_at: datetime
