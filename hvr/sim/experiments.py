"""Synthetic paired experiments: do the production results (router.policy.experiment_stats) find what raters truly
think, and how many pairs does that take?

Each pair is one request rendered on both arms. A rater scores each video as `hvr.sim.ratings.rater_score` does
(1 + Binomial(4, p), whose mean is the arm's true mean rating) and prefers the higher-scored one, a tie going either
way on a seeded coin. So arm a's true preference share is exact: P(A > B) + P(A = B) / 2 over the two binomials.
A render fails with probability `failure_rate` (its request then has no pair and no rating); costs and turnarounds
are drawn too (seeded), so the whole results path runs.

    python -m hvr.sim.experiments [MEAN_A MEAN_B]    # coverage, verdicts and the pairs needed, for the note
"""

from __future__ import annotations

import random
import sys
from decimal import Decimal
from math import comb

from hvr.sim.ratings import STEPS, rater_score
from router.models.rating import MIN_SCORE
from router.policy.experiment_stats import ArmSample, ExperimentResults, Interval, Outcome, results

GRID = (10, 20, 30, 40, 60, 80, 100, 150, 200, 300, 400)  # pairs tried by sample_size_needed
POWER = 0.8
SEEDS = range(40)
MEAN_COST_USD = {"a": 0.20, "b": 0.30}  # drawn uniformly within ±50 % of it, per ended job
MEAN_TURNAROUND_S = {"a": 600.0, "b": 900.0}  # exponential, per delivered job


def score_distribution(mean: float) -> list[float]:
    """P(score = 1..5) for a rater whose mean is `mean`."""
    p = (mean - MIN_SCORE) / STEPS
    return [comb(STEPS, k) * p ** k * (1 - p) ** (STEPS - k) for k in range(STEPS + 1)]


def true_preference(mean_a: float, mean_b: float) -> float:
    """Arm a's share of the pairs in the long run: P(A > B) + P(A = B) / 2."""
    a, b = score_distribution(mean_a), score_distribution(mean_b)
    wins = sum(a[i] * b[j] for i in range(len(a)) for j in range(len(b)) if i > j)
    ties = sum(a[i] * b[i] for i in range(len(a)))
    return wins + ties / 2


def expected_outcome(mean_a: float, mean_b: float) -> Outcome:
    """The verdict a right experiment reaches: the arm raters prefer, or no_difference for equal means."""
    share = true_preference(mean_a, mean_b)
    return "no_difference" if abs(share - 0.5) < 1e-12 else "a_better" if share > 0.5 else "b_better"


def run(mean_a: float, mean_b: float, pairs: int, seed: int, failure_rate: float = 0.0) -> ExperimentResults:
    """`pairs` paired requests, each rendered once per arm, rated once per delivered video and compared when both
    delivered, through the production results."""
    rng = random.Random(f"experiment:{seed}:{mean_a}:{mean_b}")
    means = {"a": mean_a, "b": mean_b}
    scores: dict[str, list[int]] = {"a": [], "b": []}
    costs: dict[str, list[Decimal]] = {"a": [], "b": []}
    turnarounds: dict[str, list[float]] = {"a": [], "b": []}
    won = {"a": 0, "b": 0}
    for n in range(pairs):
        found: dict[str, int] = {}
        for arm in ("a", "b"):
            costs[arm].append(Decimal(f"{rng.uniform(0.5, 1.5) * MEAN_COST_USD[arm]:.4f}"))
            if rng.random() < failure_rate:
                continue
            turnarounds[arm].append(rng.expovariate(1 / MEAN_TURNAROUND_S[arm]))
            found[arm] = rater_score(seed, n, f"arm-{arm}", means[arm])
            scores[arm].append(found[arm])
        if len(found) == 2:
            a, b = found["a"], found["b"]
            won["a" if a > b or (a == b and rng.random() < 0.5) else "b"] += 1
    samples = [ArmSample(name=arm, arm=f"arm-{arm}", assigned=pairs, ended=pairs, failed=pairs - len(turnarounds[arm]),
                         scores=scores[arm], costs_usd=costs[arm], delivered=len(turnarounds[arm]),
                         turnarounds_s=turnarounds[arm])
               for arm in ("a", "b")]
    return results(samples[0], samples[1], won["a"], won["b"])


def _holds(interval: Interval | None, truth: float) -> bool:
    return interval is not None and interval.low <= truth <= interval.high


