"""`hvr campaign` against the embedded stack: a name submitted again, every output downloaded and resumed, and a
campaign whose budget refused its items saying so with the figures."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hvr.cli import main
from hvr.local.embedded import EmbeddedStack
from tests.e2e.test_api import DRAFT


def manifest(path: Path, header: dict[str, object], items: int) -> Path:
    lines = [{"campaign": header}, *({**DRAFT, "prompt": f"a paper boat, take {n}"} for n in range(items))]
    path.write_text("\n".join(json.dumps(line) for line in lines))
    return path


def test_resubmitting_a_name_shows_the_existing_one_and_download_resumes(
        stack: EmbeddedStack, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    api = ["--api-url", stack.url, "--api-key", "acme-key"]
    path = manifest(tmp_path / "boats.jsonl", {"name": "cli-boats"}, 2)
    assert main(["campaign", "submit", str(path), "--wait", "--poll-interval", "0.05", *api]) == 0
    first = capsys.readouterr()
    cid = first.out.strip()
    assert "already exists" not in first.err

    assert main(["campaign", "submit", str(path), *api]) == 0
    again = capsys.readouterr()
    assert again.out.strip() == cid
    assert "a campaign named 'cli-boats' already exists" in again.err
    assert "--name cli-boats-2" in again.err and f"{cid} cli-boats" in again.err

    out = tmp_path / "clips"
    assert main(["campaign", "download", cid, "-o", str(out), *api]) == 0
    assert capsys.readouterr().out == f"{cid} cli-boats: 2 saved, 0 already complete in {out}\n"
    clips = sorted(out.iterdir())
    assert [clip.suffix for clip in clips] == [".mp4", ".mp4"]
    whole = clips[0].read_bytes()
    clips[0].write_bytes(whole[:10])  # an interrupted download: fetched again, the complete one kept
    assert main(["campaign", "download", "cli-boats", "-o", str(out), *api]) == 0  # by its name this time
    assert capsys.readouterr().out == f"{cid} cli-boats: 1 saved, 1 already complete in {out}\n"
    assert clips[0].read_bytes() == whole
    assert not list(out.glob("*.part"))
    # Another tenant's campaign of that name is not this one: its name names nothing here.
    assert main(["campaign", "download", "cli-boats", "-o", str(tmp_path / "theirs"), "--api-url", stack.url,
                 "--api-key", "beta-key"]) == 2
    assert not (tmp_path / "theirs").exists()


def test_a_campaign_its_budget_refused_says_so_with_the_figures(
        stack: EmbeddedStack, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    api = ["--api-url", stack.url, "--api-key", "acme-key"]
    path = manifest(tmp_path / "broke.jsonl", {"name": "cli-broke", "budget_usd": "0.0001"}, 1)
    assert main(["campaign", "submit", str(path), "--wait", "--poll-interval", "0.05", *api]) == 1
    err = capsys.readouterr().err.splitlines()
    assert "  refused for budget: 1 of 1 items; spent $0.0000 of budget $0.0001" in err
    assert any(line.startswith("    job_") and "budget campaign:" in line for line in err)
