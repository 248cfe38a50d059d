"""The node-schema validator answers the way ComfyUI's validate_prompt does (docs/providers.md §4)."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from router.models.common import Mode
from router.models.decision import DeliveredSpec
from router.models.request import VideoRequest
from router.policy.catalog import load_catalog
from router.workflows import ModelFiles, build_workflow
from router.workflows.schema import default_schema

SCHEMA = default_schema()


@pytest.fixture(scope="module")
def graph() -> dict[str, Any]:
    offer = load_catalog().get("local/wan21-1.3b")
    assert offer is not None
    request = VideoRequest(mode=Mode.T2V, prompt="a lighthouse", seed=1)
    return build_workflow(offer, request, DeliveredSpec(832, 480, 33, 16), ModelFiles.load())


def node_of(graph: dict[str, Any], class_type: str) -> str:
    return next(nid for nid, node in graph.items() if node["class_type"] == class_type)


def only_error(result: Any, node_id: str) -> dict[str, Any]:
    assert not result.ok
    assert result.error["type"] == "prompt_outputs_failed_validation"
    (error,) = result.node_errors[node_id]["errors"]
    return dict(error)


def test_a_model_file_comfyui_does_not_list_is_value_not_in_list(graph: dict[str, Any]) -> None:
    unet = node_of(graph, "UNETLoader")
    files = {"diffusion_models": {"other.safetensors"}}

    result = SCHEMA.validate(graph, files=files)

    error = only_error(result, unet)
    assert error["type"] == "value_not_in_list"
    assert error["extra_info"]["input_name"] == "unet_name"
    assert result.node_errors[unet]["class_type"] == "UNETLoader"
    assert result.node_errors[unet]["dependent_outputs"] == [node_of(graph, "SaveVideo")]
    assert "node" in result.describe() and "unet_name" in result.describe()


def test_missing_required_input_and_wrong_link_type(graph: dict[str, Any]) -> None:
    broken = copy.deepcopy(graph)
    sampler = node_of(broken, "KSampler")
    del broken[sampler]["inputs"]["cfg"]
    decode = node_of(broken, "VAEDecode")
    broken[decode]["inputs"]["vae"] = [node_of(broken, "CLIPLoader"), 0]

    result = SCHEMA.validate(broken)

    assert result.node_errors[sampler]["errors"][0]["type"] == "required_input_missing"
    assert result.node_errors[decode]["errors"][0]["type"] == "return_type_mismatch"
    assert "received_type(CLIP) mismatch input_type(VAE)" in result.node_errors[decode]["errors"][0]["details"]


def test_literals_are_range_and_combo_checked(graph: dict[str, Any]) -> None:
    broken = copy.deepcopy(graph)
    sampler = node_of(broken, "KSampler")
    broken[sampler]["inputs"]["steps"] = 0
    broken[sampler]["inputs"]["sampler_name"] = "warp_drive"

    kinds = {e["type"] for e in SCHEMA.validate(broken).node_errors[sampler]["errors"]}

    assert kinds == {"value_smaller_than_min", "value_not_in_list"}


def test_unknown_class_and_no_output_are_prompt_level_errors(graph: dict[str, Any]) -> None:
    unknown = {**copy.deepcopy(graph), "99": {"class_type": "NotANode", "inputs": {}}}
    no_output = {nid: node for nid, node in graph.items() if node["class_type"] != "SaveVideo"}

    assert SCHEMA.validate(unknown).error["type"] == "invalid_prompt"
    assert SCHEMA.validate(unknown).node_errors == {}
    assert SCHEMA.validate(no_output).error["type"] == "prompt_no_outputs"
    assert SCHEMA.validate({}).error["type"] == "no_prompt"


def test_uploaded_inputs_must_exist_when_the_input_folder_is_known() -> None:
    graph = {"1": {"class_type": "LoadImage", "inputs": {"image": "cat.png"}},
             "2": {"class_type": "RepeatImageBatch", "inputs": {"image": ["1", 0], "amount": 2}},
             "3": {"class_type": "CreateVideo", "inputs": {"images": ["2", 0], "fps": 8.0}},
             "4": {"class_type": "SaveVideo", "inputs": {"video": ["3", 0], "filename_prefix": "v", "format": "mp4",
                                                         "codec": "h264"}}}

    missing = SCHEMA.validate(graph, files={"input": {"dog.png"}})
    present = SCHEMA.validate(graph, files={"input": {"cat.png"}})

    assert only_error(missing, "1")["type"] == "custom_validation_failed"
    assert present.ok and present.outputs == ["4"]


def test_strict_mode_flags_input_names_comfyui_would_ignore(graph: dict[str, Any]) -> None:
    typo = copy.deepcopy(graph)
    typo[node_of(typo, "KSampler")]["inputs"]["sheduler"] = "simple"

    assert SCHEMA.validate(typo).ok
    assert SCHEMA.validate(typo, strict=True).node_errors[node_of(typo, "KSampler")]["errors"][0]["type"] == \
        "unknown_input"


@pytest.mark.parametrize(("change", "refusal"), [
    ({"codec": "av1"}, "value_not_in_list"),
    ({"format": "webm"}, "value_not_in_list"),
    ({"codec": None}, "required_input_missing"),
])
def test_save_video_takes_only_what_the_real_comfyui_does(
    graph: dict[str, Any], change: dict[str, Any], refusal: str
) -> None:
    broken = copy.deepcopy(graph)
    save = node_of(broken, "SaveVideo")
    for name, value in change.items():
        if value is None:
            del broken[save]["inputs"][name]
        else:
            broken[save]["inputs"][name] = value

    assert only_error(SCHEMA.validate(broken, strict=True), save)["type"] == refusal


def test_inputs_and_ranges_only_the_real_comfyui_listed_validate(graph: dict[str, Any]) -> None:
    extended = copy.deepcopy(graph)
    video = node_of(extended, "CreateVideo")
    extended[video]["inputs"]["bit_depth"] = 10
    extended[video]["inputs"]["images"] = ["99", 0]
    extended["99"] = {"class_type": "ImageFromBatch", "inputs": {"image": [node_of(graph, "VAEDecode"), 0],
                                                                  "batch_index": -1, "length": 1}}
    extended[node_of(extended, "VAELoader")]["inputs"]["vae_name"] = "pixel_space"

    result = SCHEMA.validate(extended, strict=True)

    assert result.ok and not result.node_errors, result.describe()
    assert SCHEMA.nodes["SaveVideo"].outputs == ("VIDEO",)
    assert not SCHEMA.nodes["ADE_ApplyAnimateDiffModelSimple"].inputs["per_block"].required


def test_a_dynamic_combo_has_the_inputs_of_the_option_chosen_only() -> None:
    offer = load_catalog().get("local/wan21-14b")
    assert offer is not None
    request = VideoRequest(mode=Mode.S2V, prompt="a singer", seed=1, image="s3://b/i.png", audio="s3://b/a.wav")
    talking = build_workflow(offer, request, DeliveredSpec(832, 480, 81, 25), ModelFiles.load())
    talk = node_of(talking, "WanInfiniteTalkToVideo")
    talking[talk]["inputs"]["mode.mask_1"] = [node_of(talking, "LoadImage"), 1]

    one = SCHEMA.validate(talking, strict=True)
    talking[talk]["inputs"]["mode"] = "two_speakers"
    two = SCHEMA.validate(talking, strict=True)

    assert only_error(one, talk)["type"] == "unknown_input"
    assert only_error(one, talk)["extra_info"]["input_name"] == "mode.mask_1"
    assert two.ok and not two.node_errors, two.describe()
    talking[talk]["inputs"]["mode"] = "single_speaker"
    assert SCHEMA.validate(talking).ok  # ComfyUI ignores the inputs of an option not chosen
