"""An experiment's results from its arms' figures: per arm intervals, the preference share, and a verdict. Pure.

Per arm (router.policy.stats; each function there is scipy.stats' own, checked to 1e-9):
- failures: the share of ended jobs that ended without a video, with an exact Clopper-Pearson interval;
- ratings: the mean score with a Student t interval;
- cost: per video exact (every attempt's cost, failures too, over the delivered videos), and a t interval on the
  cost per ended job (what a request costs, whatever became of it);
- time: the p50 turnaround (created to delivered) with the distribution-free sign-test interval of a median.

The preference share is arm a's share of the pairs (a rating preferring one arm's job over the other's), with a
Wilson interval and a two-sided exact binomial test against one half.

The verdict: with at least `min_pairs` pairs it rests on the preference (the binomial test at 1 - confidence: the
arm preferred more often is better, else no difference); else, with at least `min_ratings` ratings on each arm, on
the ratings (two-sided Mann-Whitney U: the arm with the higher mean is better, else no difference); else there is
not enough data. Nothing here raises or returns NaN on thin data: a figure without enough behind it is None.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Literal

from pydantic import BaseModel

from router.models.common import Money, money
from router.policy import stats

MIN_RATINGS = 10  # per arm, for a verdict on ratings
MIN_PAIRS = 10  # for a verdict on preference
CONFIDENCE = 0.95
METHOD = [
    "results count a job in the arm it was assigned to, whatever offer finally rendered it (intention to treat)",
    "failure rate: ended jobs without a video over ended jobs (cancelled ones left out); exact Clopper-Pearson "
    "interval (scipy.stats.binomtest(...).proportion_ci(method='exact'))",
    "mean score: every rating of the arm's videos; Student t interval (scipy.stats.t.interval)",
    "cost per video: every attempt's actual cost over delivered videos, exact; the interval is the t interval of "
    "the cost per ended job",
    "turnaround: a delivered job's creation to its delivering attempt's end; p50 with the sign-test interval of "
    "the median (order statistics from Binomial(n, 1/2))",
    "preference: pairs where a rating prefers one arm's job over the other arm's; arm a's share with a Wilson "
    "interval (method='wilson') and a two-sided exact binomial test against 1/2 (scipy.stats.binomtest)",
    f"verdict: on preference from {MIN_PAIRS} pairs (binomial test), else on ratings from {MIN_RATINGS} per arm "
    "(two-sided Mann-Whitney U, scipy.stats.mannwhitneyu(method='asymptotic')), at 1 - confidence; else "
    "not_enough_data",
    "router/policy/stats.py computes each of these in the standard library; tests/unit/test_stats.py holds them "
    "equal to scipy.stats",
]


@dataclass(frozen=True)
class ArmSample:
    """What one arm's jobs did."""

    name: Literal["a", "b"]
    arm: str  # as defined: an offer id or a model family
    assigned: int
    ended: int  # ended other than cancelled
    failed: int  # of those, ended without a video
    delivered: int
    scores: Sequence[int] = field(default_factory=list)  # every rating of its videos
    costs_usd: Sequence[Decimal] = field(default_factory=list)  # per ended job: all its attempts' actual cost
    turnarounds_s: Sequence[float] = field(default_factory=list)  # per delivered job


class Interval(BaseModel):
    low: float
    high: float


class ArmResults(BaseModel):
    name: Literal["a", "b"]
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
    cost_per_job_interval: Interval | None  # USD, t interval of the cost per ended job
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
    outcome: Literal["a_better", "b_better", "no_difference", "not_enough_data"]
    basis: Literal["preference", "ratings", "none"]
    test: str | None
    p_value: float | None
    detail: str


class ExperimentResults(BaseModel):
    confidence: float
    arms: list[ArmResults]
    preference: PreferenceResults
    verdict: Verdict
    method: list[str] = METHOD


def _interval(bounds: tuple[float, float] | None, places: int = 4) -> Interval | None:
    return None if bounds is None else Interval(low=round(bounds[0], places), high=round(bounds[1], places))


