"""Ratings of delivered videos, and the quality each offer has earned from them (docs/architecture.md, "Ratings and
the scorecard").

A rating is one rater key's score of one succeeded job, 1-5 stars like the catalog's, with an optional comment and
an optional pairwise preference (`preferred_over`: another job of the same request content that this one beat).
"""

from __future__ import annotations

import hashlib
import json
from datetime import date, datetime
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, Strict

from router.models.common import ProviderKind
from router.models.request import VideoRequest

MIN_SCORE, MAX_SCORE = 1, 5  # the catalog's star scale: a learned figure replaces stars one for one
MAX_COMMENT = 2000
# A job id as the API's paths take it (functions/api/http.ID_PATTERN).
JOB_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_\-]{0,127}$"
# What a video shows, as the request asked it; routing fields (size, floor, deadline, pins) are left out, so the
# same request rendered on two offers, or a campaign item rendered twice, has one fingerprint.
CONTENT_FIELDS = ("mode", "prompt", "negative_prompt", "image", "audio", "mask", "last_image", "video",
                  "reference_images", "camera")


def _whole(value: Any) -> Any:
    """JSON has one number type: 4.0 is the integer 4 (as JSON Schema reads it); "4", true and 4.5 stay refused."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


class RatingCreate(BaseModel):
    """`POST /v1/jobs/{id}/rating`."""

    model_config = ConfigDict(extra="forbid")
    score: Annotated[int, Strict(), Field(ge=MIN_SCORE, le=MAX_SCORE, description="1-5, as the catalog's stars"),
                     BeforeValidator(_whole)]
    comment: Annotated[str, Field(max_length=MAX_COMMENT)] | None = None
    preferred_over: Annotated[str, Field(pattern=JOB_ID_PATTERN, description=(
        "another succeeded job of this tenant with the same request content (prompt, mode, inputs) that this one "
        "was preferred over"))] | None = None


class RatingView(BaseModel):
    """A rating as the API shows it: the rater is the first 16 hex digits of its key's SHA-256, never the key."""

    job_id: str
    rater: str
    score: int
    comment: str | None = None
    preferred_over: str | None = None
    preferred_over_offer: str | None = None  # the losing job's offer, kept so preference shares need no job reads
    offer: str
    provider: ProviderKind
    model: str
    delivered_on: date  # the UTC day the job delivered: the day reports file the rating under
    rated_at: datetime
    demo: bool = False  # seeded by `make demo`, not a person's judgement


class Rating(RatingView):
    tenant: str

    def view(self) -> RatingView:
        return RatingView.model_validate(self.model_dump(exclude={"tenant"}))


class RatingList(BaseModel):
    job_id: str
    ratings: list[RatingView]


class ScoreTally(BaseModel):
    """One offer's ratings summed exactly (integers): what the quality estimate is computed from."""

    model_config = ConfigDict(frozen=True)
    n: int = 0
    total: int = 0  # sum of scores
    squares: int = 0  # sum of squared scores

    def plus(self, score: int) -> ScoreTally:
        return ScoreTally(n=self.n + 1, total=self.total + score, squares=self.squares + score * score)

    def minus(self, score: int) -> ScoreTally:
        return ScoreTally(n=self.n - 1, total=self.total - score, squares=self.squares - score * score)


class LearnedQuality(BaseModel):
    """An offer's quality from its ratings beside its catalog stars (router.policy.quality)."""

    stars: int  # the catalog's
    value: float  # posterior mean on the same 1-5 scale
    low: float  # 90 % interval
    high: float
    ratings: int
    in_use: bool  # True: routing's floor check and score read `value`, not `stars`
    summary: str  # "3.6 (3.3-3.9) from 41 ratings, in use; catalog 4"


def content_fingerprint(request: VideoRequest) -> str:
    """The request content two jobs must share for one to be preferred over the other."""
    shown = request.model_dump(mode="json", include=set(CONTENT_FIELDS), exclude_none=True)
    return hashlib.sha256(json.dumps(shown, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
