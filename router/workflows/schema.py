"""The node schema (`node_schema.json`, derived from a real ComfyUI's /object_info by `hvr/tools/node_schema.py`)
and a validator that answers the way ComfyUI's `validate_prompt` does.

One validator serves both ends: the builders check every graph they emit (strict: an input name the schema doesn't
know is a typo here, though ComfyUI would silently ignore it), and the ComfyUI sandbox answers `POST /prompt` with it
(lenient, like ComfyUI), so the 400 body and its `node_errors` have ComfyUI's shape (docs/providers.md §4).
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

SCHEMA_FILE = Path(__file__).with_name("node_schema.json")
# ComfyUI-WanVideoWrapper's classes (derived by hvr/tools/wrapper_schema.py from the wrapper's source at a pinned
# commit): the studio's ComfyUI has the wrapper installed for the families core ComfyUI lacks.
WRAPPER_SCHEMA_FILE = Path(__file__).with_name("wrapper_node_schema.json")
# folder_paths.supported_pt_extensions: what a model combo lists from its folder.
MODEL_EXTENSIONS = (".ckpt", ".pt", ".pt2", ".bin", ".pth", ".safetensors", ".pkl", ".sft")
SCALAR_TYPES = frozenset({"INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"})
# Folder of uploaded inputs, as /upload/image and /view call it.
INPUT_FOLDER = "input"
# ComfyUI shows a combo's allowed values in the error only when the list is short.
_LISTED_OPTIONS_MAX = 20


@dataclass(frozen=True)
class InputSpec:
    name: str
    type: str
    required: bool = True
    options: tuple[str, ...] | None = None
    folder: str | None = None  # a model folder (the combo lists its files, and `options` that name no file)
    upload: str | None = None  # a file uploaded to the input folder ("image", "audio", "video")
    min: float | None = None
    max: float | None = None
    # (a dynamic combo, one of its values): the input exists only while the combo has that value, as ComfyUI expands
    # a COMFY_DYNAMICCOMBO_V3 into the chosen option's inputs, named `<combo>.<input>`.
    when: tuple[str, str] | None = None

    def applies(self, inputs: Mapping[str, Any]) -> bool:
        return self.when is None or inputs.get(self.when[0]) == self.when[1]

    def accepts_link_type(self, received: str) -> bool:
        if self.type == "COMBO":
            return True  # a primitive or a switch may feed a combo; ComfyUI checks the value, not the type
        wanted = set(self.type.split(","))
        return "*" in wanted or received == "*" or bool(wanted & set(received.split(",")))


@dataclass(frozen=True)
class NodeSpec:
    class_type: str
    inputs: Mapping[str, InputSpec]
    outputs: tuple[str, ...]
    output_node: bool
    source: str
    custom_node: str | None = None


@dataclass
class Validation:
    """ComfyUI's answer: `error` is the 400 body's `error` (None when the prompt would be queued)."""

    error: dict[str, Any] | None = None
    node_errors: dict[str, dict[str, Any]] = field(default_factory=dict)
    outputs: list[str] = field(default_factory=list)  # output nodes that validated (what ComfyUI executes)

    @property
    def ok(self) -> bool:
        return self.error is None

    def body(self) -> dict[str, Any]:
        return {"error": self.error, "node_errors": self.node_errors}

    def describe(self) -> str:
        """One line naming each failing node and input, for an operator reading a job's error."""
        parts = []
        for node_id, entry in self.node_errors.items():
            for error in entry.get("errors", []):
                input_name = (error.get("extra_info") or {}).get("input_name")
                where = f"node {node_id} ({entry.get('class_type')})" + (f" input {input_name}" if input_name else "")
                parts.append(f"{where}: {error.get('message')}: {error.get('details')}")
        if not parts and self.error is not None:
            parts.append(f"{self.error.get('message')}: {self.error.get('details')}")
        return "; ".join(parts)


def _error(kind: str, message: str, details: str, **extra: Any) -> dict[str, Any]:
    return {"type": kind, "message": message, "details": details, "extra_info": extra}


