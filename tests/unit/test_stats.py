"""router.policy.stats against scipy.stats, the library each function reproduces (the Lambda ships without it)."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from router.policy import stats

scipy_stats = pytest.importorskip("scipy.stats")


@settings(max_examples=200, deadline=None)
@given(n=st.integers(1, 120), data=st.data(), p=st.sampled_from([0.5, 0.3, 0.05, 0.9]))
def test_the_binomial_test_and_intervals_are_scipys(n: int, data: st.DataObject, p: float) -> None:
    k = data.draw(st.integers(0, n))
    reference = scipy_stats.binomtest(k, n, p)
    assert stats.binom_test(k, n, p) == pytest.approx(reference.pvalue, rel=1e-6, abs=1e-12)
    exact = reference.proportion_ci(0.95, method="exact")
    assert stats.clopper_pearson(k, n) == pytest.approx((exact.low, exact.high), abs=1e-9)
    score = reference.proportion_ci(0.95, method="wilson")
    assert stats.wilson(k, n) == pytest.approx((score.low, score.high), abs=1e-9)
    assert stats.binom_cdf(k, n, p) == pytest.approx(scipy_stats.binom.cdf(k, n, p), rel=1e-9, abs=1e-12)


@pytest.mark.parametrize("df", [1, 2, 3, 4, 5, 9, 10, 20, 29, 60, 199, 200, 201, 5000])
@pytest.mark.parametrize("q", [0.95, 0.975, 0.995])
def test_the_t_quantile_is_scipys(df: int, q: float) -> None:
    assert stats.t_quantile(q, df) == pytest.approx(scipy_stats.t.ppf(q, df), rel=1e-9)
    assert stats.t_quantile(1 - q, df) == pytest.approx(-scipy_stats.t.ppf(q, df), rel=1e-9)


@settings(max_examples=100, deadline=None)
@given(values=st.lists(st.integers(0, 5000).map(lambda cents: cents / 100), min_size=2, max_size=200))
def test_the_t_interval_is_scipys(values: list[float]) -> None:
    found = stats.t_interval(values)
    assert found is not None
    mean = sum(values) / len(values)
    reference = scipy_stats.t.interval(0.95, len(values) - 1, loc=mean, scale=scipy_stats.sem(values)) \
        if len(set(values)) > 1 else (mean, mean)
    assert found == pytest.approx(reference, rel=1e-9, abs=1e-9)


@settings(max_examples=150, deadline=None)
@given(first=st.lists(st.integers(1, 5), min_size=1, max_size=80),
       second=st.lists(st.integers(1, 5), min_size=1, max_size=80))
def test_mann_whitney_on_star_ratings_is_scipys(first: list[int], second: list[int]) -> None:
    u, p = stats.mann_whitney_u(first, second)
    if len(set(first + second)) == 1:
        assert p == 1.0  # no spread: scipy answers nan, we answer "no evidence"
        return
    reference = scipy_stats.mannwhitneyu(first, second, alternative="two-sided", method="asymptotic")
    assert u == reference.statistic
    assert p == pytest.approx(reference.pvalue, rel=1e-9, abs=1e-12)


def test_the_median_interval_covers_the_median_as_often_as_it_says() -> None:
    rng = random.Random(7)
    covered = 0
    for _ in range(2000):
        sample = [rng.expovariate(1.0) for _ in range(25)]
        low, high = stats.median_interval(sample)  # type: ignore[misc]
        covered += low <= 0.6931471805599453 <= high  # Exp(1)'s median, ln 2
    assert 0.94 <= covered / 2000 <= 0.995  # at least 95 % by construction, order statistics make it a little more
    assert stats.median_interval([3.0]) is None
    assert stats.median_interval([1.0, 2.0, 3.0]) == (1.0, 3.0)  # too few for 95 %: the whole range
