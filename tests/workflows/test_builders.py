"""Every (local offer, mode) builder: its graph validates against the node schema and renders what was delivered."""

from __future__ import annotations

from typing import Any

import pytest

from hvr.tools.node_schema import load_object_info
from router.models.common import Mode, ProviderKind, Quality
from router.models.decision import DeliveredSpec
from router.models.offer import FrameRule
from router.models.request import Camera, CameraMotion, VideoRequest
from router.policy.catalog import load_catalog
from router.workflows import (
    INPUT_FILES,
    ModelFiles,
    WorkflowError,
    build_workflow,
    required_roles,
    supported,
    supported_pairs,
)
from router.workflows.models import ROLE_FOLDERS
from router.workflows.presets import PRESETS
from router.workflows.schema import default_schema
from router.workflows.shapes import GraphShapes

CATALOG = load_catalog()
MODELS = ModelFiles.load()
LOCAL = {offer.model: offer for offer in CATALOG.offers if offer.provider is ProviderKind.LOCAL}
# Every pair in every size its offer lists, at the shortest, a middle and the longest frame count.
CASES = [
    (model, mode, size, frames)
    for model, mode in supported_pairs()
    for size in sorted(LOCAL[model].size_list)
    for frames in sorted({LOCAL[model].frames.min, LOCAL[model].frames.snap(50), LOCAL[model].frames.max})
]


def request(mode: Mode, **extra: Any) -> VideoRequest:
    inputs = {"image": "s3://hvr-in/t/img.png", "audio": "s3://hvr-in/t/a.wav", "mask": "s3://hvr-in/t/m.png",
              "last_image": "s3://hvr-in/t/last.png", "video": "s3://hvr-in/t/v.mp4",
              "reference_images": ["s3://hvr-in/t/r1.png", "s3://hvr-in/t/r2.png"]}
    return VideoRequest(mode=mode, prompt="a paper kite over a harbour", seed=11, **{**inputs, **extra})


def build(model: str, mode: Mode, width: int, height: int, frames: int, **extra: Any) -> dict[str, Any]:
    offer = LOCAL[model]
    return build_workflow(offer, request(mode, **extra), DeliveredSpec(width, height, frames, offer.fps.default),
                          MODELS)


def nodes(graph: dict[str, Any], class_type: str) -> list[dict[str, Any]]:
    return [node for node in graph.values() if node["class_type"] == class_type]


def test_the_catalog_lists_a_local_mode_exactly_where_a_builder_exists() -> None:
    listed = {(offer.model, mode) for offer in LOCAL.values() for mode in offer.modes}

    assert listed == set(supported_pairs())
    assert supported("wan21-14b", "camera")
    assert not supported("wan22-14b", "s2v")
    assert not supported("wan21-14b", "not-a-mode")


@pytest.mark.parametrize(("model", "mode", "size", "frames"), CASES,
                         ids=[f"{m}-{mode.value}-{w}x{h}-{f}" for m, mode, (w, h), f in CASES])
def test_every_builder_validates_and_renders_the_delivered_spec(
    model: str, mode: Mode, size: tuple[int, int], frames: int
) -> None:
    width, height = size
    graph = build(model, mode, width, height, frames)

    result = default_schema().validate(graph, strict=True)
    assert result.ok and not result.node_errors, result.describe()
    (save_id,) = [nid for nid, node in graph.items() if node["class_type"] == "SaveVideo"]
    assert graph[save_id]["inputs"]["format"] == "mp4" and graph[save_id]["inputs"]["codec"] == "h264"
    shape = GraphShapes(graph, lambda _name: (640, 360)).video(save_id)
    assert shape is not None
    assert (shape.width, shape.height, shape.frames, shape.fps) == (width, height, frames, LOCAL[model].fps.default)


@pytest.mark.parametrize(("model", "mode"), supported_pairs())
def test_each_graph_loads_only_its_models_yaml_files(model: str, mode: Mode) -> None:
    offer = LOCAL[model]
    width, height = sorted(offer.size_list)[0]
    graph = build(model, mode, width, height, offer.frames.snap(33))
    wanted = {MODELS.file(model, role) for role in required_roles(model, mode)}
    loaded = {value for node in graph.values() for value in node["inputs"].values()
              if isinstance(value, str) and value.endswith((".safetensors", ".ckpt"))}

    assert loaded == wanted
    assert all(role in ROLE_FOLDERS for role in required_roles(model, mode))


