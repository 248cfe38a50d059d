"""Print the pinned requirements of one Lambda package, taken from requirements.lock.

    python3 requirements.py ROOT... [--without ROOT...] [--override NAME==VERSION...]

A ROOT is a distribution name, or `hvr` for the project's own runtime dependencies ([project].dependencies in
pyproject.toml). The closure follows the lock's `# via` annotations, so versions come from the lock and no second
list of versions is kept by hand. `--without` drops what another package (a layer) already ships. `--override` is
for a pin the Lambda platform forces (see the Makefile beside this file); it must name a locked package.

Stdlib only: it runs wherever `sam build` runs, without the project's virtual environment.
"""

from __future__ import annotations

import argparse
import re
import sys
import tomllib
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def read_lock(path: Path) -> tuple[dict[str, str], dict[str, set[str]]]:
    """Pins and the dependency graph (parent -> children) from a `uv pip compile` output with annotations."""
    pins: dict[str, str] = {}
    children: dict[str, set[str]] = defaultdict(set)
    current = ""
    for line in path.read_text().splitlines():
        pin = re.match(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?==(\S+)", line)
        if pin:
            current = canonical(pin.group(1))
            pins[current] = pin.group(2)
            continue
        via = re.match(r"^\s+#\s+(?:via\s+)?([A-Za-z0-9][A-Za-z0-9._-]*)(?:\s|$)", line)
        if via and current and not line.strip().endswith("# via"):
            parent = canonical(via.group(1))
            if parent != "hvr":  # the project's own edges are ambiguous (extras); roots come from pyproject
                children[parent].add(current)
    return pins, children


def project_dependencies(pyproject: Path) -> list[str]:
    deps = tomllib.loads(pyproject.read_text())["project"]["dependencies"]
    return [canonical(re.split(r"[\s<>=!~;\[]", dep, maxsplit=1)[0]) for dep in deps]


def closure(roots: list[str], children: dict[str, set[str]], pyproject: Path) -> set[str]:
    todo = [dep for root in roots for dep in (project_dependencies(pyproject) if root == "hvr" else [canonical(root)])]
    seen: set[str] = set()
    while todo:
        name = todo.pop()
        if name not in seen:
            seen.add(name)
            todo.extend(children.get(name, ()))
    return seen


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("roots", nargs="+")
    parser.add_argument("--without", nargs="*", default=[])
    parser.add_argument("--override", nargs="*", default=[])
    parser.add_argument("--lock", type=Path, default=ROOT / "requirements.lock")
    parser.add_argument("--pyproject", type=Path, default=ROOT / "pyproject.toml")
    args = parser.parse_args(argv)
    pins, children = read_lock(args.lock)
    wanted = closure(args.roots, children, args.pyproject) - closure(args.without, children, args.pyproject)
    for override in args.override:
        name, version = override.split("==", 1)
        if canonical(name) not in pins:
            parser.error(f"--override {override}: {name} is not in {args.lock.name}")
        pins[canonical(name)] = version
    missing = sorted(wanted - pins.keys())
    if missing:
        parser.error(f"not in {args.lock.name}: {', '.join(missing)}")
    sys.stdout.write("".join(f"{name}=={pins[name]}\n" for name in sorted(wanted)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
