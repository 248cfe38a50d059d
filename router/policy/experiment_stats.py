"""An A/B experiment's results from its arms' figures, with scipy.stats: per arm intervals, the preference share
and a verdict. Pure: no I/O, no clock.

scipy is imported inside the functions that use it, never at module level, so importing this module (the API Lambda
does) stays light; the first results computed pay for scipy's import. Which test gives which figure:

- failure rate: ended jobs without a video over ended jobs (cancelled ones are not ended here), with the exact
  Clopper-Pearson interval, `scipy.stats.binomtest(failed, ended).proportion_ci(confidence, method="exact")`;
- mean score: every rating of the arm's videos, with the Student t interval, `scipy.stats.t.interval(confidence,
  n - 1, mean, sem)`; a sample whose scores are all equal has a zero-width interval (its sem is 0);
- cost per video: every ended job's cost (all attempts, failures too) over the delivered videos, in exact Decimal;
  its interval is the t interval of the mean cost per ended job (what one request costs, whatever became of it);
- p50 turnaround: a delivered job's creation to its delivery; the interval is the distribution-free order-statistic
  (sign-test) interval of the median, its ranks from `scipy.stats.binom` at p = 1/2, coverage at least `confidence`
  (None when there are too few jobs for any pair of ranks to reach it: fewer than 6 at 95 %);
- preference: of the pairs where a rating prefers one arm's job over the other's, arm a's share, with the Wilson
  interval (`proportion_ci(method="wilson")`) and a two-sided exact binomial test against 1/2
  (`scipy.stats.binomtest`).

The verdict, at alpha = 1 - confidence:
1. with at least `min_pairs` pairs it rests on the preference: binomial p < alpha → the arm preferred more often is
   better, else no_difference (a paired comparison by one rater beats two unpaired means, so pairs come first);
2. else, with at least `min_ratings` ratings on each arm, on the ratings: a two-sided Mann-Whitney U test
   (`scipy.stats.mannwhitneyu(method="asymptotic")`, tie-corrected: star ratings are mostly ties, where the exact
   distribution doesn't apply) with p < alpha → the arm with the higher mean score is better, else no_difference;
3. else not_enough_data.

Per-job intervals (failure rate, cost per job, turnaround) need `min_jobs` jobs behind them. Thin or degenerate
data never raises and never yields NaN: a figure with nothing to compute it from is None.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Literal

from pydantic import BaseModel

from router.models.common import Money, money

MIN_RATINGS = 10  # per arm, for a verdict on ratings
MIN_PAIRS = 10  # for a verdict on preference
MIN_JOBS = 5  # per arm, for an interval on a per-job figure (failure rate, cost per job, turnaround)
CONFIDENCE = 0.95
PLACES = 4  # rates, scores and p-values as the API shows them
SECONDS_PLACES = 3
PREFERENCE_TEST = "scipy.stats.binomtest (exact, two-sided, against 1/2)"
RATINGS_TEST = "scipy.stats.mannwhitneyu (two-sided, asymptotic, tie-corrected)"

Outcome = Literal["a_better", "b_better", "no_difference", "not_enough_data"]


def method(confidence: float = CONFIDENCE, min_ratings: int = MIN_RATINGS, min_pairs: int = MIN_PAIRS,
           min_jobs: int = MIN_JOBS) -> list[str]:
    """Every test and interval the results use, in words (as the scorecard's METHOD)."""
    pct = f"{confidence:.0%}"
    return [
        "jobs count in the arm they were assigned to, whatever offer finally rendered them (intention to treat)",
        f"failure rate: ended jobs without a video over ended jobs (cancelled ones left out); {pct} exact "
        "Clopper-Pearson interval, scipy.stats.binomtest(...).proportion_ci(method='exact')",
        f"mean score: every rating of the arm's videos; {pct} Student t interval, scipy.stats.t.interval",
        "cost per video: every attempt's actual cost (failures too) over delivered videos, exact; the interval is "
        f"the {pct} t interval of the mean cost per ended job (scipy.stats.t.interval)",
        f"p50 turnaround: creation to delivery of each delivered job; {pct} distribution-free order-statistic "
        "interval of the median, ranks from scipy.stats.binom(n, 1/2)",
        f"per-job intervals from {min_jobs} jobs per arm",
        f"preference: pairs where a rating prefers one arm's job over the other's; arm a's share with a {pct} "
        "Wilson interval, proportion_ci(method='wilson'), and a two-sided exact binomial test against 1/2, "
        "scipy.stats.binomtest",
        f"verdict at alpha {1 - confidence:g}: on preference from {min_pairs} pairs (the binomial test), else on "
        f"ratings from {min_ratings} per arm (two-sided Mann-Whitney U, scipy.stats.mannwhitneyu, asymptotic with "
        "tie correction): the arm preferred more often / with the higher mean is better; else not_enough_data",
    ]


@dataclass(frozen=True)
class ArmSample:
    """What one arm's jobs did, as the experiment assigned them."""

    name: str  # "a" or "b"
    arm: str  # as defined: an offer id or a model family
    assigned: int  # jobs assigned to the arm, ended or not
    ended: int  # of which ended, cancelled ones left out
    failed: int  # of the ended, those without a video
    scores: Sequence[int]  # every rating (1-5) of the arm's delivered videos
    costs_usd: Sequence[Decimal]  # per ended job: all its attempts' actual cost
    delivered: int  # jobs that delivered a video
    turnarounds_s: Sequence[float]  # per delivered job: created to delivered


class Interval(BaseModel):
    low: float
    high: float


class ArmResults(BaseModel):
    name: str
    arm: str
    assigned: int
    ended: int
    delivered: int
    failed: int
    failure_rate: float | None
    failure_rate_interval: Interval | None
    ratings: int
    mean_score: float | None
    mean_score_interval: Interval | None
    cost_usd: Money  # every ended job's cost, together
    cost_per_video_usd: Money | None
    cost_per_job_interval: Interval | None  # USD: t interval of the mean cost per ended job
    turnaround_p50_s: float | None
    turnaround_p50_interval: Interval | None


class PreferenceResults(BaseModel):
    pairs: int
    a_won: int
    b_won: int
    share_a: float | None
    share_a_interval: Interval | None
    p_value: float | None


class Verdict(BaseModel):
    outcome: Outcome
    basis: Literal["preference", "ratings", "none"]
    test: str  # the scipy test it rests on; "" when none
    p_value: float | None
    detail: str


class ExperimentResults(BaseModel):
    confidence: float
    arms: list[ArmResults]
    preference: PreferenceResults
    verdict: Verdict
    method: list[str]


def _finite(value: float, places: int = PLACES) -> float | None:
    return round(float(value), places) if math.isfinite(value) else None


def _interval(bounds: tuple[float, float] | None, places: int = PLACES) -> Interval | None:
    if bounds is None or not all(math.isfinite(b) for b in bounds):
        return None
    return Interval(low=round(float(bounds[0]), places), high=round(float(bounds[1]), places))


def clopper_pearson(k: int, n: int, confidence: float = CONFIDENCE) -> tuple[float, float] | None:
    from scipy.stats import binomtest

    if n < 1:
        return None
    ci = binomtest(k, n).proportion_ci(confidence_level=confidence, method="exact")
    return float(ci.low), float(ci.high)


def wilson(k: int, n: int, confidence: float = CONFIDENCE) -> tuple[float, float] | None:
    from scipy.stats import binomtest

    if n < 1:
        return None
    ci = binomtest(k, n).proportion_ci(confidence_level=confidence, method="wilson")
    return float(ci.low), float(ci.high)


def binomial_p(k: int, n: int) -> float | None:
    """Two-sided exact binomial test of k in n against 1/2."""
    from scipy.stats import binomtest

    return float(binomtest(k, n, 0.5, alternative="two-sided").pvalue) if n >= 1 else None


def t_interval(values: Sequence[float], confidence: float = CONFIDENCE) -> tuple[float, float] | None:
    """The mean's Student t interval; None below two values, zero width when they are all equal (scipy would give
    NaN for a zero scale)."""
    from scipy.stats import t

    n = len(values)
    if n < 2:
        return None
    mean = math.fsum(values) / n
    sem = statistics.stdev(values) / math.sqrt(n)
    if sem == 0:
        return mean, mean
    low, high = t.interval(confidence, n - 1, loc=mean, scale=sem)
    return float(low), float(high)


def median_interval(values: Sequence[float], confidence: float = CONFIDENCE) -> tuple[float, float] | None:
    """The order statistics (x(j), x(n-j+1)), 1-based, with j the largest rank where P(Binomial(n, 1/2) <= j - 1)
    <= alpha / 2: the median lies between them with probability at least `confidence`, whatever the distribution.
    None when even (x(1), x(n)) falls short of it."""
    from scipy.stats import binom

    ordered = sorted(values)
    n = len(ordered)
    if n < 1:
        return None
    tail = (1 - confidence) / 2
    below = int(binom.ppf(tail, n, 0.5))  # the smallest count whose cdf reaches the tail
    if binom.cdf(below, n, 0.5) > tail:
        below -= 1  # j - 1: the largest count whose cdf stays within it
    if below < 0:
        return None
    return ordered[below], ordered[n - 1 - below]


def mann_whitney_p(first: Sequence[int], second: Sequence[int]) -> float:
    """Two-sided p of the Mann-Whitney U test; 1.0 when every score is the same (no ranking to test)."""
    from scipy.stats import mannwhitneyu

    if len(set(first) | set(second)) < 2:
        return 1.0
    return float(mannwhitneyu(first, second, alternative="two-sided", method="asymptotic").pvalue)


def arm_results(sample: ArmSample, confidence: float = CONFIDENCE, min_jobs: int = MIN_JOBS) -> ArmResults:
    spent = money(sum(sample.costs_usd, Decimal(0)))
    scores = [float(s) for s in sample.scores]
    costs = [float(c) for c in sample.costs_usd]
    turnarounds = [float(s) for s in sample.turnarounds_s]
    return ArmResults(
        name=sample.name, arm=sample.arm, assigned=sample.assigned, ended=sample.ended, delivered=sample.delivered,
        failed=sample.failed,
        failure_rate=_finite(sample.failed / sample.ended) if sample.ended else None,
        failure_rate_interval=_interval(clopper_pearson(sample.failed, sample.ended, confidence)
                                        if sample.ended >= min_jobs else None),
        ratings=len(scores),
        mean_score=_finite(statistics.fmean(scores)) if scores else None,
        mean_score_interval=_interval(t_interval(scores, confidence)),
        cost_usd=spent,
        cost_per_video_usd=money(spent / sample.delivered) if sample.delivered else None,
        cost_per_job_interval=_interval(t_interval(costs, confidence) if len(costs) >= min_jobs else None),
        turnaround_p50_s=_finite(statistics.median(turnarounds), SECONDS_PLACES) if turnarounds else None,
        turnaround_p50_interval=_interval(median_interval(turnarounds, confidence)
                                          if len(turnarounds) >= min_jobs else None, SECONDS_PLACES),
    )


def preference(a_won: int, b_won: int, confidence: float = CONFIDENCE) -> PreferenceResults:
    pairs = a_won + b_won
    p_value = binomial_p(a_won, pairs)
    return PreferenceResults(pairs=pairs, a_won=a_won, b_won=b_won,
                             share_a=_finite(a_won / pairs) if pairs else None,
                             share_a_interval=_interval(wilson(a_won, pairs, confidence)),
                             p_value=None if p_value is None else _finite(p_value, 6))


def _p(value: float) -> str:
    return "p < 0.000001" if value < 1e-6 else f"p = {value:.3g}"


def verdict(a: ArmSample, b: ArmSample, prefer: PreferenceResults, confidence: float = CONFIDENCE,
            min_ratings: int = MIN_RATINGS, min_pairs: int = MIN_PAIRS) -> Verdict:
    """Pairs first, then ratings, then not_enough_data (the module's docstring)."""
    alpha = 1 - confidence
    if prefer.pairs >= min_pairs and prefer.p_value is not None:
        if prefer.p_value < alpha and prefer.a_won != prefer.b_won:
            better = "a" if prefer.a_won > prefer.b_won else "b"
            return Verdict(outcome="a_better" if better == "a" else "b_better", basis="preference",
                           test=PREFERENCE_TEST, p_value=prefer.p_value,
                           detail=f"arm {better} preferred in {max(prefer.a_won, prefer.b_won)} of {prefer.pairs} "
                                  f"pairs ({_p(prefer.p_value)} < {alpha:g})")
        return Verdict(outcome="no_difference", basis="preference", test=PREFERENCE_TEST, p_value=prefer.p_value,
                       detail=f"arm a preferred in {prefer.a_won} of {prefer.pairs} pairs: no difference at "
                              f"{alpha:g} ({_p(prefer.p_value)})")
    if min(len(a.scores), len(b.scores)) >= min_ratings:
        p_value = round(mann_whitney_p(list(a.scores), list(b.scores)), 6)
        mean_a, mean_b = statistics.fmean(a.scores), statistics.fmean(b.scores)
        means = f"mean score {mean_a:.2f} (a, n={len(a.scores)}) vs {mean_b:.2f} (b, n={len(b.scores)})"
        if p_value < alpha and mean_a != mean_b:
            return Verdict(outcome="a_better" if mean_a > mean_b else "b_better", basis="ratings", test=RATINGS_TEST,
                           p_value=p_value, detail=f"{means}, {_p(p_value)} < {alpha:g}")
        return Verdict(outcome="no_difference", basis="ratings", test=RATINGS_TEST, p_value=p_value,
                       detail=f"{means}: no difference at {alpha:g} ({_p(p_value)})")
    return Verdict(outcome="not_enough_data", basis="none", test="", p_value=None,
                   detail=f"{prefer.pairs} pairs (a verdict needs {min_pairs}) and {len(a.scores)} / "
                          f"{len(b.scores)} ratings (it needs {min_ratings} on each arm)")


def results(a: ArmSample, b: ArmSample, a_preferred: int, b_preferred: int, *, confidence: float = CONFIDENCE,
            min_ratings: int = MIN_RATINGS, min_pairs: int = MIN_PAIRS, min_jobs: int = MIN_JOBS) -> ExperimentResults:
    prefer = preference(a_preferred, b_preferred, confidence)
    return ExperimentResults(
        confidence=confidence, arms=[arm_results(a, confidence, min_jobs), arm_results(b, confidence, min_jobs)],
        preference=prefer, verdict=verdict(a, b, prefer, confidence, min_ratings, min_pairs),
        method=method(confidence, min_ratings, min_pairs, min_jobs))
