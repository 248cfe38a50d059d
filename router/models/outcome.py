"""How an attempt ended, and what its provider billed for it: typed where the code acts on them, text where people
read them.

An attempt's `reason` is an `AttemptReason`: a code that the fallback rule, the job's error code and the ledger
outcome are read from, and a detail for people. The API and the stored document carry it as its text,
`code: detail`; a stored text whose prefix is no code (written before the codes existed, or a provider's own
words) reads back as the provider's failure with the whole text as detail.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Annotated, Any

from pydantic import BeforeValidator, ConfigDict, PlainSerializer, WithJsonSchema

REASON_CHARS = 300  # what an attempt's reason may hold: provider errors can be whole stack traces


class AttemptCode(StrEnum):
    # Why an attempt failed.
    REJECTED = "rejected"  # the provider refused the job (or we refused to send it)
    INPUT_REJECTED = "input_rejected"  # the client's input was refused (by the provider, or by our fetch rules)
    INPUT_UNAVAILABLE = "input_unavailable"  # the client's input could not be fetched
    SUBMIT_FAILED = "submit_failed"  # refused or never sent, every bounded submit try
    SUBMIT_UNKNOWN = "submit_unknown"  # the provider never confirmed whether it took the job
    AGENT_LOST = "agent_lost"  # the GPU agent answered nothing for too long
    PROVIDER_UNREACHABLE = "provider_unreachable"  # a cloud target answered nothing for too long
    PROVIDER_FAILED = "provider_failed"  # the provider reported the render failed
    CONTENT_FILTERED = "content_filtered"  # the provider's safety filter struck
    OUTPUT_REJECTED = "output_rejected"  # its output's URL broke our download rules
    OUTPUT_MISSING = "output_missing"  # success reported, no file arrived
    OUTPUT_UNPLAYABLE = "output_unplayable"
    OUTPUT_MISMATCH = "output_mismatch"  # not the size, frames or fps it was asked for
    EXPLORATION_ABANDONED = "exploration_abandoned"  # an exploring try not done by its abandon point
    QUEUE_STALLED = "queue_stalled"  # a cloud provider never started it (poll_chain.QUEUE_STALL_S); cancelled there
    RENDER_STALLED = "render_stalled"  # a cloud render still not done far past its expected time (render_stall_s)
    # Why an attempt ended otherwise, or what holds an open one.
    CANCELLED = "cancelled"
    EXPIRED = "expired"
    SUBMIT_RETRY = "submit_retry"


class AttemptOutcome(StrEnum):
    """An attempt's outcome as its ledger row records it, which decides how it is billed (services.billing)."""

    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CONTENT_FILTERED = "content_filtered"  # never billed
    SUBMIT_UNKNOWN = "submit_unknown"  # nothing is known to have run
    ABANDONED = "abandoned"
    CANCELLED = "cancelled"
    EXPIRED = "expired"


# Failures after the provider reported the render done: it rendered, and bills, whatever we then made of its output.
_RENDERED = frozenset({AttemptCode.OUTPUT_REJECTED, AttemptCode.OUTPUT_MISSING, AttemptCode.OUTPUT_UNPLAYABLE,
                       AttemptCode.OUTPUT_MISMATCH})
# The failures whose ledger row says more than `failed`.
_OWN_OUTCOME = {AttemptCode.CONTENT_FILTERED: AttemptOutcome.CONTENT_FILTERED,
                AttemptCode.SUBMIT_UNKNOWN: AttemptOutcome.SUBMIT_UNKNOWN}


@dataclass(frozen=True, slots=True)
class AttemptReason:
    code: AttemptCode
    detail: str

    def __str__(self) -> str:
        return f"{self.code}: {self.detail}"[:REASON_CHARS]

    @property
    def rendered(self) -> bool:
        """Whether the provider rendered the video (and bills it as delivered) though the attempt failed."""
        return self.code in _RENDERED

    @property
    def outcome(self) -> AttemptOutcome:
        """The ledger outcome of an attempt that failed for this reason."""
        return _OWN_OUTCOME.get(self.code, AttemptOutcome.FAILED)

    @classmethod
    def from_text(cls, value: Any) -> Any:
        if not isinstance(value, str):
            return value
        prefix, _, detail = value.partition(":")
        try:
            return cls(AttemptCode(prefix.strip()), detail.strip())
        except ValueError:
            return cls(AttemptCode.PROVIDER_FAILED, value)


# An AttemptReason in the API and the stored document: its text.
AttemptReasonText = Annotated[AttemptReason, BeforeValidator(AttemptReason.from_text),
                              PlainSerializer(str, return_type=str), WithJsonSchema({"type": "string"})]


@dataclass(frozen=True, slots=True)
class Billed:
    """The units a provider billed an attempt for, as it reports them; absent where it reports none."""

    __pydantic_config__ = ConfigDict(extra="forbid")
    gpu_seconds: float | None = None  # GPU time it ran (RunPod executionTime, Replicate predict_time, the agent)
    output_seconds: float | None = None  # seconds of video delivered (per-second prices)

    def with_output(self, seconds: float) -> Billed:
        return Billed(self.gpu_seconds, seconds)

    def as_dict(self) -> dict[str, float]:
        return {name: value for name, value in asdict(self).items() if value is not None}


NOTHING_BILLED = Billed()

# Billed in the API and the stored document: the map of the units it reports, as before the type existed.
BilledUnits = Annotated[Billed, PlainSerializer(Billed.as_dict),
                        WithJsonSchema({"type": "object", "additionalProperties": False,
                                        "properties": {"gpu_seconds": {"type": "number"},
                                                       "output_seconds": {"type": "number"}}})]