class NodeSchema:
    def __init__(self, nodes: Mapping[str, NodeSpec]) -> None:
        self.nodes = dict(nodes)

    @classmethod
    def load(cls, path: Path = SCHEMA_FILE) -> NodeSchema:
        return cls.parse(json.loads(path.read_text()))

    def merged(self, other: NodeSchema) -> NodeSchema:
        """Both schemas' classes; a class in both must be the same (two packs defining one name is a conflict)."""
        clash = sorted(name for name in set(self.nodes) & set(other.nodes) if self.nodes[name] != other.nodes[name])
        if clash:
            raise ValueError(f"node classes defined differently in two schemas: {', '.join(clash)}")
        return NodeSchema({**self.nodes, **other.nodes})

    @classmethod
    def parse(cls, data: Mapping[str, Any]) -> NodeSchema:
        nodes: dict[str, NodeSpec] = {}
        for class_type, raw in data["nodes"].items():
            inputs = {
                name: InputSpec(
                    name=name, type=spec["type"], required=spec.get("required", True),
                    options=tuple(spec["options"]) if "options" in spec else None,
                    folder=spec.get("folder"), upload=spec.get("upload"), min=spec.get("min"), max=spec.get("max"),
                    when=(spec["when"][0], spec["when"][1]) if "when" in spec else None,
                )
                for name, spec in raw["inputs"].items()
            }
            nodes[class_type] = NodeSpec(
                class_type=class_type, inputs=inputs, outputs=tuple(raw["outputs"]),
                output_node=raw.get("output_node", False), source=raw["source"], custom_node=raw.get("custom_node"),
            )
        return cls(nodes)

    def validate(
        self, graph: Any, *, strict: bool = False, files: Mapping[str, Collection[str]] | None = None
    ) -> Validation:
        """Validate an API-format graph. `files` maps a model folder (and "input") to the files present; without it
        any file name of the right kind passes (the builders can't know what a given ComfyUI holds)."""
        return _Validator(self, graph, strict, files).run()


@cache
def core_schema() -> NodeSchema:
    """node_schema.json: core ComfyUI (and AnimateDiff-Evolved), from a real server's /object_info."""
    return NodeSchema.load()


@cache
def wrapper_schema() -> NodeSchema:
    """wrapper_node_schema.json: the ComfyUI-WanVideoWrapper classes the wrapper builders use."""
    return NodeSchema.load(WRAPPER_SCHEMA_FILE)


@cache
def default_schema() -> NodeSchema:
    """What the studio's ComfyUI runs: core plus the wrapper's classes."""
    return core_schema().merged(wrapper_schema())


class _Validator:
    def __init__(
        self, schema: NodeSchema, graph: Any, strict: bool, files: Mapping[str, Collection[str]] | None
    ) -> None:
        self._schema = schema
        self._graph = graph
        self._strict = strict
        self._files = files
        self._checked: dict[str, list[dict[str, Any]]] = {}

    def run(self) -> Validation:
        if not isinstance(self._graph, dict) or not self._graph:
            return Validation(_error("no_prompt", "No prompt provided", "the prompt must be a non-empty object"))
        for node_id, node in self._graph.items():
            if not isinstance(node, dict) or "class_type" not in node:
                return Validation(_error("invalid_prompt", f"Cannot execute because a node is missing the "
                                         f"class_type property.: Node ID '#{node_id}'", ""))
            if node["class_type"] not in self._schema.nodes:
                return Validation(_error("invalid_prompt", f"Cannot execute because node {node['class_type']} "
                                         f"does not exist.: Node ID '#{node_id}'", ""))
        outputs = [nid for nid, node in self._graph.items() if self._schema.nodes[node["class_type"]].output_node]
        if not outputs:
            return Validation(_error("prompt_no_outputs", "Prompt has no outputs", ""))
        result = Validation()
        failed_outputs = []
        for output_id in outputs:
            visited: set[str] = set()
            if self._check_node(output_id, visited):
                result.outputs.append(output_id)
                continue
            failed_outputs.append(output_id)
            for node_id in visited:
                errors = self._checked.get(node_id)
                if errors:
                    entry = result.node_errors.setdefault(node_id, {
                        "errors": errors, "dependent_outputs": [],
                        "class_type": self._graph[node_id]["class_type"],
                    })
                    entry["dependent_outputs"].append(output_id)
        if not result.outputs:
            details = "\n".join(f"{e['message']}: {e['details']}" for entry in result.node_errors.values()
                                for e in entry["errors"])
            result.error = _error("prompt_outputs_failed_validation", "Prompt outputs failed validation", details)
        return result

    def _check_node(self, node_id: str, visited: set[str]) -> bool:
        """True when this node and everything upstream of it validate."""
        visited.add(node_id)
        if node_id in self._checked:
            upstream_ok = self._upstream_ok(node_id, visited)
            return not self._checked[node_id] and upstream_ok
        node = self._graph[node_id]
        spec = self._schema.nodes[node["class_type"]]
        inputs = node.get("inputs") or {}
        errors: list[dict[str, Any]] = []
        self._checked[node_id] = errors  # set first: a cycle ends here instead of recursing forever
        if self._strict:
            errors += [_error("unknown_input", "Input not in the node schema", name, input_name=name)
                       for name in inputs if name not in spec.inputs or not spec.inputs[name].applies(inputs)]
        for name, input_spec in spec.inputs.items():
            if not input_spec.applies(inputs):
                continue
            if name not in inputs:
                if input_spec.required:
                    errors.append(_error("required_input_missing", "Required input is missing", name,
                                         input_name=name))
                continue
            errors += self._check_input(input_spec, inputs[name])
        upstream_ok = self._upstream_ok(node_id, visited)  # checked even when this node fails, as ComfyUI does
        return not errors and upstream_ok

    def _upstream_ok(self, node_id: str, visited: set[str]) -> bool:
        ok = True
        for value in (self._graph[node_id].get("inputs") or {}).values():
            if _is_link(value) and value[0] in self._graph and value[0] not in visited:
                ok = self._check_node(value[0], visited) and ok
        return ok

    def _check_input(self, spec: InputSpec, value: Any) -> list[dict[str, Any]]:
        if isinstance(value, list):
            return self._check_link(spec, value)
        if spec.type not in SCALAR_TYPES:
            return [_error("bad_linked_input", "Bad linked input, must be a length-2 list of [string, int]",
                           spec.name, input_name=spec.name, received_value=value)]
        return _check_literal(spec, value, self._files)

    def _check_link(self, spec: InputSpec, value: list[Any]) -> list[dict[str, Any]]:
        if not _is_link(value) or value[0] not in self._graph:
            return [_error("bad_linked_input", "Bad linked input, must be a length-2 list of [string, int]",
                           spec.name, input_name=spec.name, received_value=value)]
        origin = self._schema.nodes[self._graph[value[0]]["class_type"]]
        slot = value[1]
        received = origin.outputs[slot] if 0 <= slot < len(origin.outputs) else None
        if received is None or not spec.accepts_link_type(received):
            return [_error("return_type_mismatch", "Return type mismatch between linked nodes",
                           f"{spec.name}, received_type({received}) mismatch input_type({spec.type})",
                           input_name=spec.name, received_type=received, linked_node=value)]
        return []


