"""Every graph the builders make is one a real ComfyUI accepts, checked against its /object_info itself (not the node
schema derived from it); and node_schema.json is what the deriver writes from that object_info now.

The check is ComfyUI's `validate_prompt` (docs/providers.md §4), a little stricter: every class exists and there is
an output node; every required input is given and none the class lacks; literals are of the input's type (ComfyUI
would coerce a string into an INT) and within min/max; combo values are in the list; links point to an existing
node's existing output slot of the input's type (`*` on either side matches anything). The capture's model-file and
upload lists are placeholders (tests/workflows/data/README.md), so a loader input takes any models.yaml file of the
loader's folder, and an upload input any input name the agent stages (INPUT_FILES) of a kind the list shows.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from functools import cache
from pathlib import PurePath
from typing import Any

import pytest

from hvr.tools.builder_graphs import SampleGraph, builder_graphs
from hvr.tools.node_schema import (
    DYNAMIC_COMBO,
    MATCH_TYPE,
    MODEL_FOLDERS,
    UPLOADS,
    DeriveError,
    derive,
    is_model_file,
    load_object_info,
    node_entry,
    render,
)
from router.models.common import Mode
from router.workflows import INPUT_FILES, ModelFiles, needs_wrapper, supported_pairs
from router.workflows.models import ROLE_FOLDERS
from router.workflows.schema import SCHEMA_FILE

OBJECT_INFO = load_object_info()


@cache
def samples() -> list[SampleGraph]:
    return builder_graphs()


@cache
def files_by_folder() -> dict[str, set[str]]:
    folders: dict[str, set[str]] = {}
    for roles in ModelFiles.load().files.values():
        for role, name in roles.items():
            folders.setdefault(ROLE_FOLDERS[role], set()).add(name)
    return folders


def object_info_errors(graph: Mapping[str, Any], object_info: Mapping[str, Any] = OBJECT_INFO) -> list[str]:
    """What a real ComfyUI would refuse in `graph`, one line each (empty: it would queue it). `object_info`: the
    server's classes (tests/workflows/test_wrapper_graphs.py adds ComfyUI-WanVideoWrapper's to the capture's)."""
    errors = []
    for node_id, node in graph.items():
        class_type = node.get("class_type")
        info = object_info.get(class_type)
        if info is None:
            errors.append(f"node {node_id}: no class {class_type} in the object_info")
            continue
        inputs = node.get("inputs") or {}
        declared = _declared(info["input"], inputs)
        errors += [f"node {node_id} ({class_type}): no input {name}" for name in inputs if name not in declared]
        for name, (kind, config, required) in declared.items():
            if name not in inputs:
                if required:
                    errors.append(f"node {node_id} ({class_type}): required input {name} missing")
                continue
            problem = _check(graph, class_type, name, kind, config, inputs[name], object_info)
            if problem:
                errors.append(f"node {node_id} ({class_type}) input {name}: {problem}")
    if not any(object_info.get(node.get("class_type"), {}).get("output_node") for node in graph.values()):
        errors.append("no output node")
    return errors


def _declared(spec: Mapping[str, Any], inputs: Mapping[str, Any],
              prefix: str = "") -> dict[str, tuple[Any, dict[str, Any], bool]]:
    """Input name -> (kind, config, required), a dynamic combo expanded into the inputs of the option chosen."""
    declared: dict[str, tuple[Any, dict[str, Any], bool]] = {}
    for section in ("required", "optional"):
        for name, item in (spec.get(section) or {}).items():
            kind, config = item[0], (item[1] if len(item) > 1 else {})
            declared[prefix + name] = (kind, config, section == "required")
            if kind == DYNAMIC_COMBO:
                chosen = [o for o in config["options"] if o["key"] == inputs.get(prefix + name)]
                for option in chosen:
                    declared |= _declared(option.get("inputs") or {}, inputs, f"{prefix}{name}.")
    return declared


def _check(graph: Mapping[str, Any], class_type: str, name: str, kind: Any, config: Mapping[str, Any],
           value: Any, object_info: Mapping[str, Any]) -> str | None:
    combo = isinstance(kind, list) or kind in ("COMBO", DYNAMIC_COMBO)
    if isinstance(value, list):
        wanted = "COMBO" if combo else (config.get("template") or {}).get("allowed_types", "*") \
            if kind == MATCH_TYPE else str(kind)
        return _check_link(graph, wanted, value, object_info)
    if combo:
        return _check_combo(class_type, name, kind, config, value)
    if kind == "INT" and (not isinstance(value, int) or isinstance(value, bool)):
        return f"{value!r} is no INT"
    if kind == "FLOAT" and (not isinstance(value, int | float) or isinstance(value, bool)):
        return f"{value!r} is no FLOAT"
    if kind in ("INT", "FLOAT"):
        if value < config.get("min", value) or value > config.get("max", value):
            return f"{value} outside {config.get('min')}..{config.get('max')}"
        return None
    literal = {"STRING": str, "BOOLEAN": bool}.get(str(kind))
    if literal is not None:
        return None if isinstance(value, literal) else f"{value!r} is no {kind}"
    return None if kind == "*" else f"a literal {value!r} where a {kind} link belongs"


