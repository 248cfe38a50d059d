"""The studio's scorecard (router.services.scorecard) on a seeded ledger and seeded ratings: each metric's value,
the observations it rests on, and its verdict."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest

from router.models.common import ProviderKind
from router.models.ledger import LedgerEntry
from router.models.offer import LocalEnergyPricing
from router.models.rating import Rating
from router.policy.catalog import load_catalog
from router.services.scorecard import Metric, family, metrics_of

DAY = date(2026, 12, 4)
START = datetime(2026, 12, 4, 9, 0, tzinfo=UTC)
PRICING = next(o.pricing for o in load_catalog().offers if isinstance(o.pricing, LocalEnergyPricing))
OFFERS = {"local/animatediff-sd15": ProviderKind.LOCAL, "local/wan21-14b": ProviderKind.LOCAL,
          "veo/veo-3.1-fast": ProviderKind.VEO}


def row(n: int, offer: str, usd: str, minutes: float, outcome: str = "succeeded") -> LedgerEntry:
    started = START + timedelta(minutes=n)
    return LedgerEntry(
        tenant="acme", job_id=f"job_{offer}_{n}", attempt_id=f"att_{offer}_{n}", provider=OFFERS[offer], offer=offer,
        model=offer.partition("/")[2], outcome=outcome, billed_units={"gpu_seconds": Decimal(60)}, unit="gpu_second",
        unit_price_usd=Decimal("0.0001"), pricing_version="t", estimated_usd=Decimal(usd), actual_usd=Decimal(usd),
        resolution="832x480", started_at=started, ended_at=started + timedelta(minutes=minutes))


def rating(n: int, offer: str, score: int, over: str | None = None) -> Rating:
    return Rating(tenant="acme", job_id=f"job_{offer}_{n}", rater="k", score=score, offer=offer,
                  provider=OFFERS[offer], model=offer.partition("/")[2], delivered_on=DAY, rated_at=START,
                  preferred_over=f"job_{over}_{n}" if over else None, preferred_over_offer=over)


def ledger() -> list[LedgerEntry]:
    rows = [row(n, "local/animatediff-sd15", "0.0200", 5) for n in range(12)]
    rows += [row(n, "local/wan21-14b", "0.1000", 8) for n in range(12)]
    rows += [row(n, "veo/veo-3.1-fast", "1.2000", 4) for n in range(12)]
    rows.append(row(99, "veo/veo-3.1-fast", "0.3000", 1, outcome="failed"))  # paid for, delivered nothing
    return rows


def by_name(metrics: list[Metric]) -> dict[str, Metric]:
    return {metric.name: metric for metric in metrics}


def test_family_is_the_leading_word_of_the_model() -> None:
    assert [family(m) for m in ("wan21-14b", "wan-video/wan-2.2-t2v-fast", "veo-3.1-fast", "animatediff-sd15")] == [
        "wan", "wan", "veo", "animatediff"]


def test_every_metric_on_a_seeded_window() -> None:
    ratings = [rating(n, "local/wan21-14b", 5) for n in range(12)]
    ratings += [rating(n, "local/animatediff-sd15", 3) for n in range(12)]
    ratings += [rating(n, "veo/veo-3.1-fast", 5) for n in range(12)]
    # Pairs: WAN preferred over Veo 6 times, Veo over WAN 4 times.
    ratings += [rating(100 + n, "local/wan21-14b", 4, over="veo/veo-3.1-fast") for n in range(6)]
    ratings += [rating(200 + n, "veo/veo-3.1-fast", 4, over="local/wan21-14b") for n in range(4)]
    found = by_name(metrics_of(ledger(), ratings, PRICING, DAY, DAY))

    assert found["usage_ratio_animatediff_to_gemini"].value == 1.0
    assert found["usage_share.family.wan"].value == pytest.approx(1 / 3, abs=1e-4)
    assert found["usage_share.provider.local"].n == 24
    satisfaction = found["satisfaction"]
    assert satisfaction.n == 46 and satisfaction.value == pytest.approx((60 + 36 + 60 + 24 + 16) / 46, abs=1e-3)
    assert satisfaction.verdict == "held"
    cost = found["cost_per_video_usd"]
    # 12 x $0.02 + 12 x $0.10 + 12 x $1.20, and the failed attempt's $0.30: $16.14 over 36 videos.
    assert cost.n == 36 and cost.value == pytest.approx(float(Decimal("16.14") / 36), abs=1e-4)
    assert cost.verdict == "held" and "$16.1400 over 36 videos: $0.4483 per video" in cost.detail
    turnaround = found["turnaround_p50_min"]
    assert turnaround.value == 5.0 and turnaround.verdict == "held"
    assert found["gpu_utilization"].n == 24 and found["gpu_utilization"].verdict == "missed"
    assert found["gpu_utilization"].value == pytest.approx(24 * 60 / 86400, abs=1e-6)
    uplift = found["wan_quality_over_animatediff"]
    assert uplift.value == pytest.approx(((12 * 5 + 6 * 4) / 18) / 3 - 1, abs=1e-3) and uplift.verdict == "held"
    assert found["wan_cost_vs_gemini"].value == pytest.approx(0.1 / (14.7 / 12) - 1, abs=1e-3)
    assert found["wan_cost_vs_gemini"].verdict == "held"
    assert found["wan_time_vs_gemini"].value == pytest.approx(8 / 4 - 1) and found["wan_time_vs_gemini"].verdict \
        == "missed"
    preference = found["wan_preference"]
    assert (preference.value, preference.n, preference.verdict) == (0.6, 10, "held")


@pytest.mark.parametrize(("scores", "verdict"), [([4] * 12, "missed"), ([5, 4, 4] * 4, "held"), ([3] * 20, "missed")])
def test_satisfaction_holds_only_above_four(scores: list[int], verdict: str) -> None:
    ratings = [rating(n, "local/wan21-14b", score) for n, score in enumerate(scores)]
    assert by_name(metrics_of(ledger(), ratings, PRICING, DAY, DAY))["satisfaction"].verdict == verdict


def test_too_few_observations_are_not_enough_data_never_a_verdict() -> None:
    rows = [row(n, "local/wan21-14b", "0.1000", 8) for n in range(3)]
    ratings = [rating(n, "local/wan21-14b", 5) for n in range(8)]
    ratings += [rating(100, "local/wan21-14b", 5, over="veo/veo-3.1-fast")]
    found = by_name(metrics_of(rows, ratings, PRICING, DAY, DAY))
    for name in ("satisfaction", "cost_per_video_usd", "turnaround_p50_min", "wan_quality_over_animatediff",
                 "wan_cost_vs_gemini", "wan_time_vs_gemini", "wan_preference"):
        assert found[name].verdict == "not_enough_data", name
    assert found["usage_ratio_animatediff_to_gemini"].verdict == "not_enough_data"
    assert found["wan_cost_vs_gemini"].value is None
    assert "None" not in found["wan_cost_vs_gemini"].detail and "Veo - (0)" in found["wan_cost_vs_gemini"].detail


def test_a_long_videos_segments_are_one_video() -> None:
    segments = [row(n, "local/wan21-14b", "0.1000", 8).model_copy(update={"job_id": "job_long",
                                                                          "attempt_id": f"att_long_{n}"})
                for n in range(3)]
    found = by_name(metrics_of(segments, [], PRICING, DAY, DAY))
    assert found["usage_share.family.wan"].n == 1
    assert found["cost_per_video_usd"].detail.startswith("$0.3000 over 1 videos")
    # From the first segment's start (minute 0) to the last one's end (minute 2 + 8).
    assert found["turnaround_p50_min"].value == 10.0
