"""ComfyUI API-format graphs for the local offers: one builder per (offer model, mode).

`build_workflow` turns a routed request into the graph the agent queues (and a worker-comfyui endpoint runs
unchanged); every graph is checked against `node_schema.json` (plus `wrapper_node_schema.json` for the families on
ComfyUI-WanVideoWrapper's nodes) before it leaves, so a builder bug fails here, at submit, and not on the GPU.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from router.models.common import Mode
from router.models.decision import DeliveredSpec
from router.models.offer import Offer
from router.models.request import VideoRequest
from router.workflows.animatediff import animatediff_t2v
from router.workflows.common import INPUT_FILES, BuildContext, WorkflowError
from router.workflows.control import fun_camera, vace_inpaint
from router.workflows.graph import Graph
from router.workflows.models import ModelFiles, ModelFilesError
from router.workflows.reference import humo_s2v, phantom_r2v, wan21_flf2v, wan22_animate
from router.workflows.schema import NodeSchema, Validation, default_schema, wrapper_schema
from router.workflows.speech import infinitetalk, wan22_s2v
from router.workflows.uni3c import uni3c_camera
from router.workflows.wan import wan21_fun_inp_i2v, wan21_i2v, wan21_t2v, wan22_5b, wan22_14b
from router.workflows.wrapper import fantasytalking_s2v, longcat_avatar_s2v, longcat_video, skyreels_df

__all__ = [
    "INPUT_FILES",
    "ModelFiles",
    "ModelFilesError",
    "NodeSchema",
    "Validation",
    "WorkflowError",
    "build_workflow",
    "needs_wrapper",
    "required_roles",
    "supported",
    "supported_pairs",
]

_WAN21 = ("text_encoder", "vae")


@dataclass(frozen=True)
class _Builder:
    build: Callable[[BuildContext], Graph]
    family: str  # the presets' key
    roles: tuple[str, ...]  # the models.yaml files it loads
    wrapper: bool = False  # uses ComfyUI-WanVideoWrapper nodes (wrapper_node_schema.json) besides core ones


_BUILDERS: dict[tuple[str, Mode], _Builder] = {
    ("animatediff-sd15", Mode.T2V): _Builder(animatediff_t2v, "animatediff", ("checkpoint", "motion_model")),
    ("wan21-1.3b", Mode.T2V): _Builder(wan21_t2v, "wan21_t2v", ("t2v", *_WAN21)),
    ("wan21-1.3b", Mode.I2V): _Builder(wan21_fun_inp_i2v, "wan21_fun_inp", ("i2v", "clip_vision", *_WAN21)),
    ("wan21-1.3b", Mode.CAMERA): _Builder(fun_camera, "wan21_fun_camera", ("camera", "clip_vision", *_WAN21)),
    ("wan21-1.3b", Mode.INPAINT): _Builder(vace_inpaint, "wan21_vace", ("inpaint", *_WAN21)),
    ("wan21-14b", Mode.T2V): _Builder(wan21_t2v, "wan21_t2v", ("t2v", *_WAN21)),
    ("wan21-14b", Mode.I2V): _Builder(wan21_i2v, "wan21_i2v", ("i2v", "clip_vision", *_WAN21)),
    ("wan21-14b", Mode.S2V): _Builder(infinitetalk, "wan21_infinitetalk",
                                      ("i2v", "model_patch", "audio_encoder", *_WAN21)),
    ("wan21-14b", Mode.CAMERA): _Builder(fun_camera, "wan21_fun_camera", ("camera", "clip_vision", *_WAN21)),
    ("wan21-14b", Mode.INPAINT): _Builder(vace_inpaint, "wan21_vace", ("inpaint", *_WAN21)),
    ("wan22-14b", Mode.T2V): _Builder(wan22_14b, "wan22_14b", ("t2v_high", "t2v_low", *_WAN21)),
    ("wan22-14b", Mode.I2V): _Builder(wan22_14b, "wan22_14b", ("i2v_high", "i2v_low", *_WAN21)),
    ("wan22-s2v-14b", Mode.S2V): _Builder(wan22_s2v, "wan22_s2v", ("s2v", "audio_encoder", *_WAN21)),
    ("wan22-5b-ti2v", Mode.T2V): _Builder(wan22_5b, "wan22_5b", ("ti2v", *_WAN21)),
    ("wan22-5b-ti2v", Mode.I2V): _Builder(wan22_5b, "wan22_5b", ("ti2v", *_WAN21)),
    # WAN's fine-tuned families on core nodes (reference.py).
    ("wan21-phantom-14b", Mode.R2V): _Builder(phantom_r2v, "wan21_phantom", ("r2v", *_WAN21)),
    ("wan21-flf2v-14b", Mode.FLF2V): _Builder(wan21_flf2v, "wan21_flf2v", ("flf2v", "clip_vision", *_WAN21)),
    ("wan22-animate-14b", Mode.ANIMATE): _Builder(wan22_animate, "wan22_animate",
                                                  ("animate", "clip_vision", *_WAN21)),
    ("humo-17b", Mode.S2V): _Builder(humo_s2v, "humo", ("s2v", "audio_encoder", *_WAN21)),
    # Families core ComfyUI has no nodes for, on ComfyUI-WanVideoWrapper's (wrapper.py). FantasyTalking's `s2v` file
    # is its audio-projection weights, `i2v` the WAN 2.1 I2V 14B 720P model they patch.
    ("fantasytalking-14b", Mode.S2V): _Builder(fantasytalking_s2v, "fantasytalking",
                                               ("i2v", "s2v", "clip_vision", *_WAN21), wrapper=True),
    ("skyreels-v2-df-14b", Mode.T2V): _Builder(skyreels_df, "skyreels_df", ("t2v", *_WAN21), wrapper=True),
    ("skyreels-v2-df-14b", Mode.I2V): _Builder(skyreels_df, "skyreels_df", ("t2v", *_WAN21), wrapper=True),
    ("longcat-video-13.6b", Mode.T2V): _Builder(longcat_video, "longcat_video", ("ti2v", *_WAN21), wrapper=True),
    ("longcat-video-13.6b", Mode.I2V): _Builder(longcat_video, "longcat_video", ("ti2v", *_WAN21), wrapper=True),
    ("longcat-avatar-13.6b", Mode.S2V): _Builder(longcat_avatar_s2v, "longcat_avatar", ("s2v", *_WAN21),
                                                 wrapper=True),
    # Uni3C camera control on WAN 2.1 14B I2V (uni3c.py): sampled as image_to_video_wan, the controlnet a model patch.
    ("wan21-uni3c-14b", Mode.CAMERA): _Builder(uni3c_camera, "wan21_i2v", ("i2v", "model_patch", "clip_vision",
                                                                           *_WAN21)),
}


def supported(offer_model: str, mode: Mode | str) -> bool:
    """Whether a builder exists for this local (offer model, mode) pair."""
    try:
        return (offer_model, Mode(mode)) in _BUILDERS
    except ValueError:
        return False


def needs_wrapper(offer_model: str, mode: Mode | str) -> bool:
    """Whether the (model, mode) graph uses ComfyUI-WanVideoWrapper nodes (a ComfyUI without it can't run it)."""
    return _builder(offer_model, Mode(mode)).wrapper


def supported_pairs() -> list[tuple[str, Mode]]:
    return sorted(_BUILDERS)


def required_roles(offer_model: str, mode: Mode | str) -> tuple[str, ...]:
    """The models.yaml roles a (model, mode) graph loads: what a ComfyUI must hold to run it."""
    return _builder(offer_model, Mode(mode)).roles


def _builder(model: str, mode: Mode) -> _Builder:
    builder = _BUILDERS.get((model, mode))
    if builder is None:
        modes = sorted(m.value for (name, m) in _BUILDERS if name == model)
        raise WorkflowError(f"no ComfyUI workflow for {model} in mode {mode.value}"
                            + (f" (it has: {', '.join(modes)})" if modes else " (no workflows for this model)"))
    return builder


def build_workflow(
    offer: Offer, request: VideoRequest, delivered: DeliveredSpec, models: ModelFiles,
    schema: NodeSchema | None = None,
) -> dict[str, Any]:
    """The API-format graph for a routed request; WorkflowError when none can be built (message says why)."""
    builder = _builder(offer.model, request.mode)
    try:
        graph = builder.build(BuildContext.create(offer, request, delivered, models, builder.family)).to_api()
    except ModelFilesError as exc:
        raise WorkflowError(str(exc)) from exc
    chosen = schema or default_schema()
    if builder.wrapper and schema is not None:  # a core schema given (the deriver's): add the wrapper's classes
        chosen = chosen.merged(wrapper_schema())
    result = chosen.validate(graph, strict=True)
    if not result.ok or result.node_errors:
        raise WorkflowError(f"{offer.model} {request.mode.value} graph fails the node schema: {result.describe()}")
    return graph
