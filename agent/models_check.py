"""Which model families this box can serve from the files in ComfyUI's model folders (`hvr-agent models check`,
and `families` in `GET /v1/health`).

A file is present (under `<comfyui_root>/models/<folder>/`, the folder per role from ROLE_FOLDERS), missing, or wrong:
its size differs from the one stated, or its sha256 from the one recorded. The figures come from the models file's
`comfyui.files` and, for what they leave null, from `models.lock.yaml` beside it, which `--record` writes (PyYAML can't
rewrite the models file and keep its comments).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml

from router.workflows.models import LOCK_FILE_NAME, ROLE_FOLDERS, FileFacts, ModelFiles, ModelFilesError, parse_facts

FamilyStatus = Literal["ready", "missing files"]
READY: FamilyStatus = "ready"
MISSING_FILES: FamilyStatus = "missing files"
_CHUNK = 8 << 20

FileState = Literal["present", "missing", "wrong"]


@dataclass(frozen=True)
class FileCheck:
    name: str
    folder: str
    state: FileState
    size_bytes: int | None  # on disk; None when missing
    expected_size_bytes: int | None  # stated or recorded; None when unknown
    sha256: str | None  # hashed this run (None when not hashed)
    detail: str = ""

    def json(self) -> dict[str, Any]:
        return {"file": self.name, "folder": self.folder, "state": self.state, "size_bytes": self.size_bytes,
                "expected_size_bytes": self.expected_size_bytes, "sha256": self.sha256, "detail": self.detail}


def lock_path(models_file: Path) -> Path:
    return models_file.parent / LOCK_FILE_NAME


def read_lock(path: Path) -> dict[str, FileFacts]:
    if not path.is_file():
        return {}
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ModelFilesError(f"{path}: {exc}") from exc
    if not isinstance(data, dict):
        raise ModelFilesError(f"{path}: expected a mapping with `files:`")
    return parse_facts(data.get("files"), f"{path}: files")


def known_facts(models: ModelFiles, lock: Mapping[str, FileFacts]) -> dict[str, FileFacts]:
    """The models file's figures; the lock's fill what it leaves null (a stated figure is never overridden)."""
    names = {name for roles in models.files.values() for name in roles.values()}
    merged: dict[str, FileFacts] = {}
    for name in names:
        stated, recorded = models.fact(name), lock.get(name) or FileFacts()
        merged[name] = FileFacts(size_bytes=stated.size_bytes if stated.size_bytes is not None else recorded.size_bytes,
                                 sha256=stated.sha256 or recorded.sha256)
    return merged


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        while chunk := stream.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def check_file(root: Path, folder: str, name: str, facts: FileFacts, *, hash_always: bool = False,
               hash_known: bool = True) -> FileCheck:
    """Size from stat; the sha256 streamed when one is recorded (`hash_known`) or `hash_always` (for --record)."""
    path = root / "models" / folder / name
    expected = facts.size_bytes
    if not path.is_file():
        return FileCheck(name, folder, "missing", None, expected, None)
    size = path.stat().st_size
    if expected is not None and size != expected:
        return FileCheck(name, folder, "wrong", size, expected, None, f"size {size}, expected {expected}")
    digest = sha256_of(path) if hash_always or (hash_known and facts.sha256) else None
    if facts.sha256 and digest is not None and digest != facts.sha256:
        return FileCheck(name, folder, "wrong", size, expected, digest, f"sha256 {digest}, expected {facts.sha256}")
    return FileCheck(name, folder, "present", size, expected, digest)


@dataclass(frozen=True)
class Report:
    families: Mapping[str, Mapping[str, FileCheck]]  # family -> role -> its file's check

    def status(self, family: str) -> FamilyStatus:
        return READY if all(c.state == "present" for c in self.families[family].values()) else MISSING_FILES

    @property
    def complete(self) -> bool:
        return all(self.status(family) == READY for family in self.families)

    def to_fetch(self, families: Iterable[str] | None = None) -> dict[tuple[str, str], FileCheck]:
        """Each missing or wrong file once, however many families load it."""
        chosen = self.families if families is None else {f: self.families[f] for f in families}
        return {(c.folder, c.name): c for checks in chosen.values() for c in checks.values() if c.state != "present"}

    def download(self, families: Iterable[str] | None = None) -> tuple[int, int]:
        """(bytes to download where the size is known, how many files of unknown size)."""
        fetch = self.to_fetch(families).values()
        return (sum(c.expected_size_bytes or 0 for c in fetch), sum(c.expected_size_bytes is None for c in fetch))

    def json(self) -> dict[str, Any]:
        total, unknown = self.download()
        families = {}
        for family, checks in self.families.items():
            size, unsized = self.download([family])
            families[family] = {"status": self.status(family), "download_bytes": size, "download_unknown_size": unsized,
                                "files": {role: check.json() for role, check in checks.items()}}
        return {"complete": self.complete, "families": families, "download_bytes": total,
                "download_unknown_size": unknown}


def check(models: ModelFiles, root: Path, facts: Mapping[str, FileFacts], *, families: Iterable[str] | None = None,
          hash_always: bool = False, hash_known: bool = True) -> Report:
    """Every file of every family (or of `families`), each file looked at (and hashed) once."""
    chosen = list(models.files) if families is None else list(families)
    unknown = sorted(set(chosen) - set(models.files))
    if unknown:
        raise ModelFilesError(f"the models file has no families {unknown} (it has {sorted(models.files)})")
    seen: dict[tuple[str, str], FileCheck] = {}
    report: dict[str, dict[str, FileCheck]] = {}
    for family in chosen:
        for role, name in models.files[family].items():
            key = (ROLE_FOLDERS[role], name)
            if key not in seen:
                seen[key] = check_file(root, key[0], name, facts.get(name) or FileFacts(),
                                       hash_always=hash_always, hash_known=hash_known)
            report.setdefault(family, {})[role] = seen[key]
    return Report(report)


def family_status(models: ModelFiles, root: Path, facts: Mapping[str, FileFacts]) -> dict[str, FamilyStatus]:
    """For the health check: stat only (sizes), never a hash, so it stays cheap on every poll."""
    report = check(models, root, facts, hash_known=False)
    return {family: report.status(family) for family in report.families}


def write_lock(path: Path, report: Report, previous: Mapping[str, FileFacts]) -> dict[str, FileFacts]:
    """Record the size and sha256 of every present file (a wrong one is not recorded); keep earlier entries."""
    recorded = dict(previous)
    for checks in report.families.values():
        for c in checks.values():
            if c.state == "present" and c.size_bytes is not None and c.sha256 is not None:
                recorded[c.name] = FileFacts(size_bytes=c.size_bytes, sha256=c.sha256)
    body = {"files": {name: facts.model_dump() for name, facts in sorted(recorded.items())}}
    path.write_text("# Written by `hvr-agent models check --record`: the sizes and sha256 of the model files on this "
                    "box.\n# The models file's own figures win where it states one; these fill what it leaves null.\n"
                    + yaml.safe_dump(body, sort_keys=False))
    return recorded


def human_size(size: int | None) -> str:
    if size is None:
        return "?"
    value = float(size)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.2f} {unit}"
        value /= 1000
    return f"{size} B"  # pragma: no cover


def table(report: Report) -> str:
    lines = []
    for family, checks in report.families.items():
        lines.append(f"{family}: {report.status(family)}")
        for role, c in checks.items():
            size = human_size(c.size_bytes if c.state == "present" else c.expected_size_bytes)
            note = f"  ({c.detail})" if c.detail else ""
            lines.append(f"  {c.state:<8} {role:<14} {c.folder}/{c.name}  {size}{note}")
    total, unknown = report.download()
    fetch = report.to_fetch()
    lines.append(f"to download: {len(fetch)} files, {human_size(total)}"
                 + (f" + {unknown} of unknown size" if unknown else ""))
    return "\n".join(lines)