def _is_link(value: Any) -> bool:
    return (isinstance(value, list) and len(value) == 2 and isinstance(value[0], str)
            and isinstance(value[1], int) and not isinstance(value[1], bool))


def _check_literal(spec: InputSpec, value: Any, files: Mapping[str, Collection[str]] | None) -> list[dict[str, Any]]:
    name = spec.name
    if spec.type in ("INT", "FLOAT"):
        try:
            number = int(value) if spec.type == "INT" else float(value)
        except (TypeError, ValueError):
            return [_error("invalid_input_type", f"Failed to convert an input value to a {spec.type} value",
                           f"{name}, {value}", input_name=name, received_value=value)]
        if spec.min is not None and number < spec.min:
            return [_error("value_smaller_than_min", f"Value {number} smaller than min of {spec.min:g}",
                           f"{name}", input_name=name, received_value=value)]
        if spec.max is not None and number > spec.max:
            return [_error("value_bigger_than_max", f"Value {number} bigger than max of {spec.max:g}",
                           f"{name}", input_name=name, received_value=value)]
        return []
    if spec.type == "COMBO":
        return _check_combo(spec, value, files)
    if spec.type == "BOOLEAN" and not isinstance(value, bool):
        return [_error("invalid_input_type", "Failed to convert an input value to a BOOLEAN value",
                       f"{name}, {value}", input_name=name, received_value=value)]
    if spec.type == "STRING" and not isinstance(value, str):
        return [_error("invalid_input_type", "Failed to convert an input value to a STRING value",
                       f"{name}, {value}", input_name=name, received_value=value)]
    return []


def _check_combo(spec: InputSpec, value: Any, files: Mapping[str, Collection[str]] | None) -> list[dict[str, Any]]:
    name = spec.name
    if spec.upload is not None:
        present = files.get(INPUT_FOLDER, ()) if files is not None else None
        if not isinstance(value, str) or not value or (present is not None and value not in present):
            return [_error("custom_validation_failed", "Custom validation failed for node",
                           f"{name} - Invalid {spec.upload} file: {value}", input_name=name, received_value=value)]
        return []
    if spec.folder is not None:
        named = spec.options or ()  # the values that are no file, such as VAELoader's "pixel_space"
        if files is not None and spec.folder in files:
            allowed: Collection[str] = [*files[spec.folder], *named]
        elif value in named or (isinstance(value, str) and value.lower().endswith(MODEL_EXTENSIONS)):
            return []
        else:
            allowed = named
    else:
        allowed = spec.options or ()
    if value in allowed:
        return []
    shown = list(allowed) if len(allowed) <= _LISTED_OPTIONS_MAX else f"(list of length {len(allowed)})"
    return [_error("value_not_in_list", "Value not in list", f"{name}: '{value}' not in {shown}",
                   input_name=name, input_config=None, received_value=value)]
