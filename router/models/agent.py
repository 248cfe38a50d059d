"""The fleet registry's wire models (docs/architecture.md, "Fleet registry"): what a GPU agent announces with
`PUT /v1/agents/{name}`, what the registry keeps of it, and the per-agent keys an admin issues.

Every field is checked here as far as the body alone can tell (bounds, shapes, names that can't be paths); what
needs the deployment (the models file, the embedded stack's loopback exemption) is checked by
router.services.agents once the signature has been.
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Literal
from urllib.parse import urlsplit

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError

# A DNS label: agent names end up in Secrets Manager secret names, DynamoDB keys and log lines.
AGENT_NAME_PATTERN = r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$"
# A models-file name (`wan21-14b`): no slash, no backslash, no `..`, so it can never name a file outside the
# models folder when an agent or a router joins it onto a path.
_MODEL_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,99}$")
MIN_VRAM_MB, MAX_VRAM_MB = 1024, 256 * 1024  # 1 GB (no video model runs in less) to 256 GB (past any card made)
MIN_RAM_MB, MAX_RAM_MB = 1024, 4 * 1024 * 1024  # 4 TB: past any workstation board
MAX_SLOTS = 16
MAX_ETA_S = 30 * 86400.0  # a month: a queue estimate past it is a broken clock, not a queue
# A utilization window under a minute is one render's noise; over a week it says little about the box as it is now.
MIN_UTILIZATION_WINDOW_S, MAX_UTILIZATION_WINDOW_S = 60.0, 7 * 86400.0


class AgentState(StrEnum):
    UP = "up"  # heard from within the heartbeat window and taking work
    DRAINING = "draining"  # heard from, finishing what it holds, taking nothing new (POST …/drain)
    DOWN = "down"  # missed its heartbeats: not routable whatever else it said


def model_name(value: str) -> str:
    """`value` if it can only be a models-file name; a ValueError saying what is wrong with it otherwise."""
    if value.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", value):
        raise ValueError(f"{value!r} is an absolute path, not a model name from the models file")
    if ".." in value:
        raise ValueError(f"{value!r} has '..': a model name never leaves the models folder")
    if "/" in value or "\\" in value:
        raise ValueError(f"{value!r} is a path, not a model name from the models file")
    if not _MODEL_NAME.match(value):
        raise ValueError(f"{value!r} is not a model name (lowercase letters, digits, '.', '_', '-'; up to 100)")
    return value


class QueuedWork(BaseModel):
    """One job the box holds: no ids, prompts or URLs, only what routing prices (model, when it is done)."""

    model_config = ConfigDict(extra="forbid")

    model: str = Field(max_length=100)
    status: Literal["queued", "running"]
    eta_s: float = Field(ge=0, le=MAX_ETA_S, description="seconds from this heartbeat until the job is done")
    deadline: AwareDatetime | None = None

    @field_validator("model")
    @classmethod
    def _model(cls, value: str) -> str:
        return model_name(value)


class MeasuredSpeed(BaseModel):
    """A render speed the box measured itself, for the routing work to weigh against the catalog's figure."""

    model_config = ConfigDict(extra="forbid")

    model: str = Field(max_length=100)
    width: int = Field(ge=2, le=7680)
    height: int = Field(ge=2, le=4320)
    seconds_per_frame: float = Field(gt=0, le=86400)
    samples: int = Field(ge=1, le=1_000_000)

    @field_validator("model")
    @classmethod
    def _model(cls, value: str) -> str:
        return model_name(value)


class Utilization(BaseModel):
    """How busy the box's slots were lately, by its own job store: wall time, not GPU-seconds."""

    model_config = ConfigDict(extra="forbid")

    window_s: float = Field(ge=MIN_UTILIZATION_WINDOW_S, le=MAX_UTILIZATION_WINDOW_S,
                            description="the seconds looked back over, up to this heartbeat")
    busy_s: float = Field(ge=0, description=(
        "seconds spent rendering in that window, summed over the slots: at most window_s * slots"))


