"""The few statistical tests and intervals an experiment's results need, in the standard library.

Why not scipy.stats, which the tests check every function here against: the API Lambda would have to ship numpy and
scipy, 176 MB unpacked for the wheels Lambda's python3.11 (Amazon Linux 2, glibc 2.26) can load (numpy 2.2.6,
scipy 1.16.3, measured 2026-12-05), beside an 87 MB layer, against Lambda's 250 MB limit (docs/decisions.md).
Each function names the scipy.stats call it reproduces; tests/unit/test_stats.py holds them equal.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from statistics import NormalDist

_NORMAL = NormalDist()
_BISECTIONS = 80  # halvings of [0, 1]: far below a probability anyone reads


def _binom_pmf(k: int, n: int, p: float) -> float:
    if p <= 0.0:
        return 1.0 if k == 0 else 0.0
    if p >= 1.0:
        return 1.0 if k == n else 0.0
    return math.exp(math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)
                    + k * math.log(p) + (n - k) * math.log1p(-p))


def binom_cdf(k: int, n: int, p: float) -> float:
    """P(X <= k) for X ~ Binomial(n, p): scipy.stats.binom.cdf."""
    if k < 0:
        return 0.0
    if k >= n:
        return 1.0
    return min(1.0, math.fsum(_binom_pmf(i, n, p) for i in range(k + 1)))


def binom_test(k: int, n: int, p: float = 0.5) -> float:
    """Two-sided exact binomial test of k successes in n against p: scipy.stats.binomtest(k, n, p).pvalue. The
    p-value sums the probabilities of every outcome no more likely than the one observed (scipy's relative
    tolerance of 1e-7 included)."""
    if n == 0:
        return 1.0
    observed = _binom_pmf(k, n, p) * (1 + 1e-7)
    return min(1.0, math.fsum(q for i in range(n + 1) if (q := _binom_pmf(i, n, p)) <= observed))


def clopper_pearson(k: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """The exact interval for a proportion: binomtest(k, n).proportion_ci(confidence, method="exact")."""
    alpha = 1 - confidence
    low = 0.0 if k == 0 else _solve(lambda p: 1 - binom_cdf(k - 1, n, p), alpha / 2)
    high = 1.0 if k == n else _solve(lambda p: binom_cdf(k, n, p), alpha / 2, increasing=False)
    return low, high


def _solve(f: Callable[[float], float], target: float, increasing: bool = True) -> float:
    """The p in [0, 1] where the monotone f(p) crosses target, by bisection."""
    low, high = 0.0, 1.0
    for _ in range(_BISECTIONS):
        mid = (low + high) / 2
        value = f(mid)
        if (value < target) == increasing:
            low = mid
        else:
            high = mid
    return (low + high) / 2


def wilson(k: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """The Wilson score interval: binomtest(k, n).proportion_ci(confidence, method="wilson")."""
    if n == 0:
        return 0.0, 1.0
    z = _NORMAL.inv_cdf(1 - (1 - confidence) / 2)
    share = k / n
    centre = (share + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(share * (1 - share) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def t_quantile(q: float, df: int) -> float:
    """Student's t quantile, scipy.stats.t.ppf(q, df): bisection on the exact finite series of the t distribution
    for whole degrees of freedom (Abramowitz and Stegun 26.7.3-4) up to SERIES_DF; above, the Cornish-Fisher
    expansion in 1/df (26.7.5), whose error there is below 1e-9."""
    if df < 1:
        raise ValueError("df must be at least 1")
    if q == 0.5:
        return 0.0
    if q < 0.5:
        return -t_quantile(1 - q, df)
    if df > SERIES_DF:
        z = _NORMAL.inv_cdf(q)
        terms = ((z ** 3 + z) / 4,
                 (5 * z ** 5 + 16 * z ** 3 + 3 * z) / 96,
                 (3 * z ** 7 + 19 * z ** 5 + 17 * z ** 3 - 15 * z) / 384,
                 (79 * z ** 9 + 776 * z ** 7 + 1482 * z ** 5 - 1920 * z ** 3 - 945 * z) / 92160)
        return z + sum(term / df ** (n + 1) for n, term in enumerate(terms))
    inside = 2 * q - 1  # P(|T| <= t)
    high = 1.0
    while _t_inside(high, df) < inside:
        high *= 2
    low = 0.0
    for _ in range(_BISECTIONS):
        mid = (low + high) / 2
        if _t_inside(mid, df) < inside:
            low = mid
        else:
            high = mid
    return (low + high) / 2


SERIES_DF = 200


def _t_inside(t: float, df: int) -> float:
    """P(|T| <= t) for T ~ Student(df), df a whole number (A&S 26.7.3 odd, 26.7.4 even)."""
    theta = math.atan(t / math.sqrt(df))
    cos2 = math.cos(theta) ** 2
    if df % 2:
        if df == 1:
            return 2 * theta / math.pi
        term, total = 1.0, 1.0
        for j in range(1, (df - 3) // 2 + 1):
            term *= cos2 * (2 * j) / (2 * j + 1)
            total += term
        return 2 / math.pi * (theta + math.sin(theta) * math.cos(theta) * total)
    term, total = 1.0, 1.0
    for j in range(1, (df - 2) // 2 + 1):
        term *= cos2 * (2 * j - 1) / (2 * j)
        total += term
    return math.sin(theta) * total


def t_interval(values: Sequence[float], confidence: float = 0.95) -> tuple[float, float] | None:
    """The mean's Student t interval: scipy.stats.t.interval(confidence, n - 1, mean, sem). None below two values."""
    n = len(values)
    if n < 2:
        return None
    mean = math.fsum(values) / n
    sd = math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (n - 1))
    half = t_quantile(1 - (1 - confidence) / 2, n - 1) * sd / math.sqrt(n)
    return mean - half, mean + half


