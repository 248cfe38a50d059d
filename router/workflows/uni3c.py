"""WAN 2.1 14B I2V steered along the request's camera path by Uni3C (core ComfyUI since 0.29.0, PR 14946).

`ModelPatchLoader` loads the Uni3C controlnet from `models/model_patches` (core recognises it by its keys) and
`WanUni3CControlnetApply` patches the I2V model with it, conditioned on `render_video`: the start image as a point
cloud reprojected along the path. No node makes that render, so the agent does, from the request's image, when it
stages the inputs (router/media/camera_render.py says how and why); the graph loads it with `LoadVideo` under the
`camera_render` input name and carries the plan (motion, speed, size, frames, fps) in that node's `_meta`, which
ComfyUI ignores. The rest is image_to_video_wan: CLIP vision and WanImageToVideo from the same start image.
"""

from __future__ import annotations

from typing import Any

from router.media.camera_render import META_KEY, META_TITLE, RenderPlan
from router.models.request import CameraMotion
from router.workflows.common import (
    INPUT_FILES,
    BuildContext,
    clip_vision,
    diffusion_model,
    ksampler,
    load_image,
    save_video,
    wan_text,
)
from router.workflows.graph import Graph, Node

# WanImageToVideo steps width and height by 16.
UNI3C_MULTIPLE = 16
# WanUni3CControlnetApply's defaults: full strength over the whole schedule.
UNI3C_STRENGTH = 1.0
UNI3C_START = 0.0
UNI3C_END = 1.0


class _MetaGraph(Graph):
    """A Graph whose nodes may carry ComfyUI's `_meta` (a title, and here the render plan for the agent)."""

    def __init__(self) -> None:
        super().__init__()
        self._meta: dict[str, dict[str, Any]] = {}

    def meta(self, node: Node, **meta: Any) -> None:
        self._meta.setdefault(node.id, {}).update(meta)

    def to_api(self) -> dict[str, Any]:
        graph = super().to_api()
        for node_id, meta in self._meta.items():
            graph[node_id]["_meta"] = dict(meta)
        return graph


def uni3c_camera(ctx: BuildContext) -> Graph:
    """I2V 14B + Uni3C: the camera render (LoadVideo → GetVideoComponents, scaled to the delivered size in case a
    caller sent its own) drives WanUni3CControlnetApply on the sampled model; WanImageToVideo from the start image."""
    g = _MetaGraph()
    width, height = ctx.size(UNI3C_MULTIPLE)
    length = ctx.wan_length()
    camera = ctx.request.camera
    plan = RenderPlan(camera.motion if camera is not None else CameraMotion.STATIC,
                      camera.speed if camera is not None else 1.0, width, height, length, float(ctx.delivered.fps))
    text = wan_text(g, ctx)
    model = diffusion_model(g, ctx.file("i2v"), ctx.sampling.shift)
    patch = g.add("ModelPatchLoader", name=ctx.file("model_patch"))
    video = g.add("LoadVideo", file=INPUT_FILES["camera_render"])
    g.meta(video, title=META_TITLE, **{META_KEY: plan.to_meta()})
    frames = g.add("GetVideoComponents", video=video.out())
    render = g.add("ImageScale", image=frames.out(0), upscale_method="bilinear", width=width, height=height,
                   crop="center")
    steered = g.add("WanUni3CControlnetApply", model=model, model_patch=patch.out(), vae=text.vae.out(),
                    render_video=render.out(), strength=UNI3C_STRENGTH, start_percent=UNI3C_START,
                    end_percent=UNI3C_END)
    image = load_image(g, width, height)
    wan = g.add("WanImageToVideo", positive=text.positive, negative=text.negative, vae=text.vae.out(), width=width,
                height=height, length=length, batch_size=1, clip_vision_output=clip_vision(g, ctx, image),
                start_image=image)
    samples = ksampler(g, ctx, steered.out(), wan.out(0), wan.out(1), wan.out(2))
    save_video(g, ctx, g.add("VAEDecode", samples=samples, vae=text.vae.out()).out())
    return g