def coverage(mean_a: float, mean_b: float, pairs: int, seeds: range, failure_rate: float = 0.0) -> dict[str, float]:
    """Over the seeds: how often the preference interval, each arm's mean-score interval and (with failures) each
    arm's failure-rate interval held the truth, and how often the verdict was the true one."""
    truth = true_preference(mean_a, mean_b)
    held = {"preference": 0, "mean_a": 0, "mean_b": 0, "verdict": 0}
    if failure_rate:
        held |= {"failure_a": 0, "failure_b": 0}
    for seed in seeds:
        found = run(mean_a, mean_b, pairs, seed, failure_rate)
        held["preference"] += _holds(found.preference.share_a_interval, truth)
        for arm, mean in zip(found.arms, (mean_a, mean_b), strict=True):
            held[f"mean_{arm.name}"] += _holds(arm.mean_score_interval, mean)
            if failure_rate:
                held[f"failure_{arm.name}"] += _holds(arm.failure_rate_interval, failure_rate)
        held["verdict"] += found.verdict.outcome == expected_outcome(mean_a, mean_b)
    return {name: count / len(seeds) for name, count in held.items()}


def sample_size_needed(mean_a: float, mean_b: float, seeds: range = SEEDS, power: float = POWER) -> int | None:
    """The fewest pairs on GRID at which at least `power` of the seeded runs give the true verdict (for equal means:
    no_difference); None when even the largest doesn't."""
    want = expected_outcome(mean_a, mean_b)
    for pairs in GRID:
        right = sum(run(mean_a, mean_b, pairs, seed).verdict.outcome == want for seed in seeds)
        if right >= power * len(seeds):
            return pairs
    return None


pairs_needed = sample_size_needed  # the name tests/unit/test_experiment_results.py knows


def _between(interval: Interval | None, form: str) -> str:
    return "" if interval is None else f" ({form.format(interval.low)}-{form.format(interval.high)})"


def format_results(found: ExperimentResults) -> str:
    """Each arm's figures with their intervals, the preference share and the verdict, as a small table."""
    pct = f"{found.confidence:.0%}"
    rows = [("ARM", "ASSIGNED", "DELIVERED", f"FAILED ({pct})", f"MEAN SCORE ({pct})", "$/VIDEO",
             f"P50 TURNAROUND ({pct})")]
    for arm in found.arms:
        rows.append((
            f"{arm.name}: {arm.arm}", str(arm.assigned), str(arm.delivered),
            "-" if arm.failure_rate is None else
            f"{arm.failed} ({arm.failure_rate:.0%}){_between(arm.failure_rate_interval, '{:.0%}')}",
            "-" if arm.mean_score is None else
            f"{arm.mean_score:.2f}{_between(arm.mean_score_interval, '{:.2f}')} n={arm.ratings}",
            "-" if arm.cost_per_video_usd is None else f"${arm.cost_per_video_usd}",
            "-" if arm.turnaround_p50_s is None else
            f"{arm.turnaround_p50_s:.0f} s{_between(arm.turnaround_p50_interval, '{:.0f}')}"))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip() for row in rows]
    prefer = found.preference
    if prefer.share_a is not None:
        lines.append(f"preference: arm a won {prefer.a_won} of {prefer.pairs} pairs, {prefer.share_a:.0%}"
                     f"{_between(prefer.share_a_interval, '{:.0%}')}"
                     + ("" if prefer.p_value is None else f", binomial p = {prefer.p_value:.3g}"))
    else:
        lines.append("preference: no rated pairs yet")
    verdict = found.verdict
    lines.append(f"verdict: {verdict.outcome.replace('_', ' ')} ({verdict.basis}"
                 f"{', ' + verdict.test if verdict.test else ''}): {verdict.detail}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = [float(a) for a in (argv if argv is not None else sys.argv[1:])]
    cases = [(args[0], args[1])] if len(args) >= 2 else [(4.2, 3.4), (4.0, 3.7), (3.8, 3.8)]
    for mean_a, mean_b in cases:
        print(f"\narm a true mean {mean_a}, arm b {mean_b}: a's true preference share "
              f"{true_preference(mean_a, mean_b):.3f}, true verdict {expected_outcome(mean_a, mean_b)}")
        print(format_results(run(mean_a, mean_b, 100, seed=1, failure_rate=0.05)))
        held = coverage(mean_a, mean_b, 100, range(200), failure_rate=0.05)
        print("over 200 seeded runs of 100 pairs (5 % failures), the 95 % intervals held the truth: "
              + ", ".join(f"{name} {share:.1%}" for name, share in held.items() if name != "verdict")
              + f"; the verdict was the true one in {held['verdict']:.1%}")
        print(f"pairs needed for the true verdict in {POWER:.0%} of {len(SEEDS)} runs: "
              f"{sample_size_needed(mean_a, mean_b)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