def _check_link(graph: Mapping[str, Any], wanted: str, value: list[Any],
                object_info: Mapping[str, Any]) -> str | None:
    if len(value) != 2 or not isinstance(value[0], str) or not isinstance(value[1], int) or value[0] not in graph:
        return f"{value} is no link to a node of the graph"
    source = object_info.get(graph[value[0]].get("class_type"))
    if source is None:
        return None  # that node's own error says it
    outputs = source.get("output") or []
    if not 0 <= value[1] < len(outputs):
        return f"{value}: node {value[0]} has no output slot {value[1]}"
    received = str(outputs[value[1]])
    if "*" not in (received, wanted) and not set(received.split(",")) & set(wanted.split(",")):
        return f"{value} gives {received}, the input takes {wanted}"
    return None


def _check_combo(class_type: str, name: str, kind: Any, config: Mapping[str, Any], value: Any) -> str | None:
    if kind == DYNAMIC_COMBO:
        keys = [option["key"] for option in config["options"]]
        return None if value in keys else f"{value!r} not in {keys}"
    listed = kind if isinstance(kind, list) else config.get("options") or []
    folder = MODEL_FOLDERS.get((class_type, name))
    if folder is not None and is_model_file(value):
        return None if value in files_by_folder().get(folder, ()) else f"{value!r} is no models.yaml file of {folder}"
    if any(config.get(flag) for flag in UPLOADS):
        kinds = {PurePath(str(option)).suffix for option in listed}
        staged = value in INPUT_FILES.values() and (not kinds or PurePath(value).suffix in kinds)
        return None if staged else f"{value!r} is no input the agent stages as a {sorted(kinds)} file"
    return None if value in listed else f"{value!r} not in {listed if len(listed) <= 20 else 'the list'}"


# The wrapper families' graphs are checked by tests/workflows/test_wrapper_graphs.py against this object_info plus
# the wrapper's classes: this capture's ComfyUI had no ComfyUI-WanVideoWrapper.
CORE_PAIRS = [(model, mode) for model, mode in supported_pairs() if not needs_wrapper(model, mode)]


@pytest.mark.parametrize(("model", "mode"), CORE_PAIRS, ids=[f"{m}-{mode.value}" for m, mode in CORE_PAIRS])
def test_every_builder_graph_is_one_the_real_comfyui_accepts(model: str, mode: Mode) -> None:
    graphs = [sample for sample in samples() if (sample.model, sample.mode) == (model, mode)]

    assert graphs
    refused = {sample.label: errors for sample in graphs if (errors := object_info_errors(sample.graph))}
    assert not refused, refused


def test_node_schema_json_is_what_the_deriver_writes_now() -> None:
    assert SCHEMA_FILE.read_text(encoding="utf-8") == render(derive(OBJECT_INFO)), \
        "node_schema.json is stale or hand-edited: regenerate it with python -m hvr.tools.node_schema"


def _node(graph: dict[str, Any], class_type: str) -> dict[str, Any]:
    return next(node for node in graph.values() if node["class_type"] == class_type)


def _link_vae_to_the_clip_loader(graph: dict[str, Any]) -> None:
    clip = next(nid for nid, node in graph.items() if node["class_type"] == "CLIPLoader")
    _node(graph, "VAEDecode")["inputs"]["vae"] = [clip, 0]


BREAKAGES: dict[str, Callable[[dict[str, Any]], None]] = {
    "unknown class": lambda g: _node(g, "VAEDecode").update(class_type="VAEDecodeFast"),
    "av1 codec": lambda g: _node(g, "SaveVideo")["inputs"].update(codec="av1"),
    "missing input": lambda g: _node(g, "KSampler")["inputs"].pop("cfg"),
    "unknown input": lambda g: _node(g, "KSampler")["inputs"].update(sheduler="simple"),
    "below min": lambda g: _node(g, "KSampler")["inputs"].update(steps=0),
    "string for INT": lambda g: _node(g, "ImageScale")["inputs"].update(width="832"),
    "link type": _link_vae_to_the_clip_loader,
    "no such slot": lambda g: _node(g, "VAEDecode")["inputs"].update(samples=["1", 7]),
    "model of another folder": lambda g: _node(g, "UNETLoader")["inputs"].update(
        unet_name=_node(g, "VAELoader")["inputs"]["vae_name"]),
    "input nobody stages": lambda g: _node(g, "LoadImage")["inputs"].update(image="cat.png"),
}


@pytest.mark.parametrize("breakage", list(BREAKAGES))
def test_the_check_refuses_what_the_real_comfyui_refuses(breakage: str) -> None:
    sample = next(s for s in samples() if (s.model, s.mode) == ("wan21-1.3b", Mode.I2V))
    graph = copy.deepcopy(sample.graph)
    assert object_info_errors(graph) == []

    BREAKAGES[breakage](graph)

    assert len(object_info_errors(graph)) == 1, object_info_errors(graph)


def test_a_loader_the_deriver_has_no_folder_for_is_refused_with_the_fix() -> None:
    with pytest.raises(DeriveError, match=r"ControlNetLoader\.control_net_name .* MODEL_FOLDERS"):
        node_entry(OBJECT_INFO["ControlNetLoader"], strict=True)
    assert node_entry(OBJECT_INFO["ControlNetLoader"], strict=False)["inputs"]["control_net_name"] == \
        {"type": "COMBO", "options": []}
