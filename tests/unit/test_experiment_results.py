"""An experiment's results (router.policy.experiment_results): thin data gives None, never NaN or an exception;
the verdict rests on pairs, then ratings, then nothing; and synthetic raters with known preferences are found
within the reported intervals (hvr.sim.experiments)."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from hvr.sim.experiments import coverage, expected_outcome, pairs_needed, run, true_preference
from router.policy.experiment_results import ArmSample, results


def arm(name: str, scores: list[int], costs: list[str] | None = None, failed: int = 0) -> ArmSample:
    costs = costs if costs is not None else ["0.10"] * len(scores)
    return ArmSample(name=name, arm=f"arm-{name}", assigned=len(costs), ended=len(costs), failed=failed,  # type: ignore[arg-type]
                     delivered=len(costs) - failed, scores=scores, costs_usd=[Decimal(c) for c in costs],
                     turnarounds_s=[60.0 * (n + 1) for n in range(len(costs) - failed)])


def test_nothing_yet_is_not_enough_data_and_no_figure_is_invented() -> None:
    found = results(arm("a", [], []), arm("b", [], []), 0, 0)
    assert found.verdict.outcome == "not_enough_data" and found.verdict.basis == "none"
    a = found.arms[0]
    assert (a.failure_rate, a.mean_score, a.cost_per_video_usd, a.turnaround_p50_s) == (None, None, None, None)
    assert found.preference.share_a is None and found.preference.p_value is None
    assert "NaN" not in found.model_dump_json()


def test_the_verdict_rests_on_pairs_then_ratings() -> None:
    same = [3, 4] * 10
    assert results(arm("a", same), arm("b", same), 25, 5).verdict.model_dump(include={"outcome", "basis"}) == {
        "outcome": "a_better", "basis": "preference"}
    assert results(arm("a", same), arm("b", same), 6, 5).verdict.outcome == "no_difference"
    # Four pairs are too few: the ratings decide, here for b.
    low, high = [2, 3] * 10, [4, 5] * 10
    found = results(arm("a", low), arm("b", high), 3, 1)
    assert (found.verdict.outcome, found.verdict.basis) == ("b_better", "ratings")
    assert results(arm("a", same), arm("b", same), 3, 1).verdict.outcome == "no_difference"
    assert results(arm("a", [5] * 9), arm("b", [1] * 9), 3, 1).verdict.outcome == "not_enough_data"


def test_money_is_exact_and_failures_count_against_their_arm() -> None:
    found = results(arm("a", [4, 4, 4], ["0.1001", "0.2002", "0.0500"], failed=1), arm("b", [3]), 0, 0)
    a = found.arms[0]
    assert a.cost_usd == Decimal("0.3503") and a.cost_per_video_usd == Decimal("0.1752")  # over 2 videos
    assert a.failed == 1 and a.failure_rate == pytest.approx(0.3333, abs=1e-4)
    assert a.failure_rate_interval is not None and a.failure_rate_interval.low < 1 / 3 < a.failure_rate_interval.high
    assert json.loads(found.model_dump_json())["arms"][0]["cost_usd"] == "0.3503"


def test_synthetic_raters_are_found_within_the_intervals_and_the_verdict_is_the_truth() -> None:
    assert true_preference(3.8, 3.8) == pytest.approx(0.5)
    assert true_preference(4.2, 3.4) == pytest.approx(1 - true_preference(3.4, 4.2))
    held = coverage(4.2, 3.4, 100, range(60))
    # 95 % intervals: over 60 runs, fewer than 51 holding the truth would be a 1-in-1000 event for a right interval.
    assert min(held["preference"], held["mean_a"], held["mean_b"]) >= 0.85, held
    assert held["verdict"] >= 0.95
    null = coverage(3.8, 3.8, 100, range(60))
    assert null["verdict"] >= 0.85 and expected_outcome(3.8, 3.8) == "no_difference"
    assert run(4.2, 3.4, 100, seed=1).verdict.outcome == "a_better"
    needed = pairs_needed(4.2, 3.4, seeds=range(20))
    assert needed is not None and 10 <= needed <= 100
