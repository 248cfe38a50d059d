"""What a test run must not leave behind: a sandbox's temp folder (named `hvr-<sandbox>-<pid>-…`, hvr/sandbox/base.py)
or a live child process (an agent, a moto server, an encoder). Checked once the whole session has finished, by the
hooks in tests/conftest.py, so a leak fails the run whichever test caused it."""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

PROC = Path("/proc")


def temp_dirs(pid: int | None = None) -> list[str]:
    """The sandbox folders this process made that are still in the temp folder."""
    marker = f"-{os.getpid() if pid is None else pid}-"
    return sorted(entry.name for entry in Path(tempfile.gettempdir()).glob("hvr-*") if marker in entry.name)


def _parent_and_state(pid: int) -> tuple[int, str] | None:
    try:
        stat = (PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    state, parent = stat.rsplit(")", 1)[1].split()[:2]
    return int(parent), state


def descendants(pid: int | None = None) -> dict[int, str]:
    """Live (not zombie) descendants of `pid` (this process), by pid → command line. Empty where /proc isn't."""
    root = os.getpid() if pid is None else pid
    if not PROC.is_dir():
        return {}
    parents: dict[int, tuple[int, str]] = {}
    for entry in PROC.iterdir():
        if entry.name.isdigit() and (found := _parent_and_state(int(entry.name))) is not None:
            parents[int(entry.name)] = found
    tree, frontier = set(), {root}
    while frontier:
        frontier = {child for child, (parent, _) in parents.items() if parent in frontier} - tree
        tree |= frontier
    alive = {}
    for child in tree:
        if parents[child][1] == "Z":
            continue
        try:
            alive[child] = (PROC / str(child) / "cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
        except OSError:
            continue
    return alive


def leaks(grace_s: float = 5.0) -> list[str]:
    """What is still here after `grace_s` (a stopped process may take a moment to exit): one line each."""
    deadline = time.monotonic() + grace_s
    while True:
        found = [f"temp folder {name}" for name in temp_dirs()] + [
            f"process {pid}: {command[:200]}" for pid, command in sorted(descendants().items())]
        if not found or time.monotonic() >= deadline:
            return found
        time.sleep(0.2)
