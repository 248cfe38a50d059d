"""Synthetic paired experiments: do the production results (router.policy.experiment_results) find what raters
truly think, and how many pairs does that take?

Each pair is one request rendered on both arms. A rater scores each video as `hvr.sim.truth.rater_score` does
(1 + Binomial(4, p), whose mean is the arm's true mean rating) and prefers the higher-scored one, a tie going either
way on a seeded coin. So arm a's true preference share is exact: P(A > B) + P(A = B) / 2 over the two binomials.
Costs and turnarounds are drawn too (seeded), so the whole results path runs.

    python -m hvr.sim.experiments [MEAN_A MEAN_B]    # coverage, verdicts and the pairs needed, for the note
"""

from __future__ import annotations

import random
import sys
from decimal import Decimal
from math import comb

from hvr.sim.truth import RATING_STEPS as STEPS
from hvr.sim.truth import rater_score
from router.models.rating import MIN_SCORE
from router.policy.experiment_results import ArmSample, ExperimentResults, results

GRID = (10, 20, 30, 40, 60, 80, 100, 150, 200, 300, 400)
POWER = 0.8


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


def run(mean_a: float, mean_b: float, pairs: int, seed: int) -> ExperimentResults:
    """`pairs` paired requests, each rated once per arm and compared once, through the production results."""
    rng = random.Random(f"experiment:{seed}:{mean_a}:{mean_b}")
    scores: dict[str, list[int]] = {"a": [], "b": []}
    won = {"a": 0, "b": 0}
    for n in range(pairs):
        a = rater_score(seed, n, "arm-a", mean_a)
        b = rater_score(seed, n, "arm-b", mean_b)
        scores["a"].append(a)
        scores["b"].append(b)
        won["a" if a > b or (a == b and rng.random() < 0.5) else "b"] += 1
    samples = [ArmSample(name=name, arm=f"arm-{name}", assigned=pairs, ended=pairs, failed=0, delivered=pairs,
                         scores=scores[name],
                         costs_usd=[Decimal(f"{rng.uniform(0.05, 0.5):.4f}") for _ in range(pairs)],
                         turnarounds_s=[rng.expovariate(1 / 600) for _ in range(pairs)])
               for name in ("a", "b")]
    return results(samples[0], samples[1], won["a"], won["b"])


def expected_outcome(mean_a: float, mean_b: float) -> str:
    share = true_preference(mean_a, mean_b)
    return "no_difference" if abs(share - 0.5) < 1e-12 else "a_better" if share > 0.5 else "b_better"


def coverage(mean_a: float, mean_b: float, pairs: int, seeds: range) -> dict[str, float]:
    """Over the seeds: how often the preference interval and each arm's mean-score interval held the truth, and
    how often the verdict was the true one."""
    truth = true_preference(mean_a, mean_b)
    held = {"preference": 0, "mean_a": 0, "mean_b": 0, "verdict": 0}
    for seed in seeds:
        found = run(mean_a, mean_b, pairs, seed)
        interval = found.preference.share_a_interval
        held["preference"] += interval is not None and interval.low <= truth <= interval.high
        for arm, mean in zip(found.arms, (mean_a, mean_b), strict=True):
            bounds = arm.mean_score_interval
            held[f"mean_{arm.name}"] += bounds is not None and bounds.low <= mean <= bounds.high
        held["verdict"] += found.verdict.outcome == expected_outcome(mean_a, mean_b)
    return {name: count / len(seeds) for name, count in held.items()}


def pairs_needed(mean_a: float, mean_b: float, seeds: range = range(40), power: float = POWER) -> int | None:
    """The fewest pairs on GRID at which at least `power` of the seeded runs give the true verdict (for equal
    means: no_difference); None when even the largest doesn't."""
    want = expected_outcome(mean_a, mean_b)
    for pairs in GRID:
        right = sum(run(mean_a, mean_b, pairs, seed).verdict.outcome == want for seed in seeds)
        if right >= power * len(seeds):
            return pairs
    return None


def main(argv: list[str] | None = None) -> int:
    args = [float(a) for a in (argv if argv is not None else sys.argv[1:])]
    cases = [tuple(args[:2])] if len(args) >= 2 else [(4.2, 3.4), (4.0, 3.7), (3.8, 3.8)]
    from hvr.experiments_text import format_results

    for mean_a, mean_b in cases:
        print(f"\narm a true mean {mean_a}, arm b {mean_b}: a's true preference share "
              f"{true_preference(mean_a, mean_b):.3f}, true verdict {expected_outcome(mean_a, mean_b)}")
        print(format_results(run(mean_a, mean_b, 100, seed=1)))
        held = coverage(mean_a, mean_b, 100, range(200))
        print("over 200 seeded runs of 100 pairs, the 95 % intervals held the truth: "
              + ", ".join(f"{name} {share:.1%}" for name, share in held.items() if name != "verdict")
              + f"; the verdict was the true one in {held['verdict']:.1%}")
        print(f"pairs needed for the true verdict in {POWER:.0%} of runs: {pairs_needed(mean_a, mean_b)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
