"""Which model files each offer's workflows load, from the `comfyui:` section of `models.yaml` (beside this module).

The router builds the graphs and the agent's ComfyUI loads them, so both read one file: what the operator put in
ComfyUI's model folders is written down once, never in code. It lives with the runtime (which ships to Lambda);
the agent imports the runtime anyway, and reads it from here unless told otherwise.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, StrictInt, ValidationError

from router.errors import HvrError

MODELS_FILE_ENV = "HVR_MODELS_FILE"
DEFAULT_MODELS_FILE = Path(__file__).with_name("models.yaml")
# Beside a models file: the sizes and sha256 `hvr-agent models check --record` measured on a box (PyYAML can't
# rewrite the models file and keep its comments, so what is measured goes here, never into the file itself).
LOCK_FILE_NAME = "models.lock.yaml"

# The ComfyUI model folder each role's file lives in (folder_paths names, docs/providers.md §4 rule 4).
ROLE_FOLDERS: Mapping[str, str] = {
    "t2v": "diffusion_models",
    "i2v": "diffusion_models",
    "i2v_720p": "diffusion_models",
    "camera": "diffusion_models",
    "inpaint": "diffusion_models",
    "s2v": "diffusion_models",
    "ti2v": "diffusion_models",
    "t2v_high": "diffusion_models",
    "t2v_low": "diffusion_models",
    "i2v_high": "diffusion_models",
    "i2v_low": "diffusion_models",
    "r2v": "diffusion_models",
    "flf2v": "diffusion_models",
    "animate": "diffusion_models",
    "text_encoder": "text_encoders",
    "vae": "vae",
    "clip_vision": "clip_vision",
    "audio_encoder": "audio_encoders",
    "model_patch": "model_patches",
    "checkpoint": "checkpoints",
    "motion_model": "animatediff_models",
}


class ModelFilesError(HvrError, ValueError):
    """models.yaml lacks what a workflow needs; the message names the model and the role."""


class FileFacts(BaseModel):
    """What is known of one file's bytes (`comfyui.files.<name>`): null where no source states it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    size_bytes: StrictInt | None = Field(default=None, ge=1)
    sha256: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$")  # lowercase hex, as sha256sum prints it


def parse_facts(raw: Any, where: str) -> dict[str, FileFacts]:
    """`name: {size_bytes, sha256}` entries; ModelFilesError naming the entry and the field when one is bad."""
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ModelFilesError(f"{where} must map file names to {{size_bytes, sha256}}")
    facts: dict[str, FileFacts] = {}
    for name, entry in raw.items():
        try:
            facts[str(name)] = FileFacts.model_validate(entry if entry is not None else {})
        except ValidationError as exc:
            problems = "; ".join(
                f"{where}.{name}{''.join(f'.{part}' for part in error['loc'])}: {error['msg']}"
                for error in exc.errors())
            raise ModelFilesError(problems) from None
    return facts


@dataclass(frozen=True)
class ModelFiles:
    files: Mapping[str, Mapping[str, str]]  # model -> role -> file name
    unattested: Mapping[str, str]  # file name -> where the name comes from (no official template uses it)
    facts: Mapping[str, FileFacts] = field(default_factory=dict)  # file name -> size/sha256, where stated

    @classmethod
    def load(cls, path: Path | str | None = None) -> ModelFiles:
        """From `path`, else $HVR_MODELS_FILE, else router/workflows/models.yaml."""
        chosen = Path(path or os.environ.get(MODELS_FILE_ENV) or DEFAULT_MODELS_FILE)
        try:
            data = yaml.safe_load(chosen.read_text()) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise ModelFilesError(f"{chosen}: {exc}") from exc
        section = data.get("comfyui")
        if not isinstance(section, dict) or not isinstance(section.get("models"), dict):
            raise ModelFilesError(f"{chosen}: no comfyui.models section")
        files: dict[str, dict[str, str]] = {}
        for model, roles in section["models"].items():
            if not isinstance(roles, dict):
                raise ModelFilesError(f"{chosen}: comfyui.models.{model} must map roles to file names")
            unknown = sorted(set(roles) - set(ROLE_FOLDERS))
            if unknown:
                raise ModelFilesError(f"{chosen}: comfyui.models.{model}: unknown roles {unknown} "
                                      f"(known: {sorted(ROLE_FOLDERS)})")
            files[str(model)] = {str(role): str(name) for role, name in roles.items()}
        unattested = {str(k): str(v) for k, v in (section.get("unattested") or {}).items()}
        facts = parse_facts(section.get("files"), f"{chosen}: comfyui.files")
        named = {name for roles in files.values() for name in roles.values()}
        stray = sorted(set(facts) - named)
        if stray:
            raise ModelFilesError(f"{chosen}: comfyui.files lists {stray}, which no model's role names")
        return cls(files=files, unattested=unattested, facts=facts)

    def fact(self, name: str) -> FileFacts:
        return self.facts.get(name) or FileFacts()

    def file(self, model: str, role: str) -> str:
        try:
            return self.files[model][role]
        except KeyError:
            raise ModelFilesError(f"models.yaml names no ComfyUI file for {model} (role {role!r})") from None

    def has(self, model: str, role: str) -> bool:
        return role in self.files.get(model, {})

    def by_folder(self) -> dict[str, set[str]]:
        """Every file named, grouped by ComfyUI folder: what a sandbox (or an operator) must provide."""
        folders: dict[str, set[str]] = {}
        for roles in self.files.values():
            for role, name in roles.items():
                folders.setdefault(ROLE_FOLDERS[role], set()).add(name)
        return folders
