"""Loading the offer catalog: YAML in, validated `Offer`s out, or an error naming file, offer and field."""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from router.errors import HvrError
from router.models.offer import (
    FrameRule,
    LocalCostBasis,
    Offer,
    PerSecondPricing,
    PerVideoPricing,
    unit_price,
    with_local_cost_basis,
)

DEFAULT_CATALOG = Path(__file__).resolve().parent.parent / "catalog" / "default.yaml"


class CatalogError(HvrError, ValueError):
    """The catalog file is not a valid catalog: an operator's mistake, refused at load."""


@dataclass(frozen=True)
class Catalog:
    version: str
    offers: tuple[Offer, ...]

    def get(self, offer_id: str) -> Offer | None:
        return next((offer for offer in self.offers if offer.id == offer_id), None)


def parse_catalog(data: Any, source: str) -> Catalog:
    if not isinstance(data, dict) or not isinstance(data.get("offers"), list) or not data.get("version"):
        raise CatalogError(f"{source}: expected a mapping with 'version' and a list 'offers'")
    offers: list[Offer] = []
    seen: set[str] = set()
    for index, raw in enumerate(data["offers"]):
        name = raw.get("id", f"#{index}") if isinstance(raw, dict) else f"#{index}"
        try:
            offer = Offer.model_validate(raw)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in err['loc']) or 'offer'}: {err['msg']}" for err in exc.errors()
            )
            raise CatalogError(f"{source}: offer {name}: {problems}") from exc
        if offer.id in seen:
            raise CatalogError(f"{source}: offer {name}: duplicate id")
        mismatches = cross_check(offer)
        if mismatches:
            raise CatalogError(f"{source}: offer {name}: {'; '.join(mismatches)}")
        seen.add(offer.id)
        offers.append(offer)
    return Catalog(version=str(data["version"]), offers=tuple(offers))


def cross_check(offer: Offer) -> list[str]:
    """What the schema can't see field by field: lengths the frame limits can't hold, sizes with no price."""
    problems: list[str] = []
    frames, fps = offer.frames, offer.fps.default
    durations = frames.durations_s or []
    # Rounding to the frame rule moves a count by at most half a step (4n+1: 2 frames; any: half a frame).
    slack = 2.0 if frames.rule is FrameRule.FOUR_N_PLUS_ONE else 0.5
    for duration in durations:
        wanted = duration * fps
        if not frames.min - slack <= wanted <= frames.max + slack:
            problems.append(
                f"frames.durations_s: {duration:g} s at {fps:g} fps is {wanted:g} frames, "
                f"outside frames {frames.min}-{frames.max}"
            )
    if len(set(durations)) != len(durations):
        problems.append("frames.durations_s: duplicate durations")
    tiers = sorted({min(width, height) for width, height in offer.size_list})
    pricing = offer.pricing
    if isinstance(pricing, PerSecondPricing):
        problems += [f"pricing.usd_per_second: no price for the {tier} tier of sizes {offer.sizes}"
                     for tier in tiers if tier not in pricing.usd_per_second]
    elif isinstance(pricing, PerVideoPricing):
        if not durations:
            problems.append("pricing.table: per-video pricing needs frames.durations_s (the lengths it prices)")
        problems += [f"pricing.table: no price for the {tier} tier at {duration:g} s"
                     for tier in tiers for duration in durations if unit_price(pricing, tier, duration) is None]
        problems += [f"pricing.table: {row.duration_s:g} s is priced but not in frames.durations_s"
                     for row in pricing.table
                     if durations and not any(math.isclose(row.duration_s, d, abs_tol=0.01) for d in durations)]
    return problems


def load_catalog(path: str | Path | None = None) -> Catalog:
    path = Path(path) if path else DEFAULT_CATALOG
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise CatalogError(f"{path}: {exc}") from exc
    return parse_catalog(data, str(path))


@cache
def cached_catalog(path: str | None = None, local_cost_basis: LocalCostBasis | None = None) -> Catalog:
    """One parse per Lambda container; keyed on the path so tests can load others. `local_cost_basis` prices the
    local GPU on the deployment's basis (None: the model's default, marginal)."""
    catalog = load_catalog(path)
    if local_cost_basis is None:
        return catalog
    return Catalog(version=catalog.version, offers=with_local_cost_basis(catalog.offers, local_cost_basis))
