"""Offer: one thing a request can be sent to, as the catalog declares it (docs/architecture.md, "Policy engine")."""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from datetime import date
from decimal import Decimal
from enum import StrEnum
from functools import cached_property
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from router.models.common import MAX_DURATION_S, AspectRatio, Mode, ProviderKind
from router.models.decision import DeliveredSpec


def model_family(model: str) -> str:
    """The leading word of a model's name: `wan21-14b` and `wan-video/wan-2.2-t2v-fast` are `wan`,
    `veo-3.1-fast-generate-001` is `veo` (the scorecard's families and an experiment's arms)."""
    name = model.rsplit("/", 1)[-1].lower()
    found = re.match(r"[a-z]+", name)
    return found[0] if found else name


class FrameRule(StrEnum):
    ANY = "any"
    FOUR_N_PLUS_ONE = "4n+1"  # WAN's VAE packs 4 frames per latent plus the first


class Frames(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    rule: FrameRule = FrameRule.ANY
    min: Annotated[int, Field(ge=1)] = 1
    max: Annotated[int, Field(ge=1)]
    # Offers that render only some lengths (Veo 4/6/8 s, RunPod's 5/8/10 s): the delivered duration is the
    # nearest of these, and frames follow from it.
    durations_s: list[Annotated[float, Field(gt=0)]] | None = None

    @model_validator(mode="after")
    def _range(self) -> Frames:
        if self.min > self.max:
            raise ValueError(f"frames.min {self.min} > frames.max {self.max}")
        if self.durations_s is not None and not self.durations_s:
            raise ValueError("frames.durations_s must list at least one duration")
        return self

    def snap_duration(self, wanted_s: float) -> float | None:
        if not self.durations_s:
            return None
        return min(self.durations_s, key=lambda d: (abs(d - wanted_s), d))

    def snap(self, wanted: float) -> int:
        """The frame count this model renders for `wanted` frames (nearest allowed count, clamped)."""
        count = max(self.min, min(self.max, round(wanted)))
        if self.rule is FrameRule.FOUR_N_PLUS_ONE:
            count = 4 * round((count - 1) / 4) + 1
            while count > self.max:
                count -= 4
            while count < self.min:
                count += 4
        return count


class FpsRange(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    min: Annotated[float, Field(gt=0, le=120)]
    max: Annotated[float, Field(gt=0, le=120)]
    default: Annotated[float, Field(gt=0, le=120)]

    @model_validator(mode="after")
    def _range(self) -> FpsRange:
        if not self.min <= self.default <= self.max:
            raise ValueError(f"fps.default {self.default} outside [{self.min}, {self.max}]")
        return self


class _Priced(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    source: Annotated[str, Field(min_length=3)]
    as_of: date


class LocalCostBasis(StrEnum):
    """What a local GPU-second is charged at (docs/decisions.md 2026-12-04).

    MARGINAL: energy only. Depreciation is paid whether the GPU works or idles, so a render doesn't add to it;
    pricing it per second made the owned GPU look dearer than it is and left it idle. FULL: energy plus the
    amortized share of depreciation, the studio's own per-video method."""

    MARGINAL = "marginal"
    FULL = "full"


class LocalEnergyPricing(_Priced):
    """Local GPU: power per GPU-second, and depreciation, a fixed cost charged per second only on the full basis.

    `cost_basis` is the deployment's (`HVR_LOCAL_COST_BASIS`, applied to a loaded catalog by
    `with_local_cost_basis`), not the catalog file's."""

    kind: Literal["local_energy"] = "local_energy"
    power_kw: Annotated[Decimal, Field(gt=0)]
    usd_per_kwh: Annotated[Decimal, Field(ge=0)]
    depreciation_usd_per_hour: Annotated[Decimal, Field(ge=0)]
    cost_basis: LocalCostBasis = LocalCostBasis.MARGINAL

    @property
    def energy_usd_per_gpu_second(self) -> Decimal:
        return self.power_kw * self.usd_per_kwh / Decimal(3600)

    @property
    def depreciation_usd_per_gpu_second(self) -> Decimal:
        return self.depreciation_usd_per_hour / Decimal(3600)

    def usd_per_gpu_second_on(self, basis: LocalCostBasis) -> Decimal:
        if basis is LocalCostBasis.FULL:
            return (self.power_kw * self.usd_per_kwh + self.depreciation_usd_per_hour) / Decimal(3600)
        return self.energy_usd_per_gpu_second

    @property
    def usd_per_gpu_second(self) -> Decimal:
        """On this pricing's own basis."""
        return self.usd_per_gpu_second_on(self.cost_basis)


class GpuSecondPricing(_Priced):
    """Billed per second the worker runs (RunPod serverless, Replicate hardware time)."""

    kind: Literal["gpu_second"] = "gpu_second"
    gpu: Annotated[str, Field(min_length=1)]
    usd_per_gpu_second: Annotated[Decimal, Field(gt=0)]


class PerSecondPricing(_Priced):
    """Billed per second of output video, by resolution tier (short side in pixels)."""

    kind: Literal["per_second"] = "per_second"
    usd_per_second: Annotated[dict[int, Annotated[Decimal, Field(gt=0)]], Field(min_length=1)]


class VideoPrice(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    tier: Annotated[int, Field(gt=0)]  # short side of the delivered size
    duration_s: Annotated[float, Field(gt=0)]
    usd: Annotated[Decimal, Field(gt=0)]


class PerVideoPricing(_Priced):
    """A stated price per video, by resolution tier and delivered duration."""

    kind: Literal["per_video"] = "per_video"
    table: Annotated[list[VideoPrice], Field(min_length=1)]


Pricing = Annotated[
    LocalEnergyPricing | GpuSecondPricing | PerSecondPricing | PerVideoPricing, Field(discriminator="kind")
]
BILLED_BY_TIME = ("local_energy", "gpu_second")


STANDARD_TIERS = (480, 720, 1080)
TIER_TOLERANCE = 0.04  # 1280x704 (a multiple of 32) is a 720p video; 832x480 is a 480p one


def tier_of(short_side: int) -> int:
    """The named tier a short side belongs to, or the short side itself when it is none of them."""
    for tier in STANDARD_TIERS:
        if abs(short_side - tier) <= TIER_TOLERANCE * tier:
            return tier
    return short_side


def unit_price(pricing: Pricing, tier: int, duration_s: float,
               basis: LocalCostBasis | None = None) -> tuple[str, Decimal] | None:
    """(unit, price per unit) for a delivered video; None where the offer states no price for it.

    Time-billed offers price GPU-seconds; the others price output seconds or whole videos. `basis` prices a local
    GPU-second on that basis instead of the pricing's own; it changes nothing for cloud offers.
    """
    if isinstance(pricing, LocalEnergyPricing):
        return "gpu_second", pricing.usd_per_gpu_second_on(basis or pricing.cost_basis)
    if isinstance(pricing, GpuSecondPricing):
        return "gpu_second", pricing.usd_per_gpu_second
    if isinstance(pricing, PerSecondPricing):
        price = pricing.usd_per_second.get(tier)
        return ("output_second", price) if price is not None else None
    for row in pricing.table:
        if row.tier == tier and math.isclose(row.duration_s, duration_s, abs_tol=0.01):
            return "video", row.usd
    return None


def with_local_cost_basis(offers: Iterable[Offer], basis: LocalCostBasis | str) -> tuple[Offer, ...]:
    """The offers with every local GPU priced on `basis`; others as they are. Pure: the one place a deployment (or
    a simulation: hvr, baselines and the optimum alike) chooses how the owned GPU is charged."""
    chosen = LocalCostBasis(basis)
    return tuple(
        offer.model_copy(update={"pricing": offer.pricing.model_copy(update={"cost_basis": chosen})})
        if isinstance(offer.pricing, LocalEnergyPricing) and offer.pricing.cost_basis is not chosen else offer
        for offer in offers)


class Latency(BaseModel):
    """Overhead plus seconds per output frame at a reference size, scaled by pixel count; p50 and p90.

    `cold_start_s` (a serverless worker starting) and `transfer_s` (getting the output back) add to the p90 only
    when the target has no warm capacity; the services tell the engine which through the context.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)
    overhead_s: Annotated[float, Field(ge=0)]
    cold_start_s: Annotated[float, Field(ge=0)] = 0.0
    transfer_s: Annotated[float, Field(ge=0)] = 0.0
    seconds_per_frame_p50: Annotated[float, Field(gt=0)]
    seconds_per_frame_p90: Annotated[float, Field(gt=0)]
    ref_width: Annotated[int, Field(gt=0)]
    ref_height: Annotated[int, Field(gt=0)]
    source: Annotated[str, Field(min_length=3)]

    @model_validator(mode="after")
    def _ordered(self) -> Latency:
        if self.seconds_per_frame_p90 < self.seconds_per_frame_p50:
            raise ValueError("seconds_per_frame_p90 must be >= seconds_per_frame_p50")
        return self

    def compute_seconds(self, width: int, height: int, frames: int, *, p90: bool) -> float:
        per_frame = self.seconds_per_frame_p90 if p90 else self.seconds_per_frame_p50
        scale = (width * height) / (self.ref_width * self.ref_height)
        return self.overhead_s + per_frame * frames * scale

    def delivery_seconds(self, spec: DeliveredSpec, *, p90: bool) -> float:
        """All of a delivery's renders: a long-form one pays each segment's overhead."""
        return spec.segments * self.compute_seconds(spec.width, spec.height, spec.segment_frames, p90=p90)


class VramTier(BaseModel):
    """What one resolution tier of a model needs on a GPU."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    min_mb: Annotated[int, Field(gt=0)]  # runs with every weight in VRAM
    offload_min_mb: Annotated[int, Field(gt=0)] | None = None  # runs with part of the model in system RAM


class VramFit(BaseModel):
    """The hardware fit of a local model (docs/catalog.md, "Hardware fit"): per resolution tier (short side in
    pixels) the VRAM it needs with and without offloading, the system RAM offloading needs, and how much slower an
    offloaded render is. Minimum, recommended and offload figures are separate facts: a card below the
    recommendation may still run a model, offloaded and slower."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    recommended_mb: Annotated[int, Field(gt=0)]
    tiers: Annotated[dict[int, VramTier], Field(min_length=1)]
    offload_ram_mb: Annotated[int, Field(ge=0)] = 0
    offload_slowdown: Annotated[float, Field(ge=1.0, le=10.0)] = 1.0
    source: Annotated[str, Field(min_length=3)]

    def tier(self, short_side: int) -> VramTier:
        """The needs of the smallest tier at least `short_side` (the largest where it is above every tier)."""
        fitting = [tier for tier in sorted(self.tiers) if tier >= short_side]
        return self.tiers[fitting[0] if fitting else max(self.tiers)]


class LongForm(BaseModel):
    """Videos longer than one render, as chained segments: the first in the request's own mode, each next one
    continuing from the last frame of the one before in `continue_mode` (docs/architecture.md, "Long-form")."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    max_duration_s: Annotated[float, Field(gt=0, le=MAX_DURATION_S)]
    continue_mode: Literal[Mode.I2V] = Mode.I2V
    source: Annotated[str, Field(min_length=3)]


def _parse_size(text: str) -> tuple[int, int]:
    width, _, height = text.partition("x")
    return int(width), int(height)


class Offer(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: Annotated[str, Field(pattern=r"^(local|runpod|replicate|veo)/[a-z0-9][a-z0-9.\-]*$")]
    provider: ProviderKind
    model: Annotated[str, Field(min_length=1)]
    modes: Annotated[list[Mode], Field(min_length=1)]
    # Inputs the edge lets a mode go without that this offer can render without too: s2v's `image` (HuMo renders a
    # speaker from the audio alone; every other s2v offer animates the face it is given).
    optional_inputs: list[Literal["image"]] = []
    sizes: Annotated[list[Annotated[str, Field(pattern=r"^\d{2,5}x\d{2,5}$")]], Field(min_length=1)]
    frames: Frames
    fps: FpsRange
    aspect_ratios: Annotated[list[AspectRatio], Field(min_length=1)]
    quality: Annotated[int, Field(ge=1, le=5)]
    vram_mb: Annotated[int, Field(ge=0)] | None = None  # the recommendation; what a box must have: `vram`
    vram: VramFit | None = None
    pricing: Pricing
    latency: Latency
    long_form: LongForm | None = None

    @field_validator("sizes")
    @classmethod
    def _even_sizes(cls, value: list[str]) -> list[str]:
        for text in value:
            if any(side % 2 for side in _parse_size(text)):
                raise ValueError(f"size {text} must have even sides")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Offer:
        if self.id.split("/", 1)[0] != self.provider.value:
            raise ValueError(f"id prefix must match provider {self.provider.value}")
        if self.long_form is not None and self.long_form.continue_mode not in self.modes:
            raise ValueError(f"long_form.continue_mode {self.long_form.continue_mode.value} is not one of its modes")
        return self

    # Derived once per offer and cached on the instance: the engine asks for them on every decision.
    @cached_property
    def size_list(self) -> frozenset[tuple[int, int]]:
        return frozenset(_parse_size(text) for text in self.sizes)

    @cached_property
    def tier_sizes(self) -> dict[tuple[int, AspectRatio], tuple[int, int]]:
        return _tier_sizes([_parse_size(text) for text in self.sizes])

    @cached_property
    def mode_set(self) -> frozenset[Mode]:
        # An offer that chains segments can continue a client's video too: `extend` is long-form whose first segment
        # the client brought.
        return frozenset(self.modes) | ({Mode.EXTEND} if self.long_form is not None else set())

    @cached_property
    def price_cache(self) -> tuple[Offer, dict[tuple[int, int, float], tuple[str, Decimal] | None]]:
        """`price_for`'s answers, with the offer they belong to: an offer is frozen, and the engine prices the same
        few deliveries per offer in every decision (a tenth of a decision's time went on pricing them again). A
        `model_copy` (another cost basis, another id) copies this too; the owner tells the copy to start afresh."""
        return self, {}

    def price_for(self, width: int, height: int, duration_s: float) -> tuple[str, Decimal] | None:
        """(unit, unit price) for a delivery; offers with set lengths are priced by the length they bill
        (WAN's 81 frames at 16 fps is its "5 s" video)."""
        owner, cache = self.price_cache
        if owner is not self:
            owner, cache = self.__dict__["price_cache"] = (self, {})
        key = (width, height, duration_s)
        if key not in cache:
            billed = self.frames.snap_duration(duration_s) or duration_s
            cache[key] = unit_price(self.pricing, tier_of(min(width, height)), billed)
        return cache[key]

    def on_power(self, power_kw: Decimal) -> Offer:
        """This offer on a GPU box that draws `power_kw` while rendering (its registration's `power_w`): the energy
        part of a local GPU-second follows the box's draw; depreciation and every cloud price stay as they are."""
        pricing = self.pricing
        if not isinstance(pricing, LocalEnergyPricing) or pricing.power_kw == power_kw:
            return self
        return self.model_copy(update={"pricing": pricing.model_copy(update={"power_kw": power_kw})})

    def size_for_tier(self, short_side: int, aspect: AspectRatio) -> tuple[int, int] | None:
        """This offer's own size for a named tier: same short side, aspect within 5 %, orientation kept."""
        return self.tier_sizes.get((short_side, aspect))


def _tier_sizes(sizes: list[tuple[int, int]]) -> dict[tuple[int, AspectRatio], tuple[int, int]]:
    found: dict[tuple[int, AspectRatio], tuple[int, int]] = {}
    for width, height in sizes:
        for aspect in AspectRatio:
            if aspect is AspectRatio.SQUARE and width != height:
                continue
            if aspect is not AspectRatio.SQUARE and (width > height) != (aspect is AspectRatio.WIDE):
                continue
            wanted = max(aspect.ratio, 1 / aspect.ratio)
            if math.isclose(max(width, height) / min(width, height), wanted, rel_tol=0.05):
                found.setdefault((tier_of(min(width, height)), aspect), (width, height))
    return found
