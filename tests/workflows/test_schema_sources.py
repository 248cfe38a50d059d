"""The node schema checked against two sources it was not written from: the node documentation in
comfyui-embedded-docs and the official graphs in comfyui-workflow-templates-json.

The docs are AI-written per node and inconsistent in their type columns, so they are trusted for names (inputs,
combo values); the templates are saved by ComfyUI itself, so they are trusted for types (link inputs, outputs) and
for model file names. Custom-node classes (AnimateDiff-Evolved) are in neither and must name their source instead.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import comfyui_embedded_docs
import comfyui_workflow_templates_json
import pytest

from router.models.common import Mode, ProviderKind
from router.models.decision import DeliveredSpec
from router.models.request import Camera, CameraMotion, VideoRequest
from router.policy.catalog import load_catalog
from router.workflows import ModelFiles, build_workflow, supported_pairs
from router.workflows.models import ROLE_FOLDERS
from router.workflows.schema import SCALAR_TYPES, default_schema

DOCS = Path(comfyui_embedded_docs.__file__).parent / "docs"
TEMPLATES = Path(comfyui_workflow_templates_json.__file__).parent / "templates"
SCHEMA = default_schema()
# How newer ComfyUI builds type a combo input in saved graphs.
COMBO_ALIASES = {"COMBO", "COMFY_DYNAMICCOMBO_V3"}


@cache
def doc_text(class_type: str) -> str:
    path = DOCS / class_type / "en.md"
    return path.read_text() if path.is_file() else ""


@cache
def doc_input_names(class_type: str) -> frozenset[str]:
    """First-column cells of the doc's tables (inputs and outputs alike), backticks stripped, lower case."""
    names = set()
    for line in doc_text(class_type).splitlines():
        if line.startswith("|") and not re.match(r"^\|\s*-", line):
            names.add(line.strip("|").split("|")[0].strip().strip("`").lower())
    return frozenset(names)


def _doc_row_names(class_type: str, input_name: str, value: str) -> bool:
    """Whether the doc's table row for this input names the value (quoted, or as a word)."""
    for line in doc_text(class_type).splitlines():
        cells = line.strip("|").split("|")
        if line.startswith("|") and cells[0].strip().strip("`").lower() == input_name.lower():
            return f'"{value}"' in line or re.search(rf"(?<![\w-]){re.escape(value)}(?![\w-])", line) is not None
    return False


