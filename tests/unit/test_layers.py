"""Imports point inward: models ← policy ← {store, providers, workflows, media} ← services ← functions, and nothing
the Lambdas run imports the dev tools (`hvr`) or the GPU agent. Every import is counted, the lazy ones inside
functions too: a lazy import still has to resolve in the layer."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
RUNTIME = ROOT / "router"
# Import no router code but the error tree, which imports none and which every part may import (it raises its classes).
FOUNDATION = {"router.hosts", "router.signing", "router.backoff", "router.observability", "router.errors"}
ERRORS = "router.errors"

# What each part of the runtime may import besides itself. A new arrow here is a design change: say why in
# docs/architecture.md.
ALLOWED: dict[str, set[str]] = {
    "router": set(),  # the package's own __init__
    **{module: set() for module in FOUNDATION},
    "router.models": {"router.hosts"},
    "router.settings": {"router.models"},
    "router.policy": {"router.models"},
    "router.store": {"router.models", "router.policy", "router.backoff"},
    # The Uni3C graph carries the camera render's plan (router.media.camera_render) for the agent to render from.
    "router.workflows": {"router.models", "router.media"},
    "router.media": {"router.models"},
    # A provider sends a workflow graph (RunPod's ComfyUI worker) and signs what it sends to the agent.
    "router.providers": {"router.models", "router.workflows", "router.settings", "router.signing", "router.hosts"},
    "router.services": {"router.models", "router.settings", "router.policy", "router.store", "router.workflows",
                        "router.media", "router.providers", *FOUNDATION},
    "functions": {"router"},  # anything in the runtime
}
for _allowed in ALLOWED.values():
    _allowed.add(ERRORS)
OUTSIDE_THE_RUNTIME = ("hvr", "agent", "tests")


def part_of(module: str) -> str:
    """The layer a dotted module name belongs to: `router.<package>`, a root module of `router`, or a top package."""
    parts = module.split(".")
    if parts[0] != "router" or len(parts) == 1:
        return parts[0]
    return f"router.{parts[1]}" if (RUNTIME / parts[1]).is_dir() else ".".join(parts[:2])


def imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


SOURCES = sorted([*RUNTIME.rglob("*.py"), *(ROOT / "functions").rglob("*.py")])


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(ROOT)))
def test_imports_point_inward(path: Path) -> None:
    here = part_of(module_name(path))
    allowed = ALLOWED[here]
    wrong = []
    for imported in imports(path):
        top = imported.split(".")[0]
        if top in OUTSIDE_THE_RUNTIME or (top == "router" and part_of(imported) != here and not (
                "router" in allowed or part_of(imported) in allowed)):
            wrong.append(imported)
    assert wrong == [], f"{here} may import only {sorted(allowed)}"


def test_every_part_of_the_runtime_has_its_place() -> None:
    parts = {part_of(module_name(path)) for path in SOURCES}
    assert parts <= set(ALLOWED), parts - set(ALLOWED)


def test_the_dev_tools_are_not_part_of_the_runtime() -> None:
    assert not any((RUNTIME / name).exists() for name in ("sandbox", "local", "sim", "tools", "cli.py", "demo.py"))