def mann_whitney_u(first: Sequence[float], second: Sequence[float]) -> tuple[float, float]:
    """(U of `first`, two-sided p) by the normal approximation with tie and continuity corrections:
    scipy.stats.mannwhitneyu(first, second, alternative="two-sided", method="asymptotic"). Star ratings are
    mostly ties, where the exact distribution doesn't apply anyway."""
    n1, n2 = len(first), len(second)
    if not n1 or not n2:
        raise ValueError("both samples need values")
    pooled = sorted([(v, 0) for v in first] + [(v, 1) for v in second])
    ranks: list[float] = [0.0] * len(pooled)
    ties = 0.0
    i = 0
    while i < len(pooled):
        j = i
        while j + 1 < len(pooled) and pooled[j + 1][0] == pooled[i][0]:
            j += 1
        for m in range(i, j + 1):
            ranks[m] = (i + j) / 2 + 1
        t = j - i + 1
        ties += t ** 3 - t
        i = j + 1
    rank_sum = math.fsum(r for r, (_, side) in zip(ranks, pooled, strict=True) if side == 0)
    u1 = rank_sum - n1 * (n1 + 1) / 2
    n = n1 + n2
    mu = n1 * n2 / 2
    sigma = math.sqrt(n1 * n2 / 12 * ((n + 1) - ties / (n * (n - 1))))
    if sigma == 0:
        return u1, 1.0
    z = (abs(max(u1, n1 * n2 - u1) - mu) - 0.5) / sigma
    return u1, min(1.0, 2 * (1 - _NORMAL.cdf(z)))


def median_interval(values: Sequence[float], confidence: float = 0.95) -> tuple[float, float] | None:
    """A distribution-free interval for the median: the order statistics (j, k) around the middle whose binomial
    coverage is at least `confidence` (the sign-test interval). None when n is too small for any."""
    ordered = sorted(values)
    n = len(ordered)
    if n < 2:
        return None
    alpha = 1 - confidence
    # The largest j with P(Binomial(n, 1/2) <= j - 1) <= alpha / 2: the interval [x(j), x(n - j + 1)] (1-based).
    j = 0
    while j + 1 <= n // 2 and binom_cdf(j, n, 0.5) <= alpha / 2:
        j += 1
    if j == 0:
        return ordered[0], ordered[-1]  # n too small for the confidence: the whole range, wider than asked
    return ordered[j - 1], ordered[n - j]
