"""Learned quality (router.policy.quality): the Bayesian average of ratings against the catalog's stars, and the
threshold from which it replaces the stars in routing's floor check and score."""

from __future__ import annotations

import random
from dataclasses import replace
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from router.models.common import ProviderKind
from router.models.decision import Refusal
from router.models.rating import ScoreTally
from router.models.request import VideoRequest
from router.policy.catalog import load_catalog
from router.policy.context import RoutingContext, TargetState
from router.policy.engine import route
from router.policy.quality import PRIOR_RATINGS, estimate, learned_quality, routing_quality

NOW = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)
CATALOG = load_catalog()
ANIMATEDIFF = "local/animatediff-sd15"  # 3 stars: exactly the draft floor
DRAFT_512 = VideoRequest.parse_at_edge({"mode": "t2v", "prompt": "a red balloon", "resolution": "512x512",
                                        "aspect_ratio": "1:1", "duration_s": 2, "quality": "draft",
                                        "deadline_s": 86400, "priority": "batch"}, NOW)
EVERYWHERE = RoutingContext(targets={kind: TargetState(name=kind.value) for kind in ProviderKind},
                            configured=frozenset(ProviderKind))


def tally(scores: list[int]) -> ScoreTally:
    found = ScoreTally()
    for score in scores:
        found = found.plus(score)
    return found


def test_with_no_ratings_the_estimate_is_the_stars() -> None:
    found = estimate(4, ScoreTally())
    assert found.value == 4 and found.ratings == 0 and found.low < 4 < found.high


def test_a_few_ratings_move_the_figure_but_the_prior_dominates() -> None:
    found = estimate(5, tally([1, 1, 1]))  # three ratings against a prior worth five
    assert found.value == pytest.approx((5 * PRIOR_RATINGS + 3) / (PRIOR_RATINGS + 3))
    assert found.value > 3  # nearer the stars than the ratings' own mean of 1


@given(st.integers(1, 5), st.floats(1.0, 5.0), st.integers(0, 2**32 - 1))
def test_many_ratings_converge_on_their_mean_within_the_interval(stars: int, truth: float, seed: int) -> None:
    rng = random.Random(seed)
    scores = [min(5, max(1, round(rng.gauss(truth, 0.8)))) for _ in range(2000)]
    found = estimate(stars, tally(scores))
    mean = sum(scores) / len(scores)
    assert abs(found.value - mean) < 0.01  # the prior's weight: 5 / 2005
    assert found.high - found.low < 0.1  # and the interval has closed in on it


def test_the_interval_narrows_as_ratings_come_in() -> None:
    widths = [estimate(3, tally([4, 3] * n)).high - estimate(3, tally([4, 3] * n)).low for n in (1, 10, 100)]
    assert widths[0] > widths[1] > widths[2]


def test_replacing_a_rating_in_the_tally_is_exact() -> None:
    assert tally([5, 2, 4]).minus(2).plus(3) == tally([5, 4, 3])


def test_below_the_threshold_the_stars_hold_from_it_on_the_ratings_do() -> None:
    animatediff = CATALOG.get(ANIMATEDIFF)
    assert animatediff is not None
    low = tally([2] * 29)
    assert routing_quality(CATALOG.offers, {ANIMATEDIFF: low}, min_ratings=30) == {}
    assert not learned_quality(animatediff, low, 30).in_use
    enough = low.plus(2)
    assert routing_quality(CATALOG.offers, {ANIMATEDIFF: enough}, 30)[ANIMATEDIFF] == pytest.approx(
        (3 * PRIOR_RATINGS + 2 * 30) / (PRIOR_RATINGS + 30))
    assert learned_quality(animatediff, enough, 30).in_use


def _context(scores: list[int], min_ratings: int = 30) -> RoutingContext:
    return replace(EVERYWHERE, quality=routing_quality(CATALOG.offers, {ANIMATEDIFF: tally(scores)}, min_ratings))


def test_learned_quality_under_the_floor_refuses_the_offer_only_past_the_threshold() -> None:
    stars_only = route(DRAFT_512, CATALOG.offers, EVERYWHERE, NOW)
    assert stars_only.chosen is not None and stars_only.chosen.offer == ANIMATEDIFF
    below_threshold = route(DRAFT_512, CATALOG.offers, _context([2] * 29), NOW)
    assert below_threshold.chosen is not None and below_threshold.chosen.offer == ANIMATEDIFF
    learned = route(DRAFT_512, CATALOG.offers, _context([2] * 30), NOW)
    assert learned.chosen is None  # no other offer renders 512x512: the request is now rejected
    [row] = [c for c in learned.candidates if c.offer == ANIMATEDIFF]
    assert [r.code for r in row.reasons] == [Refusal.QUALITY]
    assert "learned from ratings; catalog 3" in str(row.reasons[0])


def test_learned_quality_above_the_stars_raises_the_score_only_past_the_threshold() -> None:
    def animatediff_score(context: RoutingContext) -> float | None:
        decision = route(DRAFT_512, CATALOG.offers, context, NOW)
        return next(c.score for c in decision.candidates if c.offer == ANIMATEDIFF)

    stars = animatediff_score(EVERYWHERE)
    assert animatediff_score(_context([5] * 29)) == stars
    learned = animatediff_score(_context([5] * 30))
    assert stars is not None and learned is not None and learned > stars