@pytest.mark.parametrize(("model", "mode"), [p for p in supported_pairs() if LOCAL[p[0]].frames.rule is
                                             FrameRule.FOUR_N_PLUS_ONE])
def test_wan_builders_refuse_frame_counts_off_the_4n_plus_1_rule(model: str, mode: Mode) -> None:
    width, height = sorted(LOCAL[model].size_list)[0]
    with pytest.raises(WorkflowError, match="4n\\+1"):
        build(model, mode, width, height, 32)


def test_prompt_negative_seed_fps_and_quality_reach_the_graph() -> None:
    offer = LOCAL["wan21-1.3b"]
    premium = VideoRequest(mode=Mode.T2V, prompt="a heron takes off", negative_prompt="no text", seed=1234,
                           quality=Quality.PREMIUM)
    draft = premium.model_copy(update={"quality": Quality.DRAFT})
    spec = DeliveredSpec(832, 480, 49, 12.0)

    graph = build_workflow(offer, premium, spec, MODELS)
    texts = [node["inputs"]["text"] for node in nodes(graph, "CLIPTextEncode")]
    (sampler,) = nodes(graph, "KSampler")
    (video,) = nodes(graph, "CreateVideo")
    (latent,) = nodes(graph, "EmptyHunyuanLatentVideo")
    (draft_sampler,) = nodes(build_workflow(offer, draft, spec, MODELS), "KSampler")

    assert texts == ["a heron takes off", "no text"]
    assert sampler["inputs"]["seed"] == 1234
    assert video["inputs"]["fps"] == 12.0
    assert (latent["inputs"]["width"], latent["inputs"]["height"], latent["inputs"]["length"]) == (832, 480, 49)
    assert sampler["inputs"]["steps"] == PRESETS["wan21_t2v"][Quality.PREMIUM].steps
    assert draft_sampler["inputs"]["steps"] == PRESETS["wan21_t2v"][Quality.DRAFT].steps
    assert draft_sampler["inputs"]["steps"] < sampler["inputs"]["steps"]


def test_a_request_without_negative_prompt_gets_the_template_default() -> None:
    graph = build("wan21-14b", Mode.T2V, 832, 480, 33)
    assert "JPEG" in nodes(graph, "CLIPTextEncode")[1]["inputs"]["text"]


def test_animatediff_slides_a_context_window_only_past_16_frames() -> None:
    short = build("animatediff-sd15", Mode.T2V, 512, 512, 16)
    long = build("animatediff-sd15", Mode.T2V, 512, 512, 48)

    assert not nodes(short, "ADE_StandardUniformContextOptions")
    (context,) = nodes(long, "ADE_StandardUniformContextOptions")
    assert context["inputs"]["context_length"] == 16
    (latent,) = nodes(long, "EmptyLatentImage")
    assert latent["inputs"]["batch_size"] == 48


@pytest.mark.parametrize("motion", list(CameraMotion))
def test_every_api_camera_motion_maps_to_a_wan_camera_pose(motion: CameraMotion) -> None:
    graph = build("wan21-1.3b", Mode.CAMERA, 832, 480, 81, camera=Camera(motion=motion, speed=1.5))
    (embedding,) = nodes(graph, "WanCameraEmbedding")

    options = default_schema().nodes["WanCameraEmbedding"].inputs["camera_pose"].options or ()
    assert embedding["inputs"]["camera_pose"] in options
    assert embedding["inputs"]["speed"] == 1.5


def test_wan22_14b_hands_over_between_experts_half_way() -> None:
    graph = build("wan22-14b", Mode.T2V, 1280, 720, 81)
    first, second = nodes(graph, "KSamplerAdvanced")
    unets = [node["inputs"]["unet_name"] for node in nodes(graph, "UNETLoader")]

    assert first["inputs"]["end_at_step"] == second["inputs"]["start_at_step"] == first["inputs"]["steps"] // 2
    assert (first["inputs"]["add_noise"], second["inputs"]["add_noise"]) == ("enable", "disable")
    assert unets == [MODELS.file("wan22-14b", "t2v_high"), MODELS.file("wan22-14b", "t2v_low")]


