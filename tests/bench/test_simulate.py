"""The cost outcome of docs/architecture.md, "Numbers it is held to", on the sample month
(`samples/workloads/month-1000.jsonl`, seed 1) and on two generated months (seeds 2 and 3). `make bench` prints the
figures, keeps them in `bench/results.json` (section `simulate`, issue 9's JSON per month) and draws the sample
month's chart to `bench/simulate-month-1000.png`.

The cost targets are the no-regression row of issue 14's table, so they are checked where that row was measured: the
GPU charged energy plus depreciation (`full`, as `samples/scenarios/table-1-catalog-full.yaml`). The deployed default
(`marginal`, energy only) is run beside it and recorded (`marginal_basis`), not asserted: there the GPU is cheap
enough that GPU-only 512x512 drafts of 40 min-3 h each compete for it, and even the offline optimum misses deadlines
(docs/decisions.md); its deadline rate is printed beside hvr's.

Then every scenario in `samples/scenarios/`, with its own seed and with seeds 2 and 3 (section `scenarios`, the
JSON of `hvr simulate --scenario` plus `verdicts`: holds or MISSED per target of issue 14). Those targets are
recorded, not asserted: they measure the learning and exploration work in progress, and a miss is a finding for
it, not a broken build. What is asserted there is the benchmark's own arithmetic — and, on a fleet of GPU boxes
(`fleet-5090-4090-3090.yaml`, issue 18), that hvr places no job on a box whose card can't hold it: the engine's
memory check, not a figure to tune. The fleet's line prints each box's utilization, hvr's and the optimum's.

Asserted, on each of the three months: hvr meets ≥ 99 % of deadlines with no quality-floor violation or capability
miss, costs ≤ 1.10x the offline optimum, and ≤ half the static rule per video delivered at
an equal or better deadline rate; every bound is below the cost it bounds; the MILP is solved to optimality. The
static-rule ratios on the same videos and in total are printed, with the optimum's beside them (docs/decisions.md).
"""

import time
from decimal import Decimal
from typing import Any

import pytest

from hvr.sim import optimal, workload
from hvr.sim.cli import SAMPLE_SEED, SAMPLE_WORKLOAD
from hvr.sim.compare import OPTIMUM, STATIC, compare
from hvr.sim.report import chart, markdown, to_json
from hvr.sim.scenario import REPO_ROOT, simulate_scenario
from hvr.sim.scenario import load as load_scenario
from hvr.sim.simulator import infeasible_flags
from hvr.sim.truth import Truth, TruthConfig
from router.models.offer import LocalCostBasis, with_local_cost_basis
from router.policy.catalog import load_catalog
from tests.bench.conftest import RESULTS, Record

CHART = RESULTS.parent / "simulate-month-1000.png"
MONTHS = [("month-1000", SAMPLE_SEED), ("generated", 2), ("generated", 3)]
SCENARIOS = sorted((REPO_ROOT / "samples" / "scenarios").glob("*.yaml"))
EXTRA_SEEDS = (2, 3)


@pytest.mark.slow
@pytest.mark.parametrize(("name", "seed"), MONTHS)
def test_cost_outcome_on_a_month(name: str, seed: int, bench_record: Record) -> None:
    offers = with_local_cost_basis(load_catalog().offers, LocalCostBasis.FULL)
    arrivals = workload.load(SAMPLE_WORKLOAD) if name == "month-1000" else workload.generate(1000, seed=seed)
    started = time.perf_counter()
    result = compare(arrivals, offers, seed=seed, workload=f"{name}, full local cost basis")
    elapsed = time.perf_counter() - started
    marginal = compare(arrivals, with_local_cost_basis(offers, LocalCostBasis.MARGINAL), seed=seed,
                       workload=f"{name}, marginal local cost basis", matched_bounds=False)
    problem_started = time.perf_counter()
    solution = optimal.Problem.of(arrivals, offers, Truth(TruthConfig(seed=seed)),
                                  infeasible_flags(arrivals, offers)).solve()
    solve_s = time.perf_counter() - problem_started
    print()
    print(markdown(result))
    hvr, static, best = result.metrics["hvr"], result.metrics[STATIC], result.metrics[OPTIMUM]
    assert hvr.deadline_hit_rate is not None and hvr.cost_ratio_to_optimum is not None
    assert hvr.matched_bound_usd is not None and result.optimum is not None
    assert hvr.per_video_vs_static_rule is not None and hvr.like_for_like_vs_static_rule is not None
    print(f"§11 {name} seed {seed}: hvr deadline rate {hvr.deadline_hit_rate:.4f} (target >= 0.99), "
          f"cost/optimum {hvr.cost_ratio_to_optimum:.3f} (target <= 1.10), "
          f"cost/matched bound {hvr.total_cost_usd / hvr.matched_bound_usd:.3f}, cost/static rule per video "
          f"{hvr.per_video_vs_static_rule:.3f} (target <= 0.50 at a deadline rate >= the static rule's "
          f"{static.deadline_hit_rate:.4f}), on the same videos {hvr.like_for_like_vs_static_rule:.3f} (optimum "
          f"{best.like_for_like_vs_static_rule:.3f}), total {hvr.cost_ratio_to_static_rule:.3f} (optimum "
          f"{best.cost_ratio_to_static_rule:.3f}); MILP {solution.binaries} binaries / {solution.variables} "
          f"variables / {solution.constraints} constraints solved in {solve_s:.1f} s; whole run {elapsed:.1f} s")
    on_margin, margin_best = marginal.metrics["hvr"], marginal.metrics[OPTIMUM]
    print(f"§11 {name} seed {seed}, marginal basis (recorded, not asserted): hvr deadline rate "
          f"{on_margin.deadline_hit_rate:.4f} (optimum {margin_best.deadline_hit_rate:.4f}), cost/optimum "
          f"{on_margin.cost_ratio_to_optimum:.3f}, ${on_margin.total_cost_usd} / ${margin_best.total_cost_usd}, "
          f"quality violations {on_margin.quality_violations}")
    figures = to_json(result)
    figures["local_cost_basis"] = "full"
    figures["marginal_basis"] = to_json(marginal)
    figures["timing"] = {"run_s": round(elapsed, 2), "optimum_solve_s": round(solve_s, 2)}
    bench_record("simulate", f"{name} (seed {seed})", figures)
    if name == "month-1000":
        CHART.parent.mkdir(parents=True, exist_ok=True)
        chart(result, CHART)

    assert hvr.deadline_hit_rate >= 0.99
    assert hvr.quality_violations == 0 and hvr.capability_misses == 0
    assert hvr.cost_ratio_to_optimum <= 1.10
    assert hvr.matched_bound_usd <= hvr.total_cost_usd
    assert hvr.per_video_vs_static_rule <= 0.50
    assert hvr.deadline_hit_rate >= (static.deadline_hit_rate or 0.0)
    assert result.optimum.optimal and result.optimum.bound <= result.optimum.cost
    assert solution.cost == result.optimum.cost
    for policy in result.metrics.values():
        if policy.name != OPTIMUM:
            assert policy.matched_bound_usd is not None and policy.matched_bound_usd <= policy.total_cost_usd