def _template_nodes(document: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield from document.get("nodes", [])
    for subgraph in document.get("definitions", {}).get("subgraphs", []):
        yield from subgraph.get("nodes", [])


@cache
def templates() -> dict[str, list[dict[str, Any]]]:
    """Every node of every official graph, by class type."""
    by_class: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for path in TEMPLATES.glob("*.json"):
        document = json.loads(path.read_text())
        if isinstance(document, dict):
            for node in _template_nodes(document):
                by_class[str(node.get("type"))].append(node)
    return dict(by_class)


@cache
def builder_graphs() -> list[dict[str, Any]]:
    """One graph per builder, plus every camera motion: all the literals the builders can emit."""
    catalog = load_catalog()
    models = ModelFiles.load()
    inputs = {"image": "s3://b/i.png", "audio": "s3://b/a.wav", "mask": "s3://b/m.png"}
    graphs = []
    for model, mode in supported_pairs():
        offer = next(o for o in catalog.offers if o.provider is ProviderKind.LOCAL and o.model == model)
        width, height = sorted(offer.size_list)[0]
        spec = DeliveredSpec(width, height, offer.frames.snap(100), offer.fps.default)
        motions = list(CameraMotion) if mode is Mode.CAMERA else [None]
        for motion in motions:
            camera = Camera(motion=motion) if motion else None
            request = VideoRequest(mode=mode, prompt="p", seed=1, camera=camera, **inputs)
            graphs.append(build_workflow(offer, request, spec, models))
    return graphs


def test_every_core_class_is_documented_and_every_custom_one_names_its_source() -> None:
    for class_type, spec in SCHEMA.nodes.items():
        if spec.custom_node is None:
            assert doc_text(class_type), f"{class_type}: not in comfyui-embedded-docs; mark it custom_node"
        else:
            assert spec.custom_node in spec.source and ".py" in spec.source, class_type
            assert class_type not in templates(), f"{class_type} is in official graphs: check it against them"


def test_every_core_input_name_is_in_the_docs_or_the_official_graphs() -> None:
    for class_type, spec in SCHEMA.nodes.items():
        if spec.custom_node is not None:
            continue
        seen = set(doc_input_names(class_type))
        seen |= {str(i.get("name", "")).lower() for node in templates().get(class_type, [])
                 for i in node.get("inputs", [])}
        missing = [name for name in spec.inputs if name.lower() not in seen]
        assert not missing, f"{class_type}: inputs {missing} are in neither source"


def test_output_types_match_the_official_graphs() -> None:
    checked = 0
    for class_type, spec in SCHEMA.nodes.items():
        for node in templates().get(class_type, []):
            types = [str(o.get("type")) for o in node.get("outputs", [])]
            # Newer builds append outputs (SaveVideo now passes its video through); the slots we link must agree.
            assert types[: len(spec.outputs)] == list(spec.outputs), f"{class_type}: {types} vs {spec.outputs}"
            checked += 1
    assert checked > 100  # the templates really were read


def test_input_types_match_the_official_graphs() -> None:
    for class_type, spec in SCHEMA.nodes.items():
        for node in templates().get(class_type, []):
            for template_input in node.get("inputs", []):
                ours = spec.inputs.get(str(template_input.get("name")))
                theirs = str(template_input.get("type"))
                if ours is None or theirs == "*":
                    continue
                if ours.type == "COMBO":
                    assert theirs in COMBO_ALIASES, f"{class_type}.{ours.name}: {theirs} vs COMBO"
                elif ours.type in SCALAR_TYPES:
                    assert theirs == ours.type, f"{class_type}.{ours.name}: {theirs} vs {ours.type}"
                else:
                    assert set(theirs.split(",")) & set(ours.type.split(",")), \
                        f"{class_type}.{ours.name}: {theirs} vs {ours.type}"


def test_combo_values_the_builders_emit_are_in_the_docs_or_the_official_graphs() -> None:
    for graph in builder_graphs():
        for node in graph.values():
            spec = SCHEMA.nodes[node["class_type"]]
            if spec.custom_node is not None:
                continue
            widgets = {json.dumps(value) for t in templates().get(node["class_type"], [])
                       for value in t.get("widgets_values") or [] if not isinstance(value, dict)}
            for name, value in node["inputs"].items():
                if spec.inputs[name].options is None or isinstance(value, list):
                    continue
                attested = json.dumps(value) in widgets or _doc_row_names(node["class_type"], name, str(value))
                assert attested, f"{node['class_type']}.{name} = {value!r} is in neither source"


def test_builders_use_only_classes_the_schema_sources() -> None:
    used = {node["class_type"] for graph in builder_graphs() for node in graph.values()}
    for class_type in used:
        spec = SCHEMA.nodes[class_type]
        assert doc_text(class_type) or spec.custom_node, class_type
    assert {"SaveVideo", "KSampler", "WanCameraImageToVideo", "ADE_UseEvolvedSampling"} <= used


@pytest.mark.parametrize("model", sorted(ModelFiles.load().files))
def test_models_yaml_files_are_the_official_graphs_or_say_where_they_come_from(model: str) -> None:
    models = ModelFiles.load()
    official = {(str(m.get("directory")), str(m.get("name"))) for nodes in templates().values() for node in nodes
                for m in (node.get("properties") or {}).get("models") or []}
    official_names = {name for _folder, name in official}
    for role, name in models.files[model].items():
        if name in models.unattested:
            assert len(models.unattested[name]) > 20, f"{name}: say where the name comes from"
            assert name not in official_names, f"{name} is in an official graph; drop it from unattested"
        else:
            assert (ROLE_FOLDERS[role], name) in official, f"{model}.{role}: {name} not in {ROLE_FOLDERS[role]}"
