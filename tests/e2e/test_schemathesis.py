"""Our own OpenAPI document against the running API, as an outside prober runs it: schemathesis's CLI with every
check it has (`--checks all`) over every phase (examples, coverage, fuzzing, stateful).

No server error, no status or content type the document doesn't declare, no response off its schema, nothing the
schema forbids accepted, nothing it allows refused, 405 for undeclared methods, auth enforced. The one departure
from the built-in checks: positive_data_acceptance is replaced by positive_data_acceptance_stated
(schemathesis_hooks.py), which lets a schema-valid request get a 400 for a rule the operation lists under
`x-hvr-unstated-rules` (the clock, stored uploads, cursors), and for nothing else.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import KEYS

ADMIN_KEY = KEYS.split(",")[0].split(":")[1]
REPO = Path(__file__).resolve().parents[2]
SCHEMATHESIS = Path(sys.executable).parent / "schemathesis"


def run_schemathesis(url: str, max_examples: int, seed: int | None, workdir: Path) -> tuple[int, str]:
    command = [str(SCHEMATHESIS), "run", f"{url}/v1/openapi.json", "--checks", "all",
               "--exclude-checks", "positive_data_acceptance", "-H", f"Authorization: Bearer {ADMIN_KEY}",
               "--max-examples", str(max_examples), "--generation-database", "none",
               "--suppress-health-check", "all", "--no-color", "--request-timeout", "30"]
    if seed is not None:
        command += ["--seed", str(seed)]
    env = {**os.environ, "SCHEMATHESIS_HOOKS": "tests.e2e.schemathesis_hooks",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    # In a scratch directory: the CLI keeps its own state (.schemathesis/) where it runs.
    done = subprocess.run(command, cwd=workdir, env=env, capture_output=True, text=True, timeout=1800)
    return done.returncode, done.stdout + done.stderr


def check(stack, max_examples: int, seed: int | None, workdir: Path) -> None:
    code, output = run_schemathesis(stack.url, max_examples, seed, workdir)
    cases = re.search(r"(\d+) generated", output)
    print(f"\nschemathesis --checks all, {max_examples} examples per operation: "
          f"{cases[1] if cases else '?'} cases\n{output[-1500:]}")
    assert code == 0, output[-20000:]
    assert cases and int(cases[1]) > 0, output[-3000:]
    # Every documented operation, not just some: counted from the document, so a new route needs no edit here.
    paths = httpx.get(f"{stack.url}/v1/openapi.json").json()["paths"]
    assert f"Tested: {sum(len(operations) for operations in paths.values())}" in output, output[-3000:]


def test_openapi_holds_under_every_check(stack, tmp_path: Path) -> None:
    check(stack, max_examples=8, seed=1, workdir=tmp_path)


@pytest.mark.slow
def test_openapi_holds_under_every_check_full(stack, tmp_path: Path) -> None:
    check(stack, max_examples=250, seed=None, workdir=tmp_path)
