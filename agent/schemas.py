"""Wire models of the agent's HTTP API (docs/agent-api.md); the store and the routes share them."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator

JobStatus = Literal["queued", "running", "succeeded", "failed", "cancelled"]
TERMINAL_STATUSES: frozenset[str] = frozenset({"succeeded", "failed", "cancelled"})


def utc_now() -> str:
    """One timestamp format for every field the agent writes, so clients can compare them as strings."""
    return utc_stamp(datetime.now(UTC))


def utc_stamp(at: datetime) -> str:
    """`at` in utc_now's format, for comparing with the stored timestamps as strings."""
    return at.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class Spec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # H.264 in yuv420p subsamples chroma by two, so odd sizes can't be delivered exactly.
    width: int = Field(ge=2, le=7680, multiple_of=2)
    height: int = Field(ge=2, le=4320, multiple_of=2)
    frames: int = Field(ge=1, le=10_000)
    fps: float = Field(gt=0, le=240)


class OutputTarget(BaseModel):
    put_url: str = Field(min_length=1)
    content_type: str = "video/mp4"


class CreateJobRequest(BaseModel):
    """POST /v1/jobs body; kept verbatim in the store so a restarted agent can run it again."""

    attempt_id: str = Field(min_length=1, max_length=200)
    job_id: str = Field(min_length=1, max_length=200)
    model: str = Field(min_length=1, max_length=200)
    prompt: str = Field(max_length=20_000)
    negative_prompt: str | None = None
    spec: Spec
    seed: int | None = None
    workflow: dict[str, Any] | None = None
    inputs: dict[str, str] = Field(default_factory=dict)
    output: OutputTarget
    callback_url: str | None = None
    # The job's deadline: the queue runs earliest deadline first (agent/store.py), jobs without one last.
    deadline: AwareDatetime | None = None
    # An exploring try: the router stops it here if it is unfinished, so it holds the GPU until then at most. Reported
    # back in the health check's queue for the router to price the try by.
    stop_at: AwareDatetime | None = None

    @field_validator("attempt_id", "job_id")
    @classmethod
    def _printable(cls, value: str) -> str:
        # Ids end up in log lines and URL paths; control characters or slashes there only cause trouble.
        if not value.isprintable() or "/" in value:
            raise ValueError("must be printable and contain no '/'")
        return value


class JobOutput(BaseModel):
    bytes: int
    sha256: str
    content_type: str


class Job(BaseModel):
    """The agent's view of one router attempt."""

    id: str
    job_id: str
    model: str
    status: JobStatus
    progress: float = 0.0
    queue_position: int = 0
    # A queued job's start, as this agent expects it: the work ahead of it (its models.yaml figures), spread over
    # its slots; null once it has left the queue. The router paces its polls by it (router.services.poll_chain).
    starts_in_s: float | None = None
    gpu_seconds: float = 0.0
    error: str | None = None
    created_at: str
    started_at: str | None = None
    ended_at: str | None = None
    output: JobOutput | None = None


class Vram(BaseModel):
    total_mb: int
    free_mb: int


class QueuedJob(BaseModel):
    """One job the GPU holds, for the router to price in its own learned figures (router.policy.localqueue). No
    ids, prompts or URLs: the health check is open."""

    model: str
    spec: Spec
    status: Literal["queued", "running"]
    progress: float
    deadline: AwareDatetime | None
    left_s: float  # this agent's own estimate of the GPU-seconds left (its models.yaml figures), as in eta_s
    stop_at: AwareDatetime | None = None  # an exploring try's stop: it holds the GPU until then at most


class Utilization(BaseModel):
    """How busy the box's slots were lately: wall time, not GPU-seconds (the sim renders time-scaled)."""

    window_s: float  # the last this many seconds, up to the health check
    busy_s: float  # rendering seconds in that window summed over the slots: at most window_s * slots


class Health(BaseModel):
    status: Literal["ok"] = "ok"
    agent_id: str
    engine: str
    slots: int
    queue_depth: int
    running: int
    eta_s: float
    vram: Vram
    ram_mb: int | None = None  # system memory, what offloading spills into (the router's hardware fit reads it)
    # Model → modes the engine can run now (its files present, its VRAM need within the card); null when the engine
    # can't tell. For the router to mark local offers missing here unavailable.
    models: dict[str, list[str]] | None = None
    # Models-file family → whether every file it loads is in ComfyUI's model folders (a wrong-size file counts as
    # missing); null unless the agent was given --comfyui-root. The router doesn't read it yet (`models` decides).
    families: dict[str, Literal["ready", "missing files"]] | None = None
    queue: list[QueuedJob] = Field(default_factory=list)  # running, then queued, in the order they run
    utilization: Utilization
