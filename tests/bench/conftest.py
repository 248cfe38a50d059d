"""`make bench` keeps its figures in `bench/results.json` as well as printing them: one section per benchmark,
merged into what an earlier run left, so running one benchmark alone refreshes only its own section."""

from __future__ import annotations

import json
import os
import platform
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

RESULTS = Path(__file__).resolve().parents[2] / "bench" / "results.json"

Record = Callable[[str, str, Any], None]


@pytest.fixture(scope="session")
def bench_record() -> Iterator[Record]:
    """`bench_record(section, key, figures)`: figures (JSON-able) for `key` within `section`."""
    sections: dict[str, dict[str, Any]] = {}

    def record(section: str, key: str, figures: Any) -> None:
        sections.setdefault(section, {})[key] = figures

    yield record
    if not sections:
        return
    document: dict[str, Any] = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    now = datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    for section, entries in sections.items():
        document.setdefault(section, {}).update(entries)
        document[section]["measured_at"] = now
    document["machine"] = {"python": platform.python_version(), "platform": platform.platform(),
                           "cpus": os.cpu_count()}
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(document, indent=2, sort_keys=True, default=str) + "\n")
