"""Derive `router/workflows/node_schema.json` from a real ComfyUI's /object_info: `python -m hvr.tools.node_schema`
(`--check` only compares).

The schema holds the classes the builders use (read from their sample graphs, built against the whole object_info),
every local `Wan*` class (not the API nodes: they call Comfy's cloud, which a GPU box running our graphs does not) and
the core nodes WAN graphs are made of (`CORE`), so a new WAN builder mostly finds its classes already there. Each
input keeps its object_info kind: a link type, a literal (INT/FLOAT with min/max, STRING, BOOLEAN) or a COMBO. A
combo of model files becomes `folder` (the capture lists placeholder files, not what a given box holds), an upload
combo becomes `upload`, and a dynamic combo (COMFY_DYNAMICCOMBO_V3) becomes a COMBO of its option keys plus each
option's inputs, named `<combo>.<input>` as ComfyUI expands them, with `when`.
"""

from __future__ import annotations

import argparse
import gzip
import json
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from hvr.tools.builder_graphs import builder_graphs
from router.workflows import WorkflowError
from router.workflows.schema import MODEL_EXTENSIONS, SCHEMA_FILE, NodeSchema, wrapper_schema

ROOT = Path(__file__).resolve().parents[2]
OBJECT_INFO_FILE = ROOT / "tests" / "workflows" / "data" / "comfyui-object-info-0.29.0.json.gz"
# The core nodes of a WAN graph: load and scale images, masks, audio and video; encode text, images and audio; load
# and patch models; sample; decode; assemble and save the video.
CORE = (
    "AudioEncoderEncode", "AudioEncoderLoader", "CLIPLoader", "CLIPTextEncode", "CLIPVisionEncode",
    "CLIPVisionLoader", "CreateVideo", "EmptyHunyuanLatentVideo", "GetVideoComponents", "ImageBatch",
    "ImageCompositeMasked", "ImageFromBatch", "ImageScale", "ImageToMask", "InvertMask", "KSampler",
    "KSamplerAdvanced", "LatentConcat", "LatentCut", "LoadAudio", "LoadImage", "LoadImageMask", "LoadVideo",
    "LoraLoaderModelOnly", "MaskToImage", "ModelPatchLoader", "ModelSamplingSD3", "RepeatImageBatch", "SaveVideo",
    "TrimVideoLatent", "UNETLoader", "VAEDecode", "VAEDecodeTiled", "VAEEncode", "VAELoader",
)
# The model folder (folder_paths name, docs/providers.md §4 rule 4) each loader input lists.
MODEL_FOLDERS: Mapping[tuple[str, str], str] = {
    ("ADE_LoadAnimateDiffModel", "model_name"): "animatediff_models",
    ("AudioEncoderLoader", "audio_encoder_name"): "audio_encoders",
    ("CLIPLoader", "clip_name"): "text_encoders",
    ("CLIPVisionLoader", "clip_name"): "clip_vision",
    ("CheckpointLoaderSimple", "ckpt_name"): "checkpoints",
    ("LoraLoaderModelOnly", "lora_name"): "loras",
    ("ModelPatchLoader", "name"): "model_patches",
    ("UNETLoader", "unet_name"): "diffusion_models",
    ("VAELoader", "vae_name"): "vae",
}
# The flag an upload combo carries in its config, and what the schema calls the upload.
UPLOADS = {"image_upload": "image", "audio_upload": "audio", "video_upload": "video", "file_upload": "file"}
DYNAMIC_COMBO = "COMFY_DYNAMICCOMBO_V3"
MATCH_TYPE = "COMFY_MATCHTYPE_V3"
# V3 inputs the schema has no way to say (inputs that multiply as links are made).
UNSUPPORTED = frozenset({"COMFY_AUTOGROW_V3", "COMFY_DYNAMICSLOT_V3"})


class DeriveError(ValueError):
    """The object_info has something the schema can't say as it stands; the message says what to change."""


def load_object_info(path: Path = OBJECT_INFO_FILE) -> dict[str, Any]:
    with gzip.open(path, "rt", encoding="utf-8") if path.suffix == ".gz" else path.open(encoding="utf-8") as file:
        data: dict[str, Any] = json.load(file)
    return data


