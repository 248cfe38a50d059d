"""Learned offer figures beside the catalog's, as `GET /v1/providers` and quotes show them."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from router.models.api import OfferLearned
from router.models.decision import Candidate
from router.models.offer import Offer
from router.models.rating import LearnedQuality
from router.policy.constraints import render_seconds
from router.policy.learning import CATALOG, Learned, group

REFERENCE_S = 5.0  # the offer view's render: a 5 s video at the offer's reference size and default fps


def reference_render(offer: Offer) -> tuple[int, int, int]:
    """(width, height, frames) of the render an offer's figures are shown for when no request names one."""
    latency = offer.latency
    return latency.ref_width, latency.ref_height, offer.frames.snap(REFERENCE_S * offer.fps.default)


def offer_learned(offer: Offer, learned: Learned | None, width: int, height: int, frames: int,
                  quality: LearnedQuality | None = None) -> OfferLearned:
    model = learned or CATALOG
    p50, p90 = render_seconds(offer, width, height, frames, model)
    catalog_p50, catalog_p90 = render_seconds(offer, width, height, frames, CATALOG)
    return OfferLearned(
        summary=describe(p50, model.runs, catalog_p50, model.group_runs, group(offer.id) or ""),
        group_runs=model.group_runs,
        runs=model.runs,
        attempts=model.attempts,
        reference=f"{width}x{height}, {frames} frames",
        p50_s=round(p50, 1),
        p90_s=round(p90, 1),
        catalog_p50_s=round(catalog_p50, 1),
        catalog_p90_s=round(catalog_p90, 1),
        time_factor=round(model.time_p50, 4),
        cost_factor=model.cost,
        failure_rate=round(model.failure_rate, 4),
        cold_start_s=round(offer.latency.cold_start_s if model.cold_start_s is None else model.cold_start_s, 1),
        queue_wait_s=None if model.queue_wait_s is None else round(model.queue_wait_s, 1),
        quality=quality,
    )


def candidates_learned(candidates: Iterable[Candidate], offers: Iterable[Offer], learned: Mapping[str, Learned],
                       quality: Mapping[str, LearnedQuality] | None = None) -> dict[str, OfferLearned]:
    """For every candidate with a delivery, the render time behind its estimate, for exactly that delivery, and
    what its ratings say of its quality."""
    by_id = {offer.id: offer for offer in offers}
    found = {}
    for candidate in candidates:
        offer, spec = by_id.get(candidate.offer), candidate.delivered
        if offer is not None and spec is not None:
            found[offer.id] = offer_learned(offer, learned.get(offer.id), spec.width, spec.height, spec.frames,
                                            (quality or {}).get(offer.id))
    return found


def describe(p50_s: float, runs: int, catalog_p50_s: float, group_runs: int = 0, group_name: str = "") -> str:
    """"p50 38 s, learned from 27 runs; catalog 40 min", "p50 41 s, from 12 runs of other local offers (none of its
    own); catalog 40 min", or "p50 40 min, catalog (no runs yet)"."""
    if runs == 0 and group_runs == 0:
        return f"p50 {span(p50_s)}, catalog (no runs yet)"
    if runs == 0:
        return (f"p50 {span(p50_s)}, from {_runs(group_runs)} of other {group_name or 'sibling'} offers (none of its "
                f"own); catalog {span(catalog_p50_s)}")
    return f"p50 {span(p50_s)}, learned from {_runs(runs)}; catalog {span(catalog_p50_s)}"


def _runs(n: int) -> str:
    return f"{n} run{'s' if n != 1 else ''}"


def span(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
