"""Controlled WAN 2.1: camera motion on the Fun-Camera models, inpainting with VACE (docs/providers.md §5a).

Uni3C camera control (core's WanUni3CControlnetApply) is the other camera offer, `wan21-uni3c-14b`, in uni3c.py: its
`render_video`, the image as a point cloud along the path, is rendered by the agent (router/media/camera_render.py),
which takes the same presets as CAMERA_POSES below, with Fun-Camera's directions and roll angle.
"""

from __future__ import annotations

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
from router.workflows.graph import Graph, Link
from router.workflows.wan import WAN21_MULTIPLE

# The API's camera motions as WanCameraEmbedding's `camera_pose` values (nodes_camera_trajectory.py).
CAMERA_POSES = {
    CameraMotion.STATIC: "Static",
    CameraMotion.PAN_LEFT: "Pan Left",
    CameraMotion.PAN_RIGHT: "Pan Right",
    CameraMotion.PAN_UP: "Pan Up",
    CameraMotion.PAN_DOWN: "Pan Down",
    CameraMotion.ZOOM_IN: "Zoom In",
    CameraMotion.ZOOM_OUT: "Zoom Out",
    CameraMotion.ROTATE_CW: "ClockWise (CW)",
    CameraMotion.ROTATE_CCW: "Anti Clockwise (ACW)",
}
# video_wan_vace_inpainting conditions at full strength.
VACE_STRENGTH = 1.0


def fun_camera(ctx: BuildContext) -> Graph:
    """video_wan2.1_fun_camera_v1.1_1.3B / _14B: WanCameraEmbedding → WanCameraImageToVideo from the start image."""
    g = Graph()
    width, height = ctx.size(WAN21_MULTIPLE)
    length = ctx.wan_length()
    camera = ctx.request.camera
    pose = CAMERA_POSES[camera.motion] if camera is not None else "Static"
    speed = camera.speed if camera is not None else 1.0
    text = wan_text(g, ctx)
    model = diffusion_model(g, ctx.file("camera"), ctx.sampling.shift)
    image = load_image(g, width, height)
    embedding = g.add("WanCameraEmbedding", camera_pose=pose, width=width, height=height, length=length, speed=speed)
    wan = g.add("WanCameraImageToVideo", positive=text.positive, negative=text.negative, vae=text.vae.out(),
                width=width, height=height, length=length, batch_size=1,
                clip_vision_output=clip_vision(g, ctx, image), start_image=image, camera_conditions=embedding.out())
    samples = ksampler(g, ctx, model, wan.out(0), wan.out(1), wan.out(2))
    save_video(g, ctx, g.add("VAEDecode", samples=samples, vae=text.vae.out()).out())
    return g


def vace_inpaint(ctx: BuildContext) -> Graph:
    """video_wan_vace_inpainting on a still: the image repeated as the control video, the masked area blanked the
    way the template does it, the mask repeated as control masks; TrimVideoLatent drops VACE's reference latents."""
    g = Graph()
    width, height = ctx.size(WAN21_MULTIPLE)
    length = ctx.wan_length()
    text = wan_text(g, ctx)
    model = diffusion_model(g, ctx.file("inpaint"), ctx.sampling.shift)
    frames = g.add("RepeatImageBatch", image=load_image(g, width, height), amount=length).out()
    masks = _mask_frames(g, width, height, length)
    blank = g.add("MaskToImage", mask=g.add("InvertMask", mask=masks).out())
    control = g.add("ImageCompositeMasked", destination=frames, source=blank.out(), x=0, y=0, resize_source=False,
                    mask=masks)
    vace = g.add("WanVaceToVideo", positive=text.positive, negative=text.negative, vae=text.vae.out(), width=width,
                 height=height, length=length, batch_size=1, strength=VACE_STRENGTH, control_video=control.out(),
                 control_masks=masks)
    samples = ksampler(g, ctx, model, vace.out(0), vace.out(1), vace.out(2))
    trimmed = g.add("TrimVideoLatent", samples=samples, trim_amount=vace.out(3))
    save_video(g, ctx, g.add("VAEDecode", samples=trimmed.out(), vae=text.vae.out()).out())
    return g


def _mask_frames(g: Graph, width: int, height: int, length: int) -> Link:
    """The request's mask (white = regenerate) at the delivered size, once per frame. It is loaded as an image and
    its red channel taken: LoadImage's own mask output is the alpha channel, which a black-and-white PNG lacks."""
    mask = g.add("LoadImage", image=INPUT_FILES["mask"])
    scaled = g.add("ImageScale", image=mask.out(), upscale_method="bilinear", width=width, height=height,
                   crop="center")
    repeated = g.add("RepeatImageBatch", image=scaled.out(), amount=length)
    return g.add("ImageToMask", image=repeated.out(), channel="red").out()