def is_model_file(value: Any) -> bool:
    return isinstance(value, str) and value.lower().endswith(MODEL_EXTENSIONS)


def derive(object_info: Mapping[str, Any], source: Path = OBJECT_INFO_FILE) -> dict[str, Any]:
    """The node schema document: the selected classes of `object_info`, read from `source`."""
    classes = selected_classes(object_info)
    missing = sorted(set(classes) - set(object_info))
    if missing:
        raise DeriveError(f"not in {source.name}: {', '.join(missing)}")
    where = source.relative_to(ROOT) if source.is_relative_to(ROOT) else source
    return {
        "$comment": [
            "ComfyUI node schema: the classes the workflow builders use, every local Wan* class and the core nodes "
            "of a WAN graph.",
            f"Derived by hvr/tools/node_schema.py from {where} (the /object_info of a real ComfyUI; see the README "
            "beside it). Do not edit: regenerate with `python -m hvr.tools.node_schema` "
            "(tests/workflows/test_object_info.py checks that it is current).",
            "Input kinds: a link type (MODEL, LATENT...) takes [node_id, slot]; INT/FLOAT/STRING/BOOLEAN take "
            "literals (or a link from an output of that type); COMBO takes one of `options`, a file of model "
            "`folder` (or one of its `options`, values that name no file), or a file uploaded to the input folder "
            "(`upload`).",
            "Inputs are required unless `required` is false; an input with `when: [combo, value]` exists only while "
            "that dynamic combo has that value. `source` is the class's python_module; `custom_node` names the node "
            "pack a custom class comes from.",
        ],
        "nodes": {name: node_entry(object_info[name], strict=True) for name in sorted(classes)},
    }


def selected_classes(object_info: Mapping[str, Any]) -> set[str]:
    wan = {name for name, info in object_info.items() if name.startswith("Wan") and not info.get("api_node")}
    # The wrapper builders' ComfyUI-WanVideoWrapper classes have their own schema (hvr/tools/wrapper_schema.py).
    return {*CORE, *wan, *(builder_classes(object_info) - set(wrapper_schema().nodes))}


def builder_classes(object_info: Mapping[str, Any]) -> set[str]:
    """The classes of every builder's sample graphs, built and validated against the whole object_info (so a
    builder may use a class the committed schema lacks yet)."""
    whole = NodeSchema.parse({"nodes": {name: node_entry(info, strict=False) for name, info in object_info.items()}})
    try:
        graphs = builder_graphs(whole)
    except WorkflowError as exc:
        raise DeriveError(f"a builder's graph fails against the whole object_info: {exc} (a loader refusing a "
                          f"models.yaml file needs its input in MODEL_FOLDERS)") from exc
    return {node["class_type"] for sample in graphs for node in sample.graph.values()}


def node_entry(info: Mapping[str, Any], strict: bool) -> dict[str, Any]:
    """One class's schema entry. `strict`: refuse what the schema can't say (rather than say it loosely)."""
    name = info["name"]
    module = str(info.get("python_module") or "nodes")
    entry: dict[str, Any] = {"source": module}
    if module.startswith("custom_nodes."):
        entry["custom_node"] = module.removeprefix("custom_nodes.")
    if info.get("output_node"):
        entry["output_node"] = True
    entry["inputs"] = _inputs(name, info.get("input") or {}, info.get("input_order") or {}, strict)
    entry["outputs"] = list(info.get("output") or [])
    return entry


def _inputs(class_type: str, declared: Mapping[str, Any], order: Mapping[str, Iterable[str]], strict: bool,
            prefix: str = "", when: tuple[str, str] | None = None) -> dict[str, dict[str, Any]]:
    inputs: dict[str, dict[str, Any]] = {}
    for section in ("required", "optional"):
        specs = declared.get(section) or {}
        for name in order.get(section) or specs:
            kind, config = specs[name][0], (specs[name][1] if len(specs[name]) > 1 else {})
            full = prefix + name
            entry = _input(class_type, full, kind, config, strict)
            if section == "optional":
                entry["required"] = False
            if when is not None:
                entry["when"] = list(when)
            inputs[full] = entry
            if kind == DYNAMIC_COMBO:
                for option in config["options"]:
                    inputs |= _inputs(class_type, option.get("inputs") or {}, {}, strict, f"{full}.",
                                      (full, option["key"]))
    return inputs


