"""Small shared types: enums of the API contract, money, time and ids."""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal
from enum import StrEnum
from typing import Annotated

from pydantic import PlainSerializer

# Money crosses every boundary as a decimal string, four places as the API shows it
# (docs/architecture.md, "API contract").
Money = Annotated[Decimal, PlainSerializer(lambda d: f"{d:.4f}", return_type=str, when_used="json")]
MONEY_PLACES = Decimal("0.0001")


def money(value: Decimal | int | str) -> Decimal:
    # Rounding passed by position: as a keyword, quantize takes three times as long (the engine calls this twice
    # per offer it estimates).
    return Decimal(value).quantize(MONEY_PLACES, ROUND_HALF_UP)


def utcnow() -> datetime:
    return datetime.now(UTC)


def iso(ts: datetime) -> str:
    return ts.astimezone(UTC).isoformat().replace("+00:00", "Z")


_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def new_id(prefix: str) -> str:
    """A ULID-shaped id (48-bit ms time + 80 random bits): sorts by creation, unique without coordination."""
    value = (int(time.time() * 1000) << 80) | int.from_bytes(os.urandom(10), "big")
    chars = []
    for _ in range(26):
        value, rem = divmod(value, 32)
        chars.append(_CROCKFORD[rem])
    return f"{prefix}_{''.join(reversed(chars))}"


# The longest video a request may ask for: past one render's length only offers that declare `long_form` serve it,
# as chained segments (docs/architecture.md, "Long-form").
MAX_DURATION_S = 300.0


class Mode(StrEnum):
    T2V = "t2v"
    I2V = "i2v"
    S2V = "s2v"
    CAMERA = "camera"
    INPAINT = "inpaint"
    R2V = "r2v"  # subject/product reference images → video (WAN Phantom)
    FLF2V = "flf2v"  # first and last frame → the video between them
    ANIMATE = "animate"  # a character image driven by a video's motion (WAN 2.2 Animate)
    EXTEND = "extend"  # continue a video


class Quality(StrEnum):
    DRAFT = "draft"
    STANDARD = "standard"
    PREMIUM = "premium"

    @property
    def min_score(self) -> int:
        return _MIN_SCORE[self.value]


class Priority(StrEnum):
    INTERACTIVE = "interactive"
    BATCH = "batch"


class ProviderKind(StrEnum):
    LOCAL = "local"
    RUNPOD = "runpod"
    REPLICATE = "replicate"
    VEO = "veo"


class Circuit(StrEnum):
    """A target's circuit breaker, as the routing context sees it."""

    CLOSED = "closed"
    HALF_OPEN = "half_open"
    OPEN = "open"


class AspectRatio(StrEnum):
    WIDE = "16:9"
    TALL = "9:16"
    SQUARE = "1:1"

    @property
    def ratio(self) -> float:
        return _RATIOS[self.value]


_MIN_SCORE = {"draft": 3, "standard": 4, "premium": 5}
_RATIOS = {"16:9": 16 / 9, "9:16": 9 / 16, "1:1": 1.0}
