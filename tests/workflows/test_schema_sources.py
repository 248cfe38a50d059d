"""The model file names in models.yaml checked against the official graphs in comfyui-workflow-templates-json.

Classes, inputs, types and combo values are checked against a real ComfyUI's /object_info
(tests/workflows/test_object_info.py), but its lists of model files are placeholders named after models.yaml: only
the templates, saved by ComfyUI with the files they load, say that a file name is one upstream publishes.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import comfyui_workflow_templates_json
import pytest

from router.workflows import ModelFiles
from router.workflows.models import ROLE_FOLDERS

TEMPLATES = Path(comfyui_workflow_templates_json.__file__).parent / "templates"


def _template_nodes(document: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield from document.get("nodes", [])
    for subgraph in document.get("definitions", {}).get("subgraphs", []):
        yield from subgraph.get("nodes", [])


@cache
def official_files() -> frozenset[tuple[str, str]]:
    """(folder, file name) of every model file an official graph loads."""
    found = set()
    for path in TEMPLATES.glob("*.json"):
        document = json.loads(path.read_text())
        if isinstance(document, dict):
            found |= {(str(m.get("directory")), str(m.get("name"))) for node in _template_nodes(document)
                      for m in (node.get("properties") or {}).get("models") or []}
    return frozenset(found)


@pytest.mark.parametrize("model", sorted(ModelFiles.load().files))
def test_models_yaml_files_are_the_official_graphs_or_say_where_they_come_from(model: str) -> None:
    models = ModelFiles.load()
    official = official_files()
    official_names = {name for _folder, name in official}
    for role, name in models.files[model].items():
        if name in models.unattested:
            assert len(models.unattested[name]) > 20, f"{name}: say where the name comes from"
            assert name not in official_names, f"{name} is in an official graph; drop it from unattested"
        else:
            assert (ROLE_FOLDERS[role], name) in official, f"{model}.{role}: {name} not in {ROLE_FOLDERS[role]}"
