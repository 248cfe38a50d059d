"""`hvr simulate`: run the routing benchmark and print the comparison.

    hvr simulate [--workload PATH | --videos N] [--seed N] [--policies NAME ...] [--budget USD]
                 [--out DIR] [--json PATH] [--chart [PATH]] [--save-workload PATH]
    hvr simulate --scenario FILE.yaml [--policies NAME ...] [--matched-bounds]
                 [--out DIR] [--json PATH] [--chart [PATH]]

Without `--workload` a month of `--videos` requests is generated from `--seed` (1,000 with seed 1 is exactly
`samples/workloads/month-1000.jsonl`). `--seed` also seeds the truth model (render times, failures). A scenario
file (`hvr.sim.scenario`, samples in `samples/scenarios/`) sets the workload, seed, truth, budget and local cost
basis instead, so it excludes those options. `--out DIR` writes `results.json`, `report.md` and, with `--chart`,
`chart.png`. Exit codes: 0 done, 1 the scenario, the workload or an output could not be read or written (a bad
scenario as `FILE:LINE: key: problem`), 2 the command line was wrong.
"""

from __future__ import annotations

import argparse
import json
import sys
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from hvr.sim.compare import Comparison
    from hvr.sim.workload import Arrival

# Importing this module costs argparse only, so `hvr` can register the command without loading the simulator.
SAMPLE_WORKLOAD = Path(__file__).resolve().parents[2] / "samples" / "workloads" / "month-1000.jsonl"
SAMPLE_SEED = 1
DEFAULT_VIDEOS = 1000
POLICY_NAMES = ("hvr", "always_veo", "local_only", "static_rule", "cheapest_feasible", "offline_optimum")
DESCRIPTION = "Compare routing policies on a simulated month: hvr, the baselines and the offline-optimal cost bound."


def _budget(text: str) -> Decimal:
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise argparse.ArgumentTypeError(f"not an amount in USD: {text!r}") from None
    if not value.is_finite() or value <= 0:
        raise argparse.ArgumentTypeError("must be an amount over 0")
    return value


def add_arguments(p: argparse.ArgumentParser) -> None:
    # Defaults are None so that `--scenario` can tell what was given; `run` fills in 1,000 videos and seed 1.
    p.add_argument("--scenario", type=Path, help="a scenario YAML: workload, seed, truth, budget, cost basis")
    source = p.add_mutually_exclusive_group()
    source.add_argument("--workload", type=Path, help="JSON Lines of {arrival, request} (default: generate one)")
    source.add_argument("--videos", type=int, help=f"videos in a generated month (default {DEFAULT_VIDEOS})")
    p.add_argument("--seed", type=int, help=f"seeds the truth model and a generated workload (default {SAMPLE_SEED})")
    p.add_argument("--policies", nargs="+", choices=POLICY_NAMES, default=list(POLICY_NAMES), metavar="NAME",
                   help=f"policies to compare (default all: {', '.join(POLICY_NAMES)})")
    p.add_argument("--budget", type=_budget, help="a global monthly budget in USD (default: none)")
    p.add_argument("--catalog", type=Path, help="offer catalog YAML (default: the built-in one)")
    p.add_argument("--out", type=Path, help="directory for results.json, report.md and chart.png")
    p.add_argument("--json", type=Path, help="write the results JSON here")
    p.add_argument("--chart", nargs="?", const="", default=None, metavar="PATH",
                   help="draw the chart (to PATH, or to --out's chart.png)")
    p.add_argument("--save-workload", type=Path, help="write the workload used as JSON Lines")
    p.add_argument("--time-limit", type=float, default=300.0, help="seconds per MILP solve (default 300)")
    p.add_argument("--matched-bounds", action="store_true",
                   help="with --scenario, also solve each policy's matched bound: one more MILP per policy, minutes "
                        "each when the GPU is fast and cheap (always solved without --scenario)")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="hvr simulate", description=DESCRIPTION)
    add_arguments(p)
    return p


def register(commands: Any) -> None:
    """Add `simulate` to `hvr`'s subcommands (the `add_subparsers()` object); it runs with `client=False`."""
    sub = commands.add_parser("simulate", help="compare routing policies on a simulated month", description=DESCRIPTION)
    add_arguments(sub)
    sub.set_defaults(run=run, client=False)


def main(argv: list[str] | None = None) -> int:
    return run(parser().parse_args(argv))


def run(args: argparse.Namespace) -> int:
    if args.chart == "" and args.out is None:
        return _fail("--chart needs a PATH, or --out DIR to write chart.png in", 2)
    given = [flag for flag, value in (("--workload", args.workload), ("--videos", args.videos),
                                      ("--seed", args.seed), ("--budget", args.budget)) if value is not None]
    if args.scenario is not None and given:
        return _fail(f"--scenario sets the workload, seed and budget itself; drop {', '.join(given)}", 2)
    if args.videos is not None and args.videos < 1:
        return _fail("--videos must be at least 1", 2)
    try:
        import scipy.optimize  # noqa: F401  (the offline bound's solver; optional: the `sim` extra)
    except ImportError:
        return _fail("needs scipy for the offline bound: install hvr with the `sim` extra", 1)
    from hvr.sim import workload
    from hvr.sim.compare import compare
    from hvr.sim.report import markdown
    from hvr.sim.scenario import load, simulate_scenario
    from hvr.sim.simulator import SimConfig
    from router.policy.catalog import CatalogError, load_catalog  # the simulator loads only when it runs

    seed = SAMPLE_SEED if args.seed is None else args.seed
    videos = DEFAULT_VIDEOS if args.videos is None else args.videos
    scenario = None
    try:
        offers = load_catalog(args.catalog).offers
        if args.scenario is not None:
            scenario = load(args.scenario, offers)
            arrivals, name = scenario.arrivals(), scenario.label()
        elif args.workload is not None:
            arrivals, name = workload.load(args.workload), str(args.workload)
        else:
            arrivals = workload.generate(videos, seed=seed)
            name = f"generated: {videos} videos, seed {seed}"
    except (OSError, ValueError, CatalogError) as exc:  # ScenarioError is a ValueError
        return _fail(str(exc), 1)
    if not arrivals:
        return _fail("the workload is empty", 1)
    if scenario is not None:
        result = simulate_scenario(scenario, offers, arrivals, args.policies, matched_bounds=args.matched_bounds,
                                   time_limit_s=args.time_limit)
    else:
        result = compare(arrivals, offers, seed=seed, policies=args.policies,
                         config=SimConfig(budget_usd=args.budget), workload=name, time_limit_s=args.time_limit)
    text = markdown(result)
    print(text, end="")
    try:
        _write(args, arrivals, result, text)
    except OSError as exc:
        return _fail(str(exc), 1)
    return 0


def _fail(message: str, code: int) -> int:
    print(f"hvr simulate: {message}", file=sys.stderr)
    return code


def _write(args: argparse.Namespace, arrivals: list[Arrival], result: Comparison, text: str) -> None:
    from hvr.sim import workload
    from hvr.sim.report import chart, to_json

    document = json.dumps(to_json(result), indent=2) + "\n"
    if args.save_workload is not None:
        workload.save(arrivals, args.save_workload)
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "results.json").write_text(document)
        (args.out / "report.md").write_text(text)
    if args.json is not None:
        args.json.write_text(document)
    if args.chart is not None:
        chart(result, args.chart or args.out / "chart.png")
