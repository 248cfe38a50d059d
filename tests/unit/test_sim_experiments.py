"""Synthetic raters whose true preferences are known (hvr.sim.experiments) are found within the intervals
router.policy.experiment_stats reports, and its verdict is the truth once there are enough pairs."""

from __future__ import annotations

import pytest

from hvr.sim.experiments import (
    GRID,
    coverage,
    expected_outcome,
    format_results,
    run,
    sample_size_needed,
    score_distribution,
    true_preference,
)

SEEDS = range(60)
# 95 % intervals over 60 seeded runs: fewer than 51 holding the truth (85 %) would be a 1-in-1000 event for a right
# interval, and a routine one for an interval too narrow by a third (a 68 % one).
MIN_COVERAGE = 0.85


def test_the_true_preference_is_exact() -> None:
    assert sum(score_distribution(3.4)) == pytest.approx(1.0)
    assert sum(k * p for k, p in zip(range(1, 6), score_distribution(4.2), strict=True)) == pytest.approx(4.2)
    assert true_preference(3.8, 3.8) == pytest.approx(0.5)
    assert true_preference(4.2, 3.4) == pytest.approx(1 - true_preference(3.4, 4.2))
    assert true_preference(5.0, 1.0) == 1.0
    assert expected_outcome(4.2, 3.4) == "a_better" and expected_outcome(3.0, 3.5) == "b_better"
    assert expected_outcome(3.8, 3.8) == "no_difference"


def test_the_reported_intervals_hold_the_truth_and_the_verdict_is_right() -> None:
    held = coverage(4.2, 3.4, 100, SEEDS, failure_rate=0.1)
    assert min(held["preference"], held["mean_a"], held["mean_b"], held["failure_a"], held["failure_b"]) >= (
        MIN_COVERAGE), held
    assert held["verdict"] >= 0.9, held
    null = coverage(3.8, 3.8, 100, SEEDS)
    assert null["verdict"] >= MIN_COVERAGE and null["preference"] >= MIN_COVERAGE, null


def test_a_run_exercises_every_figure() -> None:
    found = run(4.2, 3.4, 100, seed=1, failure_rate=0.05)
    assert found.verdict.outcome == "a_better" and found.verdict.basis == "preference"
    for arm in found.arms:
        assert arm.cost_per_video_usd is not None and arm.cost_per_job_interval is not None
        assert arm.turnaround_p50_interval is not None and arm.failure_rate_interval is not None
    text = format_results(found)
    assert "a: arm-a" in text and "verdict: a better (preference" in text and "NaN" not in found.model_dump_json()


def test_the_sample_size_needed_is_found_on_the_grid() -> None:
    needed = sample_size_needed(4.2, 3.4, seeds=range(20))
    assert needed is not None and needed in GRID and 20 <= needed <= 100
    assert sample_size_needed(3.8, 3.8, seeds=range(20)) == GRID[0]  # no difference is right from the start
