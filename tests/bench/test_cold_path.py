"""Figures for docs/architecture.md, "Numbers it is held to", run by `make bench` (never timed assertions in
`make test`).

    make bench   # prints the import overhead of each Lambda entry point over its own third-party deps
                 # and keeps it in bench/results.json (section `cold_path`)
"""

import statistics
import subprocess
import sys

import pytest

from tests.bench.conftest import Record

DEPS = "import boto3, botocore.config, pydantic, httpx, yaml, aws_lambda_powertools; " \
       "from aws_lambda_powertools.utilities.batch import BatchProcessor; " \
       "from aws_lambda_powertools.event_handler import APIGatewayHttpResolver"
PROBE = """
import time
t0 = time.perf_counter()
{deps}
t1 = time.perf_counter()
import {module}
t2 = time.perf_counter()
print(t1 - t0, t2 - t1)
"""


def _measure(module: str, runs: int = 7) -> tuple[float, float]:
    deps, own = [], []
    for _ in range(runs):
        out = subprocess.run([sys.executable, "-c", PROBE.format(deps=DEPS, module=module)],
                             capture_output=True, text=True, check=True)
        d, o = map(float, out.stdout.split())
        deps.append(d)
        own.append(o)
    return statistics.median(deps), statistics.median(own)


@pytest.mark.slow
@pytest.mark.parametrize("module", ["functions.worker.handler", "functions.api.handler"])
def test_entry_point_import_overhead(module: str, bench_record: Record) -> None:
    deps_s, own_s = _measure(module)
    print(f"\n{module}: third-party deps {deps_s * 1000:.0f} ms, own code on top {own_s * 1000:.0f} ms "
          f"(target <= 100 ms; ratio own/deps {own_s / deps_s:.2f})")
    bench_record("cold_path", module, {"third_party_ms": round(deps_s * 1000, 1), "own_ms": round(own_s * 1000, 1),
                                       "ratio_own_to_third_party": round(own_s / deps_s, 3), "target_own_ms": 100})
    assert own_s < 0.100, "over the §11 budget"
