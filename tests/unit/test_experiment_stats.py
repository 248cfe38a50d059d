"""An experiment's statistics with scipy.stats (router.policy.experiment_stats): intervals hold known values, thin
or degenerate data gives None rather than NaN or an exception, the verdict rests on pairs, then ratings, then
nothing; and the module leaves scipy unimported until results are computed."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from decimal import Decimal

import pytest

from router.policy import experiment_results, experiment_stats
from router.policy.experiment_stats import ArmSample, median_interval, results, t_interval


def arm(name: str, scores: list[int], costs: list[str] | None = None, failed: int = 0,
        turnarounds: list[float] | None = None) -> ArmSample:
    costs = costs if costs is not None else ["0.10"] * len(scores)
    delivered = len(costs) - failed
    turnarounds = turnarounds if turnarounds is not None else [60.0 * (n + 1) for n in range(delivered)]
    return ArmSample(name=name, arm=f"arm-{name}", assigned=len(costs), ended=len(costs), failed=failed,
                     scores=scores, costs_usd=[Decimal(c) for c in costs], delivered=delivered,
                     turnarounds_s=turnarounds)


def no_nan(found: experiment_stats.ExperimentResults) -> bool:
    text = found.model_dump_json()
    json.loads(text)
    return "NaN" not in text and "Infinity" not in text


def test_importing_the_module_leaves_scipy_unimported() -> None:
    code = "import sys, router.policy.experiment_stats; print('scipy' in sys.modules or 'numpy' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_nothing_yet_is_not_enough_data_and_no_figure_is_invented() -> None:
    found = results(arm("a", [], []), arm("b", [], []), 0, 0)
    assert (found.verdict.outcome, found.verdict.basis, found.verdict.p_value) == ("not_enough_data", "none", None)
    a = found.arms[0]
    assert (a.failure_rate, a.mean_score, a.cost_per_video_usd, a.turnaround_p50_s) == (None, None, None, None)
    assert (a.failure_rate_interval, a.mean_score_interval, a.cost_per_job_interval, a.turnaround_p50_interval) == (
        None, None, None, None)
    assert found.preference.share_a is None and found.preference.p_value is None
    assert found.preference.share_a_interval is None
    assert no_nan(found) and found.method


def test_one_job_and_equal_scores_give_none_or_zero_width_never_nan() -> None:
    found = results(arm("a", [4], ["0.25"]), arm("b", [3] * 12), 0, 0)
    a, b = found.arms
    assert a.mean_score == 4.0 and a.mean_score_interval is None  # one rating: no spread to build on
    assert a.cost_per_video_usd == Decimal("0.2500") and a.cost_per_job_interval is None  # below MIN_JOBS
    assert a.turnaround_p50_s == 60.0 and a.turnaround_p50_interval is None
    assert b.mean_score_interval is not None and (b.mean_score_interval.low, b.mean_score_interval.high) == (3.0, 3.0)
    assert no_nan(found)
    # Every score the same on both arms: Mann-Whitney has nothing to rank, p is 1 and there is no difference.
    same = results(arm("a", [5] * 10), arm("b", [5] * 10), 0, 0)
    assert (same.verdict.outcome, same.verdict.basis, same.verdict.p_value) == ("no_difference", "ratings", 1.0)
    assert no_nan(same)


def test_the_verdict_rests_on_pairs_then_ratings_then_nothing() -> None:
    same = [3, 4] * 10
    found = results(arm("a", same), arm("b", same), 25, 5)
    assert (found.verdict.outcome, found.verdict.basis) == ("a_better", "preference")
    assert "binomtest" in found.verdict.test and found.verdict.p_value is not None and found.verdict.p_value < 0.001
    assert results(arm("a", same), arm("b", same), 5, 25).verdict.outcome == "b_better"
    assert results(arm("a", same), arm("b", same), 6, 5).verdict.model_dump(include={"outcome", "basis"}) == {
        "outcome": "no_difference", "basis": "preference"}
    # Four pairs are too few: the ratings decide, here for b ...
    low, high = [2, 3] * 10, [4, 5] * 10
    found = results(arm("a", low), arm("b", high), 3, 1)
    assert (found.verdict.outcome, found.verdict.basis) == ("b_better", "ratings")
    assert "mannwhitneyu" in found.verdict.test
    # ... even when the few pairs lean the other way; equal ratings are no difference.
    assert results(arm("a", same), arm("b", same), 3, 1).verdict.model_dump(include={"outcome", "basis"}) == {
        "outcome": "no_difference", "basis": "ratings"}
    # Nine ratings on an arm and nine pairs: not enough for either.
    thin = results(arm("a", [5] * 9), arm("b", [1] * 20), 8, 1)
    assert (thin.verdict.outcome, thin.verdict.basis, thin.verdict.test) == ("not_enough_data", "none", "")
    # The thresholds are the caller's.
    assert results(arm("a", same), arm("b", same), 4, 0, min_pairs=4).verdict.basis == "preference"


def test_intervals_hold_known_values() -> None:
    # 30 of 100 failed: the exact interval is scipy's and holds 0.3; Wilson holds 0.7 for 70 of 100 pairs.
    costs = ["0.10"] * 100
    found = results(arm("a", [4, 5] * 10, costs, failed=30), arm("b", [3] * 10), 70, 30)
    a = found.arms[0]
    assert a.failure_rate == 0.3 and a.failure_rate_interval is not None
    assert a.failure_rate_interval.low == pytest.approx(0.2124, abs=1e-4)
    assert a.failure_rate_interval.high == pytest.approx(0.3998, abs=1e-4)
    share = found.preference.share_a_interval
    assert share is not None and share.low == pytest.approx(0.6042, abs=1e-4) and share.high == pytest.approx(
        0.7810, abs=1e-4)
    # The t interval of 1..5 once each: mean 3, sd sqrt(2.5), t(0.975, 4) = 2.7764.
    bounds = t_interval([1, 2, 3, 4, 5])
    assert bounds is not None
    half = 2.776445 * math.sqrt(2.5) / math.sqrt(5)
    assert bounds == pytest.approx((3 - half, 3 + half), abs=1e-5)
    # The median's order statistics: for n = 10 at 95 %, ranks 2 and 9 (coverage 97.9 %); n = 5 can't reach 95 %.
    assert median_interval([float(v) for v in range(1, 11)]) == (2.0, 9.0)
    assert median_interval([1.0, 2.0, 3.0, 4.0, 5.0]) is None
    assert median_interval([1.0, 2.0, 3.0, 4.0, 5.0, 6.0]) == (1.0, 6.0)


def test_figures_match_the_standard_library_results() -> None:
    """The stdlib module (router.policy.experiment_results) and this one agree on the same arms."""
    turn = [30.0 * v for v in (5, 1, 9, 14, 2, 8, 30, 4, 4, 11, 7, 6)]
    a = arm("a", [4, 5, 3, 5, 4, 4, 2, 5, 5, 4, 3, 5], ["0.11", "0.31", "0.07", "0.18"] * 3 + ["0.40"] * 3,
            failed=3, turnarounds=turn)
    b = arm("b", [3, 2, 4, 3, 3, 1, 4, 3, 2, 3, 3], ["0.25"] * 14, failed=1, turnarounds=[*turn[:13], 99.0])
    ours = results(a, b, 17, 6)
    old = experiment_results.results(
        experiment_results.ArmSample(name="a", arm=a.arm, assigned=a.assigned, ended=a.ended, failed=a.failed,
                                     delivered=a.delivered, scores=a.scores, costs_usd=a.costs_usd,
                                     turnarounds_s=a.turnarounds_s),
        experiment_results.ArmSample(name="b", arm=b.arm, assigned=b.assigned, ended=b.ended, failed=b.failed,
                                     delivered=b.delivered, scores=b.scores, costs_usd=b.costs_usd,
                                     turnarounds_s=b.turnarounds_s), 17, 6)
    skip = {"method"}
    assert ours.model_dump(exclude=skip, include={"arms", "preference", "confidence"}) == old.model_dump(
        exclude=skip, include={"arms", "preference", "confidence"})
    assert ours.verdict.outcome == old.verdict.outcome and ours.verdict.p_value == old.verdict.p_value


def test_money_is_exact_and_failures_count_against_their_arm() -> None:
    found = results(arm("a", [4, 4, 4], ["0.1001", "0.2002", "0.0500"], failed=1), arm("b", [3]), 0, 0)
    a = found.arms[0]
    assert a.cost_usd == Decimal("0.3503") and a.cost_per_video_usd == Decimal("0.1752")  # 0.17515 over 2 videos
    assert a.failed == 1 and a.failure_rate == pytest.approx(0.3333, abs=1e-4)
    assert a.failure_rate_interval is None  # three jobs: below MIN_JOBS
    dumped = json.loads(found.model_dump_json())
    assert dumped["arms"][0]["cost_usd"] == "0.3503" and dumped["arms"][0]["cost_per_video_usd"] == "0.1752"
    assert dumped["arms"][1]["cost_per_video_usd"] == "0.1000"
    assert results(arm("a", [], []), arm("b", [], ["0.5"], failed=1), 0, 0).arms[1].cost_per_video_usd is None