def test_long_speech_to_video_is_rendered_in_extended_chunks() -> None:
    short = build("wan22-s2v-14b", Mode.S2V, 832, 480, 60)
    long = build("wan22-s2v-14b", Mode.S2V, 832, 480, 200)

    assert not nodes(short, "WanSoundImageToVideoExtend")
    assert len(nodes(long, "WanSoundImageToVideoExtend")) == 2  # 51 latents: 20 + 20 + 11
    assert len(nodes(long, "KSampler")) == 3


def test_wan21_14b_i2v_uses_the_720p_checkpoint_at_720p_when_models_yaml_has_one() -> None:
    offer = LOCAL["wan21-14b"]
    with_720 = ModelFiles(files={**MODELS.files, "wan21-14b": {**MODELS.files["wan21-14b"],
                                                               "i2v_720p": "wan2.1_i2v_720p_14B_fp16.safetensors"}},
                          unattested=MODELS.unattested)
    hd = build_workflow(offer, request(Mode.I2V), DeliveredSpec(1280, 720, 81, 16), with_720)
    sd = build_workflow(offer, request(Mode.I2V), DeliveredSpec(832, 480, 81, 16), with_720)

    assert nodes(hd, "UNETLoader")[0]["inputs"]["unet_name"] == "wan2.1_i2v_720p_14B_fp16.safetensors"
    assert nodes(sd, "UNETLoader")[0]["inputs"]["unet_name"] == MODELS.file("wan21-14b", "i2v")


def test_inputs_are_loaded_under_the_agreed_placeholder_names() -> None:
    graph = build("wan21-14b", Mode.INPAINT, 832, 480, 33)

    assert [node["inputs"]["image"] for node in nodes(graph, "LoadImage")] == [INPUT_FILES["image"],
                                                                               INPUT_FILES["mask"]]
    assert nodes(build("wan22-s2v-14b", Mode.S2V, 832, 480, 33), "LoadAudio")[0]["inputs"]["audio"] == \
        INPUT_FILES["audio"]


def test_a_missing_model_file_or_unbuilt_mode_is_a_workflow_error_naming_it() -> None:
    without = ModelFiles(files={**MODELS.files, "wan21-1.3b": {"t2v": "x.safetensors"}}, unattested={})
    offer = LOCAL["wan21-1.3b"]

    with pytest.raises(WorkflowError, match=r"wan21-1\.3b.*text_encoder"):
        build_workflow(offer, request(Mode.T2V), DeliveredSpec(832, 480, 33, 16), without)
    with pytest.raises(WorkflowError, match=r"no ComfyUI workflow for wan21-1\.3b in mode s2v"):
        build_workflow(offer, request(Mode.S2V), DeliveredSpec(832, 480, 33, 16), MODELS)


def test_sizes_off_the_vae_grid_are_refused() -> None:
    with pytest.raises(WorkflowError, match="multiples of 16"):
        build("wan22-5b-ti2v", Mode.T2V, 1288, 704, 33)


def test_a_request_without_seed_gets_a_fresh_one_each_build() -> None:
    offer = LOCAL["wan21-1.3b"]
    unseeded = VideoRequest(mode=Mode.T2V, prompt="rain on a window")
    spec = DeliveredSpec(832, 480, 33, 16)
    seeds = {nodes(build_workflow(offer, unseeded, spec, MODELS), "KSampler")[0]["inputs"]["seed"] for _ in range(4)}

    assert len(seeds) > 1
    assert all(0 <= seed < 2**32 for seed in seeds)


# --- WAN's fine-tuned families (reference.py), checked against the real server's /object_info -------------------

FAMILY_NODES = {("wan21-phantom-14b", Mode.R2V): "WanPhantomSubjectToVideo",
                ("wan21-flf2v-14b", Mode.FLF2V): "WanFirstLastFrameToVideo",
                ("wan22-animate-14b", Mode.ANIMATE): "WanAnimateToVideo",
                ("humo-17b", Mode.S2V): "WanHuMoImageToVideo"}


