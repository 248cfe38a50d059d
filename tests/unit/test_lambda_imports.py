"""docs/architecture.md, "Numbers it is held to": Lambda entry points stay import-light (heavy SDKs only where used)."""

import json
import subprocess
import sys

import pytest

HEAVY = ["google.genai", "runpod", "replicate", "av", "scipy", "fastapi", "moto"]


ENTRY_POINTS = ["functions.worker.handler", "functions.api.handler", "functions.authorizer.handler",
                "functions.webhooks.handler", "functions.sweeper.handler", "functions.campaigns.handler",
                "functions.budget_alerts.handler"]


@pytest.mark.parametrize("module", ENTRY_POINTS)
def test_entry_point_leaves_heavy_sdks_unimported(module: str) -> None:
    code = f"import sys, json, {module}; print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={"PATH": "/usr/bin:/bin"})
    assert json.loads(out.stdout) == []