def _verdict(key: str, check: dict[str, Any]) -> str:
    verdict = {True: "holds", False: "MISSED", None: "not measured"}[check["holds"]]
    reach = check.get("optimum")
    if key == "deadline_hit_rate" and check["holds"] is False and reach is not None and reach < check["target"]:
        verdict += f" (the optimum reaches {reach:.4f})"
    return verdict


def _scenario_runs() -> list[tuple[str, int | None]]:
    runs: list[tuple[str, int | None]] = []
    for path in SCENARIOS:
        own = load_scenario(path, load_catalog().offers).seed
        runs += [(path.name, None), *((path.name, seed) for seed in EXTRA_SEEDS if seed != own)]
    return runs


@pytest.mark.slow
@pytest.mark.parametrize(("name", "seed"), _scenario_runs())
def test_scenario(name: str, seed: int | None, bench_record: Record) -> None:
    catalog = load_catalog().offers
    scenario = load_scenario(REPO_ROOT / "samples" / "scenarios" / name, catalog)
    if seed is not None:
        scenario = scenario.with_seed(seed)
    started = time.perf_counter()
    result = simulate_scenario(scenario, catalog)
    elapsed = time.perf_counter() - started
    print()
    print(markdown(result))
    figures = to_json(result)
    figures["timing"] = {"run_s": round(elapsed, 2)}
    figures["verdicts"] = {key: _verdict(key, check) for key, check in figures["targets"].items()
                           if not key.startswith("cost_ratio_to_static")}
    bench_record("scenarios", f"{scenario.name} (seed {scenario.seed})", figures)
    hvr, cheapest, best = (figures["policies"][p] for p in ("hvr", "cheapest_feasible", OPTIMUM))
    m = result.metrics["hvr"]
    print(f"issue 14 {scenario.name} seed {scenario.seed}: hvr ${hvr['total_cost_usd']}, cheapest_feasible "
          f"${cheapest['total_cost_usd']}, optimum ${best['total_cost_usd']}, GPU busy "
          f"{100 * hvr['gpu_utilization']:.1f} % / {100 * best['gpu_utilization']:.1f} %; "
          + ", ".join(f"{key} {verdict}" for key, verdict in figures["verdicts"].items())
          + f"; paid where the optimum assumes nothing (cold starts, undelivering attempts) ${m.bound_omits_usd} "
          f"(second half ${m.second_half_bound_omits_usd}); {elapsed:.0f} s")
    if result.boxes:
        print(f"issue 18 {scenario.name} seed {scenario.seed}: hvr deadline rate {m.deadline_hit_rate:.4f} (target "
              f">= 0.99), quality violations {m.quality_violations}, VRAM violations {m.vram_violations}, "
              f"${m.total_cost_usd - m.infeasible_cost_usd} (less ${m.infeasible_cost_usd} on infeasible requests) / "
              f"optimum ${best['total_cost_usd']} = {m.cost_ratio_to_optimum:.4f}x (target "
              f"<= {scenario.targets.optimum_ratio}); GPU busy by box, hvr / optimum: "
              + ", ".join(f"{box.name} {100 * m.gpu_utilization_by_box[box.name]:.1f} % / "
                          f"{100 * result.metrics[OPTIMUM].gpu_utilization_by_box[box.name]:.1f} %"
                          for box in result.boxes))
    if seed is None and scenario.name == "fast-gpu":
        chart(result, RESULTS.parent / "simulate-fast-gpu.png")

    assert result.optimum is not None and result.optimum.optimal
    assert m.vram_violations == 0  # the engine never places a job on a card that can't hold it
    for policy in result.metrics.values():
        # The weeks compare the requests the optimum may serve too; spend on the others is in the total only.
        weekly = sum((w.cost_usd for w in policy.weekly), Decimal(0))
        assert weekly + policy.infeasible_cost_usd == policy.total_cost_usd
        assert sum((w.optimum_cost_usd for w in policy.weekly), Decimal(0)) == result.optimum.cost
        if policy.name != OPTIMUM:
            assert policy.on_time <= result.metrics[OPTIMUM].on_time  # nobody meets more deadlines than hindsight
