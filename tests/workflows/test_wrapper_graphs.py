"""The ComfyUI-WanVideoWrapper families' graphs (router/workflows/wrapper.py), checked as strictly as the core ones:
against the real ComfyUI's /object_info for the core nodes in them and, for the wrapper's nodes, against
wrapper_node_schema.json (derived from the wrapper's source at a pinned commit by hvr/tools/wrapper_schema.py),
turned into /object_info entries so that the same check (tests/workflows/test_object_info.py) reads both.

The schema's freshness test rereads the wrapper's source, so it runs only where a bare clone of the repository (or a
fork holding the pinned commit) is named by $HVR_WRAPPER_GIT_DIR; everywhere else it is skipped, never flaky.
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from hvr.tools import wrapper_schema
from hvr.tools.builder_graphs import SampleGraph
from hvr.tools.node_schema import render
from router.models.common import Mode, ProviderKind
from router.models.decision import DeliveredSpec
from router.models.request import VideoRequest
from router.policy.catalog import load_catalog
from router.workflows import ModelFiles, build_workflow, needs_wrapper, supported_pairs
from router.workflows.schema import WRAPPER_SCHEMA_FILE, core_schema, default_schema
from router.workflows.schema import wrapper_schema as load_wrapper
from tests.workflows.test_object_info import OBJECT_INFO, files_by_folder, object_info_errors, samples

WRAPPER_PAIRS = [(model, mode) for model, mode in supported_pairs() if needs_wrapper(model, mode)]
GIT_DIR_ENV = "HVR_WRAPPER_GIT_DIR"


def _object_info_entry(name: str, entry: dict[str, Any]) -> dict[str, Any]:
    """A wrapper_node_schema.json class as /object_info would list it; a model-folder combo lists the models.yaml
    files of its folder (as the capture's placeholder lists do) beside its named values."""
    declared: dict[str, dict[str, Any]] = {"required": {}, "optional": {}}
    for input_name, spec in entry["inputs"].items():
        config = {bound: spec[bound] for bound in ("min", "max") if bound in spec}
        if spec["type"] == "COMBO":
            values = list(spec.get("options", []))
            if "folder" in spec:
                values += sorted(files_by_folder().get(spec["folder"], ()))
            kind: Any = values
        else:
            kind = spec["type"]
        declared["required" if spec.get("required", True) else "optional"][input_name] = [kind, config]
    return {"name": name, "input": declared, "output": entry["outputs"], "output_node": entry.get("output_node", False),
            "python_module": entry["source"]}


@cache
def wrapper_object_info() -> dict[str, Any]:
    document = json.loads(WRAPPER_SCHEMA_FILE.read_text(encoding="utf-8"))
    return {**OBJECT_INFO, **{name: _object_info_entry(name, entry) for name, entry in document["nodes"].items()}}


def wrapper_samples(model: str, mode: Mode) -> list[SampleGraph]:
    return [sample for sample in samples() if (sample.model, sample.mode) == (model, mode)]


def test_every_wrapper_family_has_a_builder() -> None:
    assert {model for model, _mode in WRAPPER_PAIRS} == {
        "fantasytalking-14b", "skyreels-v2-df-14b", "longcat-video-13.6b", "longcat-avatar-13.6b"}


@pytest.mark.parametrize(("model", "mode"), WRAPPER_PAIRS, ids=[f"{m}-{mode.value}" for m, mode in WRAPPER_PAIRS])
def test_every_wrapper_graph_is_one_comfyui_with_the_wrapper_accepts(model: str, mode: Mode) -> None:
    graphs = wrapper_samples(model, mode)
    info = wrapper_object_info()

    assert graphs
    refused = {sample.label: errors for sample in graphs if (errors := object_info_errors(sample.graph, info))}
    assert not refused, refused
    wrapper_classes = set(load_wrapper().nodes)
    for sample in graphs:
        used = {node["class_type"] for node in sample.graph.values()}
        assert used & wrapper_classes and used - wrapper_classes <= set(OBJECT_INFO), used
        result = default_schema().validate(sample.graph, strict=True)
        assert result.ok and not result.node_errors, result.describe()
        assert not core_schema().validate(sample.graph, strict=True).ok  # core alone lacks the wrapper's classes


def _node(graph: dict[str, Any], class_type: str) -> dict[str, Any]:
    return next(node for node in graph.values() if node["class_type"] == class_type)


def _link_vae_to_the_text_encoder(graph: dict[str, Any]) -> None:
    text = next(nid for nid, node in graph.items() if node["class_type"] == "WanVideoTextEncodeCached")
    _node(graph, "WanVideoDecode")["inputs"]["vae"] = [text, 0]


BREAKAGES: dict[str, Callable[[dict[str, Any]], None]] = {
    "unknown class": lambda g: _node(g, "WanVideoDecode").update(class_type="WanVideoDecodeFast"),
    "missing input": lambda g: _node(g, "WanVideoSampler")["inputs"].pop("riflex_freq_index"),
    "unknown input": lambda g: _node(g, "WanVideoSampler")["inputs"].update(sheduler="unipc"),
    "below min": lambda g: _node(g, "WanVideoSampler")["inputs"].update(steps=0),
    "above max": lambda g: _node(g, "WanVideoBlockSwap")["inputs"].update(blocks_to_swap=49),
    "string for INT": lambda g: _node(g, "WanVideoEmptyEmbeds")["inputs"].update(width="832"),
    "scheduler not in the list": lambda g: _node(g, "WanVideoSampler")["inputs"].update(scheduler="simple"),
    "link type": _link_vae_to_the_text_encoder,
    "no such slot": lambda g: _node(g, "WanVideoDecode")["inputs"].update(samples=["1", 7]),
    "model of another folder": lambda g: _node(g, "WanVideoModelLoader")["inputs"].update(
        model=_node(g, "WanVideoVAELoader")["inputs"]["model_name"]),
}


@pytest.mark.parametrize("breakage", list(BREAKAGES))
def test_the_check_refuses_what_comfyui_with_the_wrapper_would(breakage: str) -> None:
    sample = next(s for s in wrapper_samples("longcat-video-13.6b", Mode.I2V))
    graph = copy.deepcopy(sample.graph)
    assert object_info_errors(graph, wrapper_object_info()) == []

    BREAKAGES[breakage](graph)

    assert len(object_info_errors(graph, wrapper_object_info())) == 1, object_info_errors(graph,
                                                                                          wrapper_object_info())
    # The builders' validator refuses the rest too, except where it answers as ComfyUI does: it takes any model file
    # (it can't know a box's files) and coerces a numeric string.
    if breakage not in ("model of another folder", "string for INT"):
        result = default_schema().validate(graph, strict=True)
        assert not result.ok or result.node_errors


def test_the_wrapper_schema_names_its_commit_and_no_core_class() -> None:
    document = json.loads(WRAPPER_SCHEMA_FILE.read_text(encoding="utf-8"))

    assert wrapper_schema.PINNED_COMMIT in document["$comment"][0]
    assert set(document["nodes"]) == set(wrapper_schema.CLASSES)
    assert not set(document["nodes"]) & set(OBJECT_INFO)
    assert all(entry["custom_node"] == "ComfyUI-WanVideoWrapper" for entry in document["nodes"].values())


# --- what the graphs hold --------------------------------------------------------------------------------------

LOCAL = {offer.model: offer for offer in load_catalog().offers if offer.provider is ProviderKind.LOCAL}
MODELS = ModelFiles.load()


def _build(model: str, mode: Mode, **inputs: Any) -> dict[str, Any]:
    offer = LOCAL[model]
    width, height = sorted(offer.size_list)[0]
    request = VideoRequest(mode=mode, prompt="a paper kite over a harbour", seed=5, **inputs)
    return build_workflow(offer, request, DeliveredSpec(width, height, offer.frames.max, offer.fps.default), MODELS)


def _classes(graph: dict[str, Any]) -> list[str]:
    return [node["class_type"] for node in graph.values()]


def test_fantasytalking_loads_wav2vec_by_hub_id_and_patches_the_i2v_model() -> None:
    graph = _build("fantasytalking-14b", Mode.S2V, image="s3://hvr-in/t/i.png", audio="s3://hvr-in/t/a.wav")
    loader = _node(graph, "WanVideoModelLoader")
    embeds = _node(graph, "FantasyTalkingWav2VecEmbeds")

    assert _node(graph, "DownloadAndLoadWav2VecModel")["inputs"]["model"] == "facebook/wav2vec2-base-960h"
    assert graph[loader["inputs"]["fantasytalking_model"][0]]["class_type"] == "FantasyTalkingModelLoader"
    assert loader["inputs"]["model"] == MODELS.file("fantasytalking-14b", "i2v")
    assert embeds["inputs"]["num_frames"] == LOCAL["fantasytalking-14b"].frames.max
    assert embeds["inputs"]["fps"] == 23.0
    assert "audio" in _node(graph, "CreateVideo")["inputs"]


@pytest.mark.parametrize(("model", "input_name"), [("skyreels-v2-df-14b", "prefix_samples"),
                                                   ("longcat-video-13.6b", "extra_latents")])
def test_the_image_conditions_the_first_frame_only_in_i2v(model: str, input_name: str) -> None:
    t2v = _build(model, Mode.T2V)
    i2v = _build(model, Mode.I2V, image="s3://hvr-in/t/i.png")
    holder = "WanVideoDiffusionForcingSampler" if model.startswith("skyreels") else "WanVideoEmptyEmbeds"

    assert "LoadImage" not in _classes(t2v) and input_name not in _node(t2v, holder)["inputs"]
    assert graph_class(i2v, _node(i2v, holder)["inputs"][input_name]) == "WanVideoEncode"


def graph_class(graph: dict[str, Any], link: list[Any]) -> str:
    return str(graph[link[0]]["class_type"])


def test_longcat_avatar_renders_one_window_from_the_image() -> None:
    graph = _build("longcat-avatar-13.6b", Mode.S2V, image="s3://hvr-in/t/i.png", audio="s3://hvr-in/t/a.wav")
    window = _node(graph, "WanVideoLongCatAvatarExtendEmbeds")["inputs"]
    audio = _node(graph, "MultiTalkWav2VecEmbeds")["inputs"]

    assert (window["overlap"], window["frames_processed"], window["num_frames"]) == (1, 0, 93)
    assert graph_class(graph, window["prev_latents"]) == "WanVideoEncode"
    assert audio["fps"] == 32.0 and audio["num_frames"] == 2 * 93
    assert _node(graph, "DownloadAndLoadWav2VecModel")["inputs"]["model"] == "TencentGameMate/chinese-wav2vec2-base"
    assert _node(graph, "WanVideoModelLoader")["inputs"]["base_precision"] == "bf16"


def test_a_core_schema_given_to_build_workflow_gets_the_wrappers_classes_added() -> None:
    offer = LOCAL["longcat-video-13.6b"]
    request = VideoRequest(mode=Mode.T2V, prompt="a kite", seed=1)
    graph = build_workflow(offer, request, DeliveredSpec(832, 480, 33, 15), MODELS, core_schema())

    assert "WanVideoSampler" in _classes(graph)


# --- the deriver ----------------------------------------------------------------------------------------------


def _git(repo: Path, *args: str) -> str:
    done = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, check=True,
                          env={**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t",
                               "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"})
    return done.stdout.strip()


