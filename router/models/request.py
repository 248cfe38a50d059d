"""VideoRequest: the body of `POST /v1/jobs` and `POST /v1/quotes` (docs/architecture.md, "API contract")."""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError

from router.errors import field_errors as field_errors  # its home before router.errors; still imported from here
from router.hosts import HostRefused, public_dns_host
from router.models.common import MAX_DURATION_S, AspectRatio, Mode, Money, Priority, ProviderKind, Quality, utcnow

# Named sizes follow the aspect ratio; the short side names the tier.
NAMED_TIERS = {"480p": 480, "720p": 720, "1080p": 1080}
_NAMED_SIZES = {
    ("480p", AspectRatio.WIDE): (854, 480),
    ("720p", AspectRatio.WIDE): (1280, 720),
    ("1080p", AspectRatio.WIDE): (1920, 1080),
    ("480p", AspectRatio.SQUARE): (480, 480),
    ("720p", AspectRatio.SQUARE): (720, 720),
    ("1080p", AspectRatio.SQUARE): (1080, 1080),
}
_WXH = re.compile(r"^(\d{2,5})x(\d{2,5})$")
MIN_SIDE, MAX_SIDE = 128, 3840
MAX_DEADLINE_S = 31 * 24 * 3600
MAX_METADATA_BYTES = 4096
# Control characters a client's text may not carry: C0 but tab, LF and CR (a pasted CRLF is harmless), DEL, and C1
# (U+0080-U+009F). ESC and C1's CSI start the ANSI sequences that repaint a terminal tailing the logs, NUL cuts
# strings short in C renderers. Names (model, campaign_id) carry none at all. The schema says it as `not: {pattern}`
# (contains none of them): an anchored `^[^…]*$` would let a trailing newline through, Python's `$` being lax.
TEXT_CONTROLS = r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]"
NAME_CONTROLS = r"[\x00-\x1f\x7f-\x9f]"
_TEXT_CONTROLS, _NAME_CONTROLS = re.compile(TEXT_CONTROLS), re.compile(NAME_CONTROLS)
_NAME: dict[str, Any] = {"not": {"pattern": NAME_CONTROLS}}
# Inputs each mode requires at the edge. s2v needs only the audio here: HuMo renders from audio alone, and the
# offers that also need a face refuse a request without `image` when routing (policy.constraints).
MODE_INPUTS = {Mode.I2V: ("image",), Mode.CAMERA: ("image",), Mode.S2V: ("audio",),
               Mode.INPAINT: ("image", "mask"), Mode.R2V: ("reference_images",), Mode.FLF2V: ("image", "last_image"),
               Mode.ANIMATE: ("image", "video"), Mode.EXTEND: ("video",)}
MAX_REFERENCE_IMAGES = 4
_LIST_INPUTS = frozenset({"reference_images"})


class CameraMotion(StrEnum):
    STATIC = "static"
    PAN_LEFT = "pan_left"
    PAN_RIGHT = "pan_right"
    PAN_UP = "pan_up"
    PAN_DOWN = "pan_down"
    ZOOM_IN = "zoom_in"
    ZOOM_OUT = "zoom_out"
    ROTATE_CW = "rotate_cw"
    ROTATE_CCW = "rotate_ccw"