class AgentRegistration(BaseModel):
    """`PUT /v1/agents/{name}`'s body, sent every heartbeat: the box as it is now (the registry keeps the latest)."""

    model_config = ConfigDict(extra="forbid")

    tunnel_url: str = Field(min_length=8, max_length=2048, description=(
        "where the router reaches the agent: https and a public DNS name (loopback http only on the embedded "
        "stack)"))
    gpu: str = Field(min_length=1, max_length=100, description="the card as its driver names it")
    vram_mb: int = Field(ge=MIN_VRAM_MB, le=MAX_VRAM_MB, description="the card's total memory")
    ram_mb: int = Field(ge=MIN_RAM_MB, le=MAX_RAM_MB, description="system memory, what offloading spills into")
    slots: int = Field(ge=1, le=MAX_SLOTS, description="jobs the box renders at once")
    models: list[str] = Field(max_length=200, description="models-file names the box can run now")
    queue: list[QueuedWork] = Field(default_factory=list, max_length=1000,
                                    description="running, then queued, in the order they run")
    speeds: list[MeasuredSpeed] | None = Field(default=None, max_length=200)
    power_w: int | None = Field(default=None, ge=1, le=5000,
                                description="the box's draw while rendering, for its energy cost per job")
    utilization: Utilization | None = Field(default=None, description="absent from agents older than the field")

    @field_validator("tunnel_url")
    @classmethod
    def _tunnel_url(cls, value: str) -> str:
        # The scheme and the host's kind need the deployment (router.services.agents); here only the shape.
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an https URL with a host")
        if "@" in parts.netloc or parts.query or parts.fragment:
            raise ValueError("must have no userinfo, query or fragment")
        return value.rstrip("/")

    @field_validator("gpu")
    @classmethod
    def _printable(cls, value: str) -> str:
        if not value.isprintable():
            raise ValueError("must be printable text")
        return value

    @field_validator("models")
    @classmethod
    def _models(cls, value: list[str]) -> list[str]:
        for name in value:
            model_name(name)
        if len(set(value)) != len(value):
            raise ValueError("names a model twice")
        return value

    @model_validator(mode="after")
    def _busy_within_slots(self) -> AgentRegistration:
        measured = self.utilization
        if measured is not None and measured.busy_s > measured.window_s * self.slots:
            # Raised at the field it is about: a plain ValueError here would name no field.
            raise ValidationError.from_exception_data(type(self).__name__, [InitErrorDetails(
                type=PydanticCustomError("value_error", f"{measured.busy_s:g} s busy in a {measured.window_s:g} s "
                                         f"window is more than {self.slots} slot(s) can render"),
                loc=("utilization", "busy_s"), input=measured.busy_s)])
        return self


class AgentRecord(BaseModel):
    """What the registry keeps of one box: its latest registration, when it was last heard from, and the admin's
    drain. Its routing state is not stored: it depends on the clock (router.store.agents.state)."""

    name: str
    registration: AgentRegistration
    key_id: str = Field(description="the key that signed the latest heartbeat")
    registered_at: AwareDatetime = Field(description="its first heartbeat")
    last_seen: AwareDatetime
    draining: bool = False
    drained_at: AwareDatetime | None = None


class BoxSpeed(BaseModel):
    """What the router has learned of one offer on one box (`offer@box`, router.policy.learning)."""

    runs: int
    time_vs_catalog: float = Field(description="its learned p50 render time over the catalog's p50 for the same work")


class AgentView(AgentRecord):
    state: AgentState
    utilization: float | None = Field(default=None, description=(
        "the share of its slots' time it spent rendering over the window its latest heartbeat reported (busy_s / "
        "(window_s * slots)); null when it reported none"))
    busy_now: float | None = Field(default=None, description=(
        "the share of its slots rendering at its latest heartbeat: the running jobs of its queue over its slots"))
    # Listing and lookup only (a heartbeat's answer leaves them out): what the box's renders taught the router.
    learned: dict[str, BoxSpeed] = Field(default_factory=dict, description="by offer id")
    time_vs_fleet: float | None = Field(default=None, description=(
        "how much longer this box renders than its fleet, over the offers it has run; what prices a model it "
        "hasn't run yet"))


class AgentList(BaseModel):
    agents: list[AgentView]
    heartbeat_s: float = Field(description="how often agents announce themselves; 3 missed and a box is down")


class AgentKey(BaseModel):
    """A key issued to an agent: its secret is shown here once and kept only in Secrets Manager."""

    name: str
    key_id: str
    secret: str
    created_at: AwareDatetime
    previous_key_id: str | None = None
    previous_valid_until: AwareDatetime | None = Field(default=None, description=(
        "a rotation's overlap: the previous key still signs until then, so the agent can be given the new one"))


class AgentKeysRevoked(BaseModel):
    name: str
    revoked_key_ids: list[str]
    revoked_at: AwareDatetime