PACKAGE_FILES = {
    "__init__.py": 'REQUIRED_MODULES = [(".nodes", "Main")]\nOPTIONAL_MODULES = [(".extra.nodes", "Extra")]\n',
    "consts.py": 'modes = ["a", "b"]\n',
    "nodes.py": (
        "import folder_paths\nfrom .consts import modes\n"
        "class Loader:\n    @classmethod\n    def INPUT_TYPES(s):\n        return {\"required\": {\n"
        "            \"model\": (folder_paths.get_filename_list(\"unet_gguf\") + "
        "folder_paths.get_filename_list(\"diffusion_models\"), {\"tooltip\": \"x\"}),\n"
        "            \"vae\": ([\"none\"] + folder_paths.get_filename_list(\"vae\"),),\n"
        "            \"mode\": (modes, {\"default\": \"a\"}),\n"
        "            \"seed\": (\"INT\", {\"default\": 0, \"min\": -1, \"max\": 0xffffffffffffffff}),\n"
        "        }, \"optional\": {\"extra\": (\"EXTRA\",)}}\n"
        "    RETURN_TYPES = (\"THING\", modes)\n"
        "class Child(Loader):\n    OUTPUT_NODE = True\n"
        "NODE_CLASS_MAPPINGS = {\"Loader\": Loader, \"Child\": Child}\n"),
    "extra/nodes.py": (
        "from comfy_api.latest import io\n"
        "class V3(io.ComfyNode):\n    @classmethod\n    def define_schema(cls):\n        return io.Schema(\n"
        "            node_id=\"V3\", inputs=[io.Latent.Input(\"latent\"), io.Int.Input(\"n\", default=1, min=1, "
        "max=9, optional=True), io.Combo.Input(\"how\", [\"x\", \"y\"]), io.Custom(\"THING\").Input(\"thing\")],\n"
        "            outputs=[io.Custom(\"OTHER\").Output(display_name=\"o\"), io.Latent.Output()])\n"
        "NODE_CLASS_MAPPINGS = {\"V3\": V3}\n"),
}