@pytest.mark.parametrize(("model", "mode"), sorted(FAMILY_NODES))
def test_each_family_node_takes_exactly_the_object_infos_inputs(model: str, mode: Mode) -> None:
    graph = build(model, mode, 832, 480, 33)
    (node,) = nodes(graph, FAMILY_NODES[(model, mode)])
    spec = default_schema().nodes[FAMILY_NODES[(model, mode)]].inputs
    required = {name for name, item in spec.items() if item.required}

    assert required <= set(node["inputs"]) <= set(spec)
    for name, value in node["inputs"].items():
        if isinstance(value, int) and spec[name].min is not None:
            assert spec[name].min <= value <= (spec[name].max if spec[name].max is not None else value), name
    assert node["inputs"]["width"] % 16 == 0 and node["inputs"]["height"] % 16 == 0  # the nodes' "step": 16


def test_phantom_batches_every_reference_image_in_order() -> None:
    graph = build("wan21-phantom-14b", Mode.R2V, 832, 480, 33,
                  reference_images=[f"s3://hvr-in/t/r{i}.png" for i in range(1, 5)])
    loaded = [node["inputs"]["image"] for node in nodes(graph, "LoadImage")]
    (phantom,) = nodes(graph, "WanPhantomSubjectToVideo")

    assert loaded == [INPUT_FILES[f"reference_image_{i}"] for i in range(1, 5)]
    assert len(nodes(graph, "ImageBatch")) == 3
    assert graph[phantom["inputs"]["images"][0]]["class_type"] == "ImageBatch"
    (sampler,) = nodes(graph, "KSampler")
    # positive and the text-only negative (output 1), the latent (output 3)
    assert [sampler["inputs"][k][1] for k in ("positive", "negative", "latent_image")] == [0, 1, 3]


def test_flf2v_conditions_on_both_frames_and_their_clip_vision() -> None:
    graph = build("wan21-flf2v-14b", Mode.FLF2V, 1280, 720, 81)
    (wan,) = nodes(graph, "WanFirstLastFrameToVideo")
    loaded = sorted(node["inputs"]["image"] for node in nodes(graph, "LoadImage"))

    assert loaded == sorted([INPUT_FILES["image"], INPUT_FILES["last_image"]])
    assert {"start_image", "end_image", "clip_vision_start_image", "clip_vision_end_image"} <= set(wan["inputs"])


def test_animate_drives_the_character_with_the_video_and_trims_the_reference() -> None:
    graph = build("wan22-animate-14b", Mode.ANIMATE, 832, 480, 77)
    (video,) = nodes(graph, "LoadVideo")
    (animate,) = nodes(graph, "WanAnimateToVideo")
    (trim,) = nodes(graph, "TrimVideoLatent")
    animate_id = next(nid for nid, node in graph.items() if node is animate)

    assert video["inputs"]["file"] == INPUT_FILES["video"]
    assert {"reference_image", "pose_video", "clip_vision_output"} <= set(animate["inputs"])
    assert trim["inputs"]["trim_amount"] == [animate_id, 3]  # its trim_latent output


def test_humo_takes_the_image_only_when_the_request_has_one() -> None:
    offer = LOCAL["humo-17b"]
    spec = DeliveredSpec(832, 480, 97, offer.fps.default)
    audio_only = VideoRequest(mode=Mode.S2V, prompt="a singer", seed=3, audio="s3://hvr-in/t/a.wav")
    with_face = audio_only.model_copy(update={"image": "s3://hvr-in/t/img.png"})
    schema = default_schema()

    (bare,) = nodes(build_workflow(offer, audio_only, spec, MODELS, schema), "WanHuMoImageToVideo")
    (faced,) = nodes(build_workflow(offer, with_face, spec, MODELS, schema), "WanHuMoImageToVideo")
    assert "ref_image" not in bare["inputs"] and "ref_image" in faced["inputs"]
    assert offer.fps.default == 25


def test_the_object_info_has_every_class_the_builders_use() -> None:
    info = load_object_info()
    used = {node["class_type"] for model, mode in sorted(FAMILY_NODES) for node in build(model, mode, 832, 480, 33)
            .values()}
    assert used <= set(info), used - set(info)
