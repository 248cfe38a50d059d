"""The cost outcome of ARCHITECTURE §11 on the sample month (`samples/workloads/month-1000.jsonl`, seed 1) and on
two generated months (seeds 2 and 3): `make bench` prints the figures.

Asserted here: what holds on every one of the three months — no quality-floor violation or capability miss by hvr,
hvr at most 1.10x the offline optimum (and its matched bound), the bounds below the costs, the MILP solved to
optimality in minutes, hvr meeting at least the static rule's deadline rate. Printed but not asserted, because they
do not hold on these months: hvr's deadline rate (target 99 %) and its total cost against the static rule (target
at most half). See the issue-9 report for why.
"""

import time

import pytest

from router.policy.catalog import load_catalog
from router.sim import workload
from router.sim.cli import SAMPLE_SEED, SAMPLE_WORKLOAD
from router.sim.compare import OPTIMUM, STATIC, compare
from router.sim.report import markdown

MONTHS = [("month-1000", SAMPLE_SEED), ("generated", 2), ("generated", 3)]


@pytest.mark.slow
@pytest.mark.parametrize(("name", "seed"), MONTHS)
def test_cost_outcome_on_a_month(name: str, seed: int) -> None:
    offers = load_catalog().offers
    arrivals = workload.load(SAMPLE_WORKLOAD) if name == "month-1000" else workload.generate(1000, seed=seed)
    started = time.perf_counter()
    result = compare(arrivals, offers, seed=seed, workload=f"{name} (seed {seed})")
    elapsed = time.perf_counter() - started
    print()
    print(markdown(result))
    hvr, static, best = result.metrics["hvr"], result.metrics[STATIC], result.metrics[OPTIMUM]
    assert hvr.deadline_hit_rate is not None and hvr.cost_ratio_to_optimum is not None
    assert hvr.matched_bound_usd is not None and result.optimum is not None
    print(f"§11 {name} seed {seed}: hvr deadline rate {hvr.deadline_hit_rate:.4f} (target >= 0.99; optimum "
          f"{best.deadline_hit_rate:.4f}), cost/optimum {hvr.cost_ratio_to_optimum:.3f} (target <= 1.10), "
          f"cost/matched bound {hvr.total_cost_usd / hvr.matched_bound_usd:.3f}, cost/static rule "
          f"{hvr.cost_ratio_to_static_rule:.3f} total, {hvr.like_for_like_vs_static_rule:.3f} on the same videos "
          f"(target <= 0.50 at a deadline rate >= the static rule's {static.deadline_hit_rate:.4f}); "
          f"MILP {result.optimum.binaries} binaries / {result.optimum.variables} variables, run {elapsed:.1f} s")

    assert hvr.quality_violations == 0 and hvr.capability_misses == 0
    assert hvr.cost_ratio_to_optimum <= 1.10
    assert hvr.matched_bound_usd <= hvr.total_cost_usd <= hvr.matched_bound_usd * 110 / 100
    assert result.optimum.optimal and result.optimum.bound <= result.optimum.cost
    for policy in result.metrics.values():
        if policy.name != OPTIMUM:
            assert policy.matched_bound_usd is not None and policy.matched_bound_usd <= policy.total_cost_usd
    assert hvr.deadline_hit_rate >= (static.deadline_hit_rate or 0.0)