def _input(class_type: str, name: str, kind: Any, config: Mapping[str, Any], strict: bool) -> dict[str, Any]:
    if isinstance(kind, list) or kind == "COMBO":
        return _combo(class_type, name, kind if isinstance(kind, list) else config.get("options") or [], config,
                      strict)
    if kind == DYNAMIC_COMBO:
        return {"type": "COMBO", "options": [option["key"] for option in config["options"]]}
    if kind == MATCH_TYPE:
        return {"type": (config.get("template") or {}).get("allowed_types") or "*"}
    if strict and kind in UNSUPPORTED:
        raise DeriveError(f"{class_type}.{name}: the node schema has no way to say a {kind} input")
    entry: dict[str, Any] = {"type": kind}
    if kind in ("INT", "FLOAT"):
        entry |= {bound: config[bound] for bound in ("min", "max") if bound in config}
    return entry


def _combo(class_type: str, name: str, options: list[Any], config: Mapping[str, Any],
           strict: bool) -> dict[str, Any]:
    upload = next((kind for flag, kind in UPLOADS.items() if config.get(flag)), None)
    if upload is not None:
        return {"type": "COMBO", "upload": upload}
    folder = MODEL_FOLDERS.get((class_type, name))
    if folder is not None:
        named = [value for value in options if not is_model_file(value)]
        return {"type": "COMBO", "folder": folder} | ({"options": named} if named else {})
    if strict and (not options or any(is_model_file(value) for value in options)):
        raise DeriveError(f"{class_type}.{name} looks like a list of model files ({options[:3]}): add its folder "
                          f"to MODEL_FOLDERS")
    return {"type": "COMBO", "options": list(options)}


def render(schema: Mapping[str, Any]) -> str:
    """The file's text: one line per input, so a regeneration's diff reads input by input."""
    def line(value: Any) -> str:
        return json.dumps(value)

    out = ["{", f' "$comment": {line(schema["$comment"])},', ' "nodes": {']
    nodes = list(schema["nodes"].items())
    for index, (class_type, entry) in enumerate(nodes):
        out.append(f"  {line(class_type)}: {{")
        out += [f"   {line(key)}: {line(entry[key])}," for key in ("source", "custom_node", "output_node")
                if key in entry]
        out.append('   "inputs": {')
        inputs = list(entry["inputs"].items())
        out += [f"    {line(name)}: {line(spec)}" + ("," if i < len(inputs) - 1 else "")
                for i, (name, spec) in enumerate(inputs)]
        out += ["   },", f'   "outputs": {line(entry["outputs"])}', "  }" + ("," if index < len(nodes) - 1 else "")]
    out += [" }", "}"]
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m hvr.tools.node_schema", description=__doc__.split("\n")[0])
    parser.add_argument("--object-info", type=Path, default=OBJECT_INFO_FILE,
                        help="a ComfyUI /object_info answer, .json or .json.gz (default: %(default)s)")
    parser.add_argument("--out", type=Path, default=SCHEMA_FILE, help="where to write (default: %(default)s)")
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 if --out is not current")
    args = parser.parse_args(argv)
    source = args.object_info.resolve()
    try:
        schema = derive(load_object_info(source), source)
    except DeriveError as exc:
        print(f"node_schema: {exc}", file=sys.stderr)
        return 2
    return write_or_check(schema, args.out, check=args.check, tool="hvr.tools.node_schema")


def write_or_check(schema: Mapping[str, Any], out: Path, *, check: bool, tool: str) -> int:
    """Write the rendered schema to `out`, or with `check` only say whether `out` is current; the exit status."""
    text = render(schema)
    if check:
        current = out.is_file() and out.read_text(encoding="utf-8") == text
        print(f"{out}: {'current' if current else f'stale: regenerate with python -m {tool}'}")
        return 0 if current else 1
    out.write_text(text, encoding="utf-8")
    print(f"wrote {len(schema['nodes'])} classes to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
