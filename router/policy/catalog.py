"""Loading the offer catalog: YAML in, validated `Offer`s out, or an error naming file, offer and field."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from router.models.offer import Offer

DEFAULT_CATALOG = Path(__file__).resolve().parent.parent / "catalog" / "default.yaml"


class CatalogError(ValueError):
    pass


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
        seen.add(offer.id)
        offers.append(offer)
    return Catalog(version=str(data["version"]), offers=tuple(offers))


def load_catalog(path: str | Path | None = None) -> Catalog:
    path = Path(path) if path else DEFAULT_CATALOG
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise CatalogError(f"{path}: {exc}") from exc
    return parse_catalog(data, str(path))


@cache
def cached_catalog(path: str | None = None) -> Catalog:
    """One parse per Lambda container; keyed on the path so tests can load others."""
    return load_catalog(path)