def test_the_deriver_reads_literals_folders_bases_imports_and_v3_schemas(tmp_path: Path) -> None:
    for path, text in PACKAGE_FILES.items():
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text(text)
    _git(tmp_path, "init", "-q")
    _git(tmp_path, "add", ".")
    _git(tmp_path, "commit", "-qm", "x")
    source = wrapper_schema.Source(tmp_path / ".git", _git(tmp_path, "rev-parse", "HEAD"))

    nodes = wrapper_schema.derive(source, ("Loader", "Child", "V3"))["nodes"]

    assert nodes["Loader"]["inputs"] == {
        "model": {"type": "COMBO", "folder": "diffusion_models"},
        "vae": {"type": "COMBO", "folder": "vae", "options": ["none"]},
        "mode": {"type": "COMBO", "options": ["a", "b"]},
        "seed": {"type": "INT", "min": -1, "max": 2**64 - 1},
        "extra": {"type": "EXTRA", "required": False},
    }
    assert nodes["Loader"]["outputs"] == ["THING", "COMBO"]
    assert nodes["Child"]["inputs"] == nodes["Loader"]["inputs"] and nodes["Child"]["output_node"] is True
    assert nodes["V3"]["inputs"] == {"latent": {"type": "LATENT"}, "n": {"type": "INT", "min": 1, "max": 9,
                                                                          "required": False},
                                     "how": {"type": "COMBO", "options": ["x", "y"]}, "thing": {"type": "THING"}}
    assert nodes["V3"]["outputs"] == ["OTHER", "LATENT"]
    with pytest.raises(wrapper_schema.DeriveError, match="not registered"):
        wrapper_schema.derive(source, ("Missing",))


def test_wrapper_node_schema_json_is_what_the_deriver_writes_at_the_pinned_commit() -> None:
    git_dir = os.environ.get(GIT_DIR_ENV)
    if not git_dir:
        pytest.skip(f"needs a bare clone of {wrapper_schema.REPO} (or a fork holding "
                    f"{wrapper_schema.PINNED_COMMIT[:8]}) named by ${GIT_DIR_ENV}; the committed schema is used as is")
    source = wrapper_schema.Source(Path(git_dir), wrapper_schema.PINNED_COMMIT)
    if source.read("__init__.py") is None:
        pytest.skip(f"{git_dir} has no commit {wrapper_schema.PINNED_COMMIT}")

    assert WRAPPER_SCHEMA_FILE.read_text(encoding="utf-8") == render(wrapper_schema.derive(source)), \
        "wrapper_node_schema.json is stale or hand-edited: regenerate it with python -m hvr.tools.wrapper_schema"
