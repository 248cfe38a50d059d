"""`make demo` is one of the README's two commands: every sample ends as samples/requests/expected.yaml says and the
sample campaign completes. It had broken unseen once (exploration, on by default, sent three samples to the untried
GPU), so it runs here as `make demo` runs it."""

import re
from decimal import Decimal
from pathlib import Path

import pytest

from hvr import demo

REPO = Path(__file__).resolve().parents[2]


def test_make_demo_runs_every_sample_as_expected(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)
    monkeypatch.delenv("HVR_EXPLORATION_SHARE", raising=False)  # as a newcomer's shell has it (tests set it to 0)
    code = demo.main(["--out", str(tmp_path / "demo-out")])
    out = capsys.readouterr().out
    assert code == 0, out[-3000:]
    counted = re.search(r"^(\d+)/(\d+) samples as expected", out, re.MULTILINE)
    samples = len(list((REPO / "samples" / "requests").glob("*.json")))
    assert counted is not None and counted[1] == counted[2] == str(samples)
    assert "campaign black-friday.jsonl:" in out
    # The scorecard of the demo's window, its ratings the demo's own and said to be.
    assert re.search(r"^scorecard \S+ to \S+, every tenant|^scorecard \S+ to \S+, tenant", out, re.MULTILINE)
    assert "seeded by the demo" in out and "satisfaction" in out
    assert len(list((tmp_path / "demo-out").glob("*.mp4"))) >= 7
    # Every delivered sample is billed within 0.5-2x its estimate: billing units and estimates in the same time.
    delivered = re.findall(r"^\S+\s+succeeded\s+(\S+)\s+\$(\S+)\s+\$(\S+)", out, re.MULTILINE)
    assert len(delivered) >= 7
    for offer, est, actual in delivered:
        assert Decimal("0.5") <= Decimal(actual) / Decimal(est) <= 2, (offer, est, actual)