def arm_results(sample: ArmSample, confidence: float = CONFIDENCE) -> ArmResults:
    spent = money(sum(sample.costs_usd, Decimal(0)))
    scores = list(sample.scores)
    turnarounds = list(sample.turnarounds_s)
    return ArmResults(
        name=sample.name, arm=sample.arm, assigned=sample.assigned, ended=sample.ended, delivered=sample.delivered,
        failed=sample.failed,
        failure_rate=round(sample.failed / sample.ended, 4) if sample.ended else None,
        failure_rate_interval=_interval(stats.clopper_pearson(sample.failed, sample.ended, confidence)
                                        if sample.ended else None),
        ratings=len(scores),
        mean_score=round(statistics.fmean(scores), 4) if scores else None,
        mean_score_interval=_interval(stats.t_interval(scores, confidence)),
        cost_usd=spent,
        cost_per_video_usd=money(spent / sample.delivered) if sample.delivered else None,
        cost_per_job_interval=_interval(stats.t_interval([float(c) for c in sample.costs_usd], confidence)),
        turnaround_p50_s=round(statistics.median(turnarounds), 3) if turnarounds else None,
        turnaround_p50_interval=_interval(stats.median_interval(turnarounds, confidence), 3),
    )


def preference(a_won: int, b_won: int, confidence: float = CONFIDENCE) -> PreferenceResults:
    pairs = a_won + b_won
    return PreferenceResults(
        pairs=pairs, a_won=a_won, b_won=b_won, share_a=round(a_won / pairs, 4) if pairs else None,
        share_a_interval=_interval(stats.wilson(a_won, pairs, confidence) if pairs else None),
        p_value=round(stats.binom_test(a_won, pairs), 6) if pairs else None)


def verdict(a: ArmSample, b: ArmSample, prefer: PreferenceResults, confidence: float = CONFIDENCE,
            min_ratings: int = MIN_RATINGS, min_pairs: int = MIN_PAIRS) -> Verdict:
    alpha = 1 - confidence
    if prefer.pairs >= min_pairs and prefer.p_value is not None:
        test = "exact two-sided binomial test of arm a's pairs against 1/2"
        if prefer.p_value < alpha:
            better = "a" if prefer.a_won > prefer.b_won else "b"
            return Verdict(outcome=f"{better}_better", basis="preference", test=test, p_value=prefer.p_value,
                           detail=f"arm {better} preferred in {max(prefer.a_won, prefer.b_won)} of {prefer.pairs} "
                                  f"pairs ({_p(prefer.p_value)} < {alpha:g})")
        return Verdict(outcome="no_difference", basis="preference", test=test, p_value=prefer.p_value,
                       detail=f"arm a preferred in {prefer.a_won} of {prefer.pairs} pairs: no difference at "
                              f"{alpha:g} ({_p(prefer.p_value)})")
    if min(len(a.scores), len(b.scores)) >= min_ratings:
        test = "two-sided Mann-Whitney U of the arms' ratings"
        _, p_value = stats.mann_whitney_u(list(a.scores), list(b.scores))
        p_value = round(p_value, 6)
        mean_a, mean_b = statistics.fmean(a.scores), statistics.fmean(b.scores)
        if p_value < alpha and mean_a != mean_b:
            better = "a" if mean_a > mean_b else "b"
            return Verdict(outcome=f"{better}_better", basis="ratings", test=test, p_value=p_value,
                           detail=f"mean score {mean_a:.2f} (a) vs {mean_b:.2f} (b), {_p(p_value)} < {alpha:g}")
        return Verdict(outcome="no_difference", basis="ratings", test=test, p_value=p_value,
                       detail=f"mean score {mean_a:.2f} (a) vs {mean_b:.2f} (b): no difference at {alpha:g} "
                              f"({_p(p_value)})")
    return Verdict(outcome="not_enough_data", basis="none", test=None, p_value=None,
                   detail=f"{prefer.pairs} pairs (a verdict needs {min_pairs}) and {len(a.scores)} / "
                          f"{len(b.scores)} ratings (it needs {min_ratings} on each arm)")


def _p(value: float) -> str:
    return "p < 0.000001" if value < 1e-6 else f"p = {value:.3g}"


def results(a: ArmSample, b: ArmSample, a_preferred: int, b_preferred: int, *, confidence: float = CONFIDENCE,
            min_ratings: int = MIN_RATINGS, min_pairs: int = MIN_PAIRS) -> ExperimentResults:
    prefer = preference(a_preferred, b_preferred, confidence)
    return ExperimentResults(confidence=confidence, arms=[arm_results(a, confidence), arm_results(b, confidence)],
                             preference=prefer, verdict=verdict(a, b, prefer, confidence, min_ratings, min_pairs))
