"""`hvr-agent models check`: which families the files under ComfyUI's model folders can serve (agent.models_check).

Exit 0 when every family checked is complete, 1 when one is not, 2 when the command can't run (bad models file,
no ComfyUI root). The families checked are the models file's (a box's models file lists what it serves), or those
named with --family.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from agent.config import COMFYUI_ROOT_ENV, MODELS_FILE_ENV
from agent.models_check import check, known_facts, lock_path, read_lock, table, write_lock
from router.workflows.models import DEFAULT_MODELS_FILE, LOCK_FILE_NAME, ModelFiles, ModelFilesError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hvr-agent models", description="The model files this box holds.")
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("check", help="present, missing or wrong files per family; exit 1 unless complete")
    run.add_argument("--models", type=Path, default=Path(os.environ.get(MODELS_FILE_ENV) or DEFAULT_MODELS_FILE),
                     help=f"the models file (default ${MODELS_FILE_ENV}, else the router's models.yaml)")
    run.add_argument("--comfyui-root", type=Path, default=os.environ.get(COMFYUI_ROOT_ENV) or None,
                     help=f"ComfyUI's folder, the one holding models/ (default ${COMFYUI_ROOT_ENV})")
    run.add_argument("--family", action="append", dest="families", metavar="MODEL",
                     help="check only this family (repeatable); default every family in the models file")
    run.add_argument("--record", action="store_true",
                     help=f"hash every present file and write sizes and sha256 to {LOCK_FILE_NAME} "
                          "beside the models file")
    run.add_argument("--json", action="store_true", help="print JSON instead of the table")
    return parser


def main(argv: Sequence[str]) -> int:
    args = build_parser().parse_args(argv)
    if args.comfyui_root is None:
        print(f"hvr-agent models check: give --comfyui-root or set ${COMFYUI_ROOT_ENV}", file=sys.stderr)
        return 2
    root = Path(args.comfyui_root)
    if not (root / "models").is_dir():
        print(f"hvr-agent models check: no models/ folder under {root}", file=sys.stderr)
        return 2
    lock = lock_path(args.models)
    try:
        models = ModelFiles.load(args.models)
        previous = read_lock(lock)
        report = check(models, root, known_facts(models, previous), families=args.families,
                       hash_always=args.record)
    except ModelFilesError as exc:
        print(f"hvr-agent models check: {exc}", file=sys.stderr)
        return 2
    if args.record:
        try:
            write_lock(lock, report, previous)
        except OSError as exc:
            print(f"hvr-agent models check: can't write {lock}: {exc}", file=sys.stderr)
            return 2
    if args.json:
        body = report.json()
        body.update(models_file=str(args.models), comfyui_root=str(root),
                    lock_file=str(lock) if lock.is_file() else None)
        print(json.dumps(body, indent=2))
    else:
        print(table(report))
        if args.record:
            print(f"recorded sizes and sha256 in {lock}")
    return 0 if report.complete else 1