class Camera(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    motion: CameraMotion
    speed: Annotated[float, Field(ge=0.1, le=2.0)] = 1.0


def _check_input_ref(value: str, at_edge: bool) -> str:
    parts = urlsplit(value)
    if parts.scheme == "s3" and parts.netloc and parts.path.strip("/"):
        return value
    if parts.scheme == "https":
        return check_public_https_url(value, at_edge)
    raise ValueError("must be an s3:// reference from /v1/uploads or an https URL")


def check_public_https_url(value: str, at_edge: bool = True) -> str:
    """Client URLs we fetch or call (https inputs, callbacks) must be https on a public DNS name: IP literals in any
    spelling, localhost and userinfo are refused at the edge (SSRF). A stored request may predate the host rules, so
    a re-read checks the scheme only; every fetch and every callback checks the host and its addresses again."""
    if urlsplit(value).scheme != "https":
        raise ValueError("must be an https URL")
    if at_edge:
        try:
            public_dns_host(value)
        except HostRefused as exc:
            raise ValueError(str(exc)) from exc
    return value


InputRef = Annotated[str, Field(max_length=2048)]


def _stated_rules(schema: dict[str, Any]) -> None:
    """_cross_field's rules, stated in the JSON Schema too (OpenAPI 3.1 is JSON Schema 2020-12), so that a client
    or a fuzzer reading the schema knows them: each mode's inputs, and one deadline at most.

    The modes are one `anyOf`, a branch per set of required inputs (a mode's branch names the inputs it needs), not
    an `if`/`then` per mode: a fuzzer's schema solver expands each `if` into two cases, and nine of them were more
    than it would."""
    grouped: dict[tuple[str, ...], list[str]] = {}
    for mode in Mode:
        grouped.setdefault(MODE_INPUTS.get(mode, ()), []).append(mode.value)
    schema["anyOf"] = [
        {"properties": {"mode": {"enum": modes},
                        **{name: {"type": "array", "minItems": 1} if name in _LIST_INPUTS else {"type": "string"}
                           for name in names}},
         "required": ["mode", *names]}
        for names, modes in grouped.items()]
    schema["not"] = {"$comment": "deadline or deadline_s, not both",
                     "properties": {"deadline": {"type": "string"}, "deadline_s": {"type": "integer"}},
                     "required": ["deadline", "deadline_s"]}


class VideoRequest(BaseModel):
    """What a client asks for. Validation here is the edge: a request that passes is routable or refusable."""

    model_config = ConfigDict(extra="forbid", frozen=True, json_schema_extra=_stated_rules)

    mode: Mode
    prompt: Annotated[str, Field(min_length=1, max_length=4000, json_schema_extra={
        "pattern": r"\S", "not": {"pattern": TEXT_CONTROLS}})]
    negative_prompt: Annotated[str, Field(max_length=4000, json_schema_extra={
        "not": {"pattern": TEXT_CONTROLS}})] | None = None
    image: InputRef | None = None
    audio: InputRef | None = None
    mask: InputRef | None = None
    last_image: InputRef | None = None
    video: InputRef | None = None
    reference_images: Annotated[list[InputRef], Field(min_length=1, max_length=MAX_REFERENCE_IMAGES)] | None = None
    camera: Camera | None = None
    resolution: str = "480p"
    aspect_ratio: AspectRatio = AspectRatio.WIDE
    duration_s: Annotated[float, Field(ge=0.5, le=MAX_DURATION_S)] = 4.0
    fps: Annotated[float, Field(ge=4, le=60)] | None = None
    quality: Quality = Quality.STANDARD
    max_cost_usd: Annotated[Money, Field(gt=Decimal(0), le=Decimal(10000), decimal_places=4)] | None = None
    deadline: datetime | None = None
    deadline_s: Annotated[int, Field(gt=0, le=MAX_DEADLINE_S)] | None = None
    priority: Priority = Priority.INTERACTIVE
    model: Annotated[str, Field(min_length=3, max_length=120, json_schema_extra=_NAME)] | None = None
    providers: Annotated[list[ProviderKind], Field(min_length=1, max_length=4,
                                                   json_schema_extra={"uniqueItems": True})] | None = None
    seed: Annotated[int, Field(ge=0, le=2**32 - 1)] | None = None
    callback_url: Annotated[str, Field(max_length=2048)] | None = None
    campaign_id: Annotated[str, Field(min_length=1, max_length=128, json_schema_extra=_NAME)] | None = None
    metadata: dict[str, Any] | None = None

    @field_validator("prompt")
    @classmethod
    def _prompt_not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be blank")
        return value

    @field_validator("prompt", "negative_prompt", "model", "campaign_id")
    @classmethod
    def _no_control_characters(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None or info.context is None:  # stored requests may predate the rule: only the edge checks it
            return value
        controls = _TEXT_CONTROLS if info.field_name in ("prompt", "negative_prompt") else _NAME_CONTROLS
        found = controls.search(value)
        if found:
            raise ValueError(f"must not contain control characters (found U+{ord(found[0]):04X})")
        return value

    @field_validator("image", "audio", "mask", "last_image", "video")
    @classmethod
    def _input_ref(cls, value: str | None, info: ValidationInfo) -> str | None:
        return None if value is None else _check_input_ref(value, at_edge=info.context is not None)

    @field_validator("callback_url")
    @classmethod
    def _callback(cls, value: str | None, info: ValidationInfo) -> str | None:
        return None if value is None else check_public_https_url(value, at_edge=info.context is not None)

    @field_validator("resolution")
    @classmethod
    def _resolution(cls, value: str) -> str:
        value = value.strip().lower()
        if value in NAMED_TIERS:
            return value
        match = _WXH.match(value)
        if not match:
            raise ValueError("must be 480p, 720p, 1080p or WxH (e.g. 512x512)")
        width, height = int(match[1]), int(match[2])
        for side in (width, height):
            if not MIN_SIDE <= side <= MAX_SIDE:
                raise ValueError(f"each side must be between {MIN_SIDE} and {MAX_SIDE} pixels")
            if side % 2:
                raise ValueError("each side must be even (H.264 4:2:0)")
        return f"{width}x{height}"

    @field_validator("deadline")
    @classmethod
    def _deadline_future(cls, value: datetime | None, info: ValidationInfo) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("must include a timezone (ISO 8601, e.g. 2026-11-25T09:00:00Z)")
        now = (info.context or {}).get("now")
        if now is None:  # a stored request is re-read long after its deadline; only the edge checks the clock
            return value
        if value <= now:
            raise ValueError("must be in the future")
        if value - now > timedelta(seconds=MAX_DEADLINE_S):
            raise ValueError("must be within 31 days")
        return value

    @field_validator("providers")
    @classmethod
    def _unique_providers(cls, value: list[ProviderKind] | None) -> list[ProviderKind] | None:
        if value is not None and len(set(value)) != len(value):
            raise ValueError("must not repeat a provider")
        return value

    @field_validator("metadata")
    @classmethod
    def _metadata_size(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is not None and len(json.dumps(value, separators=(",", ":"))) > MAX_METADATA_BYTES:
            raise ValueError(f"must serialize to at most {MAX_METADATA_BYTES} bytes")
        return value

    @model_validator(mode="after")
    def _cross_field(self, info: ValidationInfo) -> VideoRequest:
        # Each reference image follows the rules of `image`, named by its index (`reference_images[2]`).
        for index, ref in enumerate(self.reference_images or ()):
            try:
                _check_input_ref(ref, at_edge=info.context is not None)
            except ValueError as exc:
                raise _field_error(f"reference_images[{index}]", str(exc)) from None
        if self.deadline is not None and self.deadline_s is not None:
            raise _field_error("deadline_s", "give either deadline or deadline_s, not both")
        for name in MODE_INPUTS.get(self.mode, ()):
            if not getattr(self, name):
                raise _field_error(name, f"is required for mode {self.mode.value}")
        return self

    @classmethod
    def parse_at_edge(cls, data: Any, now: datetime | None = None) -> VideoRequest:
        """Validate a client's body, including the rules that need the clock (deadline in the future)."""
        return cls.model_validate(data, context={"now": now or utcnow()})

    def size(self) -> tuple[int, int]:
        """Requested pixels: WxH as given, or the named tier at the requested aspect ratio."""
        if self.resolution in NAMED_TIERS:
            if self.aspect_ratio is AspectRatio.TALL:
                width, height = _NAMED_SIZES[(self.resolution, AspectRatio.WIDE)]
                return height, width
            return _NAMED_SIZES[(self.resolution, self.aspect_ratio)]
        width_text, height_text = self.resolution.split("x")
        return int(width_text), int(height_text)

    @property
    def named_tier(self) -> int | None:
        """Short side of a named resolution; None when exact pixels were asked for."""
        return NAMED_TIERS.get(self.resolution)

    def input_refs(self) -> list[tuple[str, str, str]]:
        """(field as errors name it, key a provider's inputs use, ref) for each input given: `image`, `audio`,
        `mask`, `last_image`, `video`, and `reference_images[i]` keyed `reference_image_{i+1}`."""
        refs = [(name, name, ref) for name in ("image", "audio", "mask", "last_image", "video")
                if (ref := getattr(self, name))]
        refs += [(f"reference_images[{index}]", f"reference_image_{index + 1}", ref)
                 for index, ref in enumerate(self.reference_images or ())]
        return refs

    def resolved_deadline(self, accepted_at: datetime) -> datetime | None:
        if self.deadline is not None:
            return self.deadline
        if self.deadline_s is not None:
            return accepted_at + timedelta(seconds=self.deadline_s)
        return None


def _field_error(field: str, message: str) -> ValidationError:
    """A cross-field rule's error located at the field it names (a plain ValueError would sit at the root)."""
    return ValidationError.from_exception_data(
        "VideoRequest", [InitErrorDetails(type=PydanticCustomError("value_error", message), loc=(field,), input=None)]
    )

