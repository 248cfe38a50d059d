"""What an offer's ratings say about its quality, against the catalog's stars (docs/decisions.md, 2026-12-05).

The estimate is a Bayesian average on the 1-5 star scale: a normal prior centred on the catalog's stars worth
PRIOR_RATINGS ratings, updated by the offer's own ratings (n, their mean x̄, their sum of squared deviations SS):

    value = (m * stars + n * x̄) / (m + n)                  the posterior mean
    sd²   = (m * PRIOR_SD² + SS) / (m + n)                   the rating spread, starting at PRIOR_SD
    se    = sd / sqrt(m + n)                                 the posterior's standard error
    90 %  = value ± 1.645 se, clipped to 1-5

Below `min_ratings` (HVR_QUALITY_MIN_RATINGS, 30) the stars hold in routing and the estimate is only shown; from
there on it replaces them in the quality floor and the score. Pure: the tallies come in, nothing is read.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from router.models.offer import Offer
from router.models.rating import MAX_SCORE, MIN_SCORE, LearnedQuality, ScoreTally

PRIOR_RATINGS = 5  # m: the stars count as five ratings, so a handful of ratings moves the figure but not far
PRIOR_SD = 1.0  # one star: the spread assumed before an offer has two ratings of its own
Z90 = 1.6449  # two-sided 90 %: the standard normal's 95th percentile
DEFAULT_MIN_RATINGS = 30


@dataclass(frozen=True, slots=True)
class Estimate:
    value: float
    low: float
    high: float
    ratings: int


def estimate(stars: float, tally: ScoreTally) -> Estimate:
    n, m = tally.n, PRIOR_RATINGS
    mean = tally.total / n if n else stars
    spread = max(0.0, tally.squares - n * mean * mean)  # SS = Σx² - n x̄²; max: float rounding near zero
    value = (m * stars + n * mean) / (m + n)
    se = math.sqrt((m * PRIOR_SD * PRIOR_SD + spread) / (m + n)) / math.sqrt(m + n)
    return Estimate(value=value, low=max(MIN_SCORE, value - Z90 * se), high=min(MAX_SCORE, value + Z90 * se),
                    ratings=n)


def learned_quality(offer: Offer, tally: ScoreTally | None, min_ratings: int) -> LearnedQuality:
    found = estimate(offer.quality, tally or ScoreTally())
    in_use = found.ratings >= min_ratings
    where = "in use" if in_use else f"stars hold until {min_ratings}"
    return LearnedQuality(
        stars=offer.quality, value=round(found.value, 3), low=round(found.low, 3), high=round(found.high, 3),
        ratings=found.ratings, in_use=in_use,
        summary=(f"{found.value:.1f} ({found.low:.1f}-{found.high:.1f}) from {found.ratings} rating"
                 f"{'s' if found.ratings != 1 else ''}, {where}; catalog {offer.quality}"))


def routing_quality(offers: Iterable[Offer], tallies: Mapping[str, ScoreTally], min_ratings: int) -> dict[str, float]:
    """The offers whose ratings are enough to replace their stars in routing, and the figure that replaces them."""
    found = {}
    for offer in offers:
        tally = tallies.get(offer.id)
        if tally is not None and tally.n >= min_ratings:
            found[offer.id] = estimate(offer.quality, tally).value
    return found
