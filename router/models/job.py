"""Job, Attempt and their lifecycle (docs/architecture.md, "Job lifecycle").

accepted → routed → submitted → running → succeeded | failed | cancelled | expired | rejected.
A failed attempt may send the job back to `routed` for the next candidate (a fallback hop); terminal
states are never left. The store enforces these with conditional writes on `version`.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from router.models.common import Mode, Money, ProviderKind, money
from router.models.decision import Decision, DeliveredSpec
from router.models.experiment import ExperimentAssignment
from router.models.outcome import AttemptOutcome, AttemptReason, AttemptReasonText, Billed, BilledUnits
from router.models.request import VideoRequest


class JobStatus(StrEnum):
    ACCEPTED = "accepted"
    ROUTED = "routed"
    SUBMITTED = "submitted"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    EXPIRED = "expired"
    REJECTED = "rejected"

    @property
    def terminal(self) -> bool:
        return self in TERMINAL


TERMINAL = frozenset({JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED, JobStatus.EXPIRED,
                      JobStatus.REJECTED})
_ENDINGS = {JobStatus.FAILED, JobStatus.CANCELLED, JobStatus.EXPIRED}
ALLOWED: dict[JobStatus, frozenset[JobStatus]] = {
    JobStatus.ACCEPTED: frozenset({JobStatus.ROUTED, JobStatus.REJECTED, *_ENDINGS}),
    JobStatus.ROUTED: frozenset({JobStatus.ROUTED, JobStatus.SUBMITTED, JobStatus.REJECTED, *_ENDINGS}),
    JobStatus.SUBMITTED: frozenset({JobStatus.RUNNING, JobStatus.SUCCEEDED, JobStatus.ROUTED, *_ENDINGS}),
    JobStatus.RUNNING: frozenset({JobStatus.RUNNING, JobStatus.SUCCEEDED, JobStatus.ROUTED, *_ENDINGS}),
    **{status: frozenset() for status in TERMINAL},
}


def can_transition(current: JobStatus, target: JobStatus) -> bool:
    return target in ALLOWED[current]


class AttemptStatus(StrEnum):
    SUBMITTING = "submitting"  # intent written, provider call in flight or crashed: reconcile, never resubmit
    SUBMITTED = "submitted"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def ended(self) -> bool:
        return self in {AttemptStatus.SUCCEEDED, AttemptStatus.FAILED, AttemptStatus.CANCELLED}


class Attempt(BaseModel):
    model_config = ConfigDict(extra="forbid")
    n: int
    id: str
    offer: str
    provider: ProviderKind
    target: str
    provider_job_id: str | None = None
    status: AttemptStatus = AttemptStatus.SUBMITTING
    reason: AttemptReasonText | None = None
    submit_tries: int = 0  # submits that failed before the provider confirmed the job
    unsent: bool = False  # the last failed submit provably created nothing (refused or never sent)
    started_at: datetime
    ended_at: datetime | None = None
    delivered: DeliveredSpec
    estimated_cost_usd: Money
    estimated_render_s: float | None = None  # the catalog's own p50: what the time model learns against
    billed: BilledUnits = Field(default_factory=Billed)
    actual_cost_usd: Money | None = None
    # The attempt's one poll chain: its messages carry `poll_chain`, and starting a chain bumps it, so an older
    # chain stops at its next message. `poll_due_at`: the chain's next message is due by then; the sweeper starts
    # a new chain only once that has passed by more than its grace.
    poll_chain: int = 0
    poll_due_at: datetime | None = None
    unreachable_since: datetime | None = None  # the target's first unanswered call since its last answer
    # Set when the job ended (cancelled, expired) before the provider said what this attempt ran: the attempt
    # stays open until the provider answers, then is closed with this outcome and what it billed.
    settle_as: AttemptOutcome | None = None
    # An exploring attempt (router.policy.exploration): not done by then, it is stopped and the job falls back.
    explore_until: datetime | None = None

    @property
    def awaits_settling(self) -> bool:
        """Left open by a cancel or expiry until the provider says what it ran (`settle_as`)."""
        return self.settle_as is not None and not self.status.ended

    def close(self, now: datetime, status: AttemptStatus, reason: AttemptReason | None, billed: Billed,
              actual: Decimal) -> None:
        """End the attempt with what its provider billed (the delivered length always recorded beside it)."""
        self.status = status
        self.reason = reason
        self.ended_at = now
        self.billed = billed.with_output(round(self.delivered.duration_s, 3))
        self.actual_cost_usd = actual


class JobCost(BaseModel):
    model_config = ConfigDict(extra="forbid")
    estimated_usd: Money | None = None
    actual_usd: Money = Decimal("0.0000")


class JobOutput(BaseModel):
    model_config = ConfigDict(extra="forbid")
    s3_uri: str
    content_type: str = "video/mp4"
    bytes: int
    width: int
    height: int
    frames: int
    fps: float
    duration_s: float
    url: str | None = None  # presigned GET, filled in when the job is read, never stored


# The `attempt_id` of an `extend` job's first segment: the client's video, which no attempt rendered.
CLIENT_VIDEO = "client"


class Segment(BaseModel):
    """A rendered segment of a long-form job: its video in our bucket, paid for by its attempt."""

    model_config = ConfigDict(extra="forbid")
    attempt_id: str
    s3_uri: str
    frames: int
    # The frame the next segment starts from (an `s3://` ref in the tenant's uploads); None on the last one.
    last_frame: str | None = None


class Segments(BaseModel):
    """A long-form job's plan and what of it is done (docs/architecture.md, "Long-form"). A failed segment is
    rendered again from the last good one; a fallback hop may split what is left differently, so `frames` is
    what is done plus what the latest decision plans for the rest."""

    model_config = ConfigDict(extra="forbid")
    width: int
    height: int
    fps: float
    frames: int
    done: list[Segment] = []
    # How the segments became one video: packets copied, or (streams that differ) decoded and encoded once more.
    joined: Literal["copied", "re-encoded"] | None = None

    def adopt(self, width: int, height: int, fps: float) -> None:
        """Make the joined video at this size and rate (the first render's), the client's video counted at it."""
        for segment in self.done:
            segment.frames = round(segment.frames / self.fps * fps)
        self.width, self.height, self.fps = width, height, fps

    @property
    def rendered(self) -> bool:
        """Whether any segment was rendered here (an `extend` job starts with the client's video done)."""
        return any(segment.attempt_id != CLIENT_VIDEO for segment in self.done)

    @property
    def done_frames(self) -> int:
        return sum(segment.frames for segment in self.done)

    @property
    def remaining_s(self) -> float:
        return (self.frames - self.done_frames) / self.fps


class JobError(BaseModel):
    model_config = ConfigDict(extra="forbid")
    code: str
    message: str
    details: list[str] = []


class JobCancel(BaseModel):
    model_config = ConfigDict(extra="forbid")
    requested_at: datetime
    # Whether the provider charges for what ran before the cancel; true while that is still being settled.
    billed: bool


class JobView(BaseModel):
    """The Job of the API contract (docs/architecture.md, "API contract")."""

    model_config = ConfigDict(extra="forbid")
    id: str
    status: JobStatus
    created_at: datetime
    updated_at: datetime
    deadline: datetime | None = None
    request: VideoRequest
    progress: float = 0.0
    routing: Decision | None = None
    attempts: list[Attempt] = []
    cost: JobCost = JobCost()
    output: JobOutput | None = None
    error: JobError | None = None
    cancel: JobCancel | None = None
    segments: Segments | None = None  # long-form jobs only
    experiment: ExperimentAssignment | None = None  # the A/B experiment that chose its offer, if one did


class Job(JobView):
    """A job as stored: the public view plus its owner and the version its conditional writes check."""

    tenant: str
    version: int = 0
    notified: bool = False  # terminal-state event and callback queued (the outbox flag; see services.lifecycle)

    @property
    def current_attempt(self) -> Attempt | None:
        return self.attempts[-1] if self.attempts else None

    def attempt(self, attempt_id: str) -> Attempt | None:
        return next((a for a in self.attempts if a.id == attempt_id), None)

    def total_actual(self) -> Decimal:
        """What the job's attempts cost so far."""
        return money(sum((a.actual_cost_usd or Decimal(0) for a in self.attempts), Decimal(0)))

    def work_request(self) -> VideoRequest:
        """What the next attempt is routed and sent for: the request itself, or for a long-form job with segments
        done, the rest of it as an i2v continuing from the last good segment's last frame, at the same size and
        frame rate (so the segments join without re-encoding) and within what is left of the cost cap."""
        plan = self.segments
        if plan is None or not plan.done:
            return self.request
        cap = self.request.max_cost_usd
        rest: dict[str, object] = {
            "mode": Mode.I2V, "image": plan.done[-1].last_frame, "audio": None, "mask": None, "last_image": None,
            "video": None, "reference_images": None, "camera": None,
            "max_cost_usd": None if cap is None else max(money(cap - self.total_actual()), Decimal("0.0001"))}
        if not plan.rendered:
            # `extend` before its first render: the client's own video is all that is done, and what to add is
            # the request's own length, size and rate (the joined video is made at whatever renders it).
            return self.request.model_copy(update=rest)
        # The same model all the way, so the video doesn't change its look at a join; after a failed try the
        # fallback may take any offer that can continue it.
        last = self.attempt(plan.done[-1].attempt_id)
        if last is not None and self.attempts[-1] is last and self.request.model is None:
            rest["model"] = last.offer
        return self.request.model_copy(update={
            **rest, "duration_s": round(plan.remaining_s, 6), "fps": plan.fps,
            "resolution": f"{plan.width}x{plan.height}"})

    def overall_progress(self, attempt_progress: float) -> float:
        """The job's progress while its current attempt is `attempt_progress` done: a long-form job counts the
        segments done and the current one's share of the frames."""
        plan, attempt = self.segments, self.current_attempt
        if plan is None or attempt is None or not plan.frames:
            return attempt_progress
        return min(1.0, (plan.done_frames + attempt_progress * attempt.delivered.frames) / plan.frames)

    def view(self) -> JobView:
        return JobView.model_validate(self.model_dump(exclude={"version", "tenant", "notified"}))
