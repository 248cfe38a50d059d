"""Uni3C's `render_video`: the request's image as a point cloud, reprojected along the camera path, as an MP4.

ComfyUI's `WanUni3CControlnetApply` steers WAN 2.1 14B with a "guidance video rendered from the camera trajectory,
most commonly warped point cloud renders of the input image" (its tooltip). No core node makes one, so hvr does.

**Where it runs.** On the GPU side, in the comfyui engine's input staging (agent/engines/comfyui.py), the only place
that holds the request's image bytes anyway: the engine already downloads every input and uploads it to ComfyUI, so
it renders the MP4 from the image it just fetched and uploads it like any other input. The router (a Lambda) never
sees the pixels and must stay free of numpy and PyAV; a worker-comfyui endpoint running `agent.runpod_worker` goes
through the same engine code and renders it the same way. The graph (router/workflows/uni3c.py) loads the render
with `LoadVideo` under the placeholder `INPUT_FILES["camera_render"]` and carries what to render in that node's
`_meta` (`hvr_camera_render`: motion, speed, size, frames, fps; ComfyUI ignores `_meta`), so the engine needs nothing
from the job beyond the graph and the image. A caller that sends its own `camera_render` input (say, a render from a
real depth model) is used as given.

**Depth: a fronto-parallel plane.** Nothing on the box estimates depth (core ComfyUI has no depth node; the agent
has no torch), so every pixel is put at the same depth (`PLANE_DEPTH`). A depth prior (depth growing toward the top
of the frame, as for a ground plane) was the alternative; it is right for landscapes and wrong for the portraits and
products the studio mostly animates, and where it is wrong it shears the render, which Uni3C, trained to follow its
render, would reproduce as bent geometry. A plane errs the benign way: the render moves rigidly (the scene as if far
away) and WAN adds the parallax its prior expects. It also makes the render's motion exact — a pan moves the content
by a stated number of pixels, a zoom scales it by a stated factor — which the tests check. `render_frames` takes any
depth map, so a depth model is one argument away.

**The camera path** follows the Fun-Camera presets (ComfyUI's `WanCameraEmbedding`, nodes_camera_trajectory.py), so a
request moves the same way on either offer: camera-to-world poses in OpenCV axes (x right, y down, z forward), the
first frame the world frame; pans are translations (Pan Left moves the camera left, so the content slides right),
zooms a dolly along the optical axis, rotations a roll about it (ClockWise = +z in the camera-to-world rotation, as
there: the camera rolls clockwise, so the content turns anticlockwise on screen). Fun-Camera's translations are in
the units of its training scenes, which a plane of unknown depth doesn't have, so the magnitudes here are stated in
the image: by the last frame, at speed 1, a pan moves the content by `PAN_SHARE` (a quarter) of the frame along the
motion, a zoom in dollies a third of the way to the plane (x1.5; out: x0.75), a roll turns 60 degrees (Fun-Camera's
base angle); all scale linearly with `speed` and with the frame's position in the clip.
The pinhole's focal length is `max(width, height)` pixels (a ~53° field of view on the long side), principal point
at the centre; with a plane it only matters to a depth map.

**Rendering.** With the plane, each target pixel's ray is cast onto it and the image sampled (bilinearly) where
it lands: the limit of an ever denser point cloud on the plane, with no splatting gaps. With a depth map, each
source pixel becomes `s x s` points (colour bilinear, depth the pixel's own), `s` chosen per frame so the points stay
closer than a pixel apart at that frame's magnification, splatted into the target view through a z-buffer.
Whatever no point reaches — past the first frame's edges, and with a depth map behind what moved — stays black, as in
Uni3C's own point-cloud renders (it conditions on the render alone; core's node takes no mask). The input image is
first centre-cropped and Lanczos-scaled to the delivered size exactly as the graph's `ImageScale` (crop "center") does
to the start image, so the render's first frame is the video's first frame. Output: H.264 (libx264, yuv420p), as the
sim engine writes, at the delivered size, frame count and fps.

numpy, Pillow and PyAV are imported inside the functions that need them: the router imports this module for the
plan and the placeholder and must stay import-light (tests/unit/test_lambda_imports.py).
"""

from __future__ import annotations

import io
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from fractions import Fraction
from typing import TYPE_CHECKING, Any

from router.errors import HvrError
from router.models.request import CameraMotion

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

# The LoadVideo node's `_meta` key that carries the plan (RenderPlan.to_meta()).
META_KEY = "hvr_camera_render"
META_TITLE = "hvr camera render (point cloud along the camera path; rendered by the agent)"
# By the last frame at speed 1: a pan moves the content by this share of the frame (width for left/right, height
# for up/down); a zoom dollies this share of the plane's depth (in: x1.5, out: x0.75); a roll turns this angle.
PAN_SHARE = 0.25
DOLLY_SHARE = 1 / 3
ROLL_RAD = math.pi / 3  # Fun-Camera's base_angle
PLANE_DEPTH = 1.0
# Splatting a depth map: the point spacing in target pixels that leaves no gap in a (possibly rolled) grid of points,
# whose widest gap is d/√2 from its nearest point.
_ROTATED_SPACING = 0.7
MAX_SUPERSAMPLE = 5
_NEAR = 1e-3  # points closer than this to the camera (or behind it) are dropped


class CameraRenderError(HvrError, ValueError):
    """The render can't be made: a bad plan, an image that doesn't decode. The message says which."""


@dataclass(frozen=True)
class RenderPlan:
    """What to render: the request's camera motion at the delivered size, frame count and rate."""

    motion: CameraMotion
    speed: float
    width: int
    height: int
    frames: int
    fps: float

    def __post_init__(self) -> None:
        if self.width < 2 or self.height < 2 or self.width % 2 or self.height % 2:
            raise CameraRenderError(f"render size {self.width}x{self.height}: sides must be even and at least 2")
        if self.frames < 1 or not self.fps > 0 or not self.speed >= 0:
            raise CameraRenderError(f"render plan needs frames >= 1, fps > 0 and speed >= 0 (got {self.frames}, "
                                    f"{self.fps}, {self.speed})")

    def to_meta(self) -> dict[str, Any]:
        return {"motion": self.motion.value, "speed": self.speed, "width": self.width, "height": self.height,
                "frames": self.frames, "fps": self.fps}

    @classmethod
    def from_meta(cls, raw: Any) -> RenderPlan:
        try:
            return cls(CameraMotion(raw["motion"]), float(raw["speed"]), int(raw["width"]), int(raw["height"]),
                       int(raw["frames"]), float(raw["fps"]))
        except (KeyError, TypeError, ValueError) as exc:
            if isinstance(exc, CameraRenderError):
                raise
            raise CameraRenderError(f"bad {META_KEY} plan {raw!r}: {exc}") from None


def find_plan(graph: Mapping[str, Any]) -> RenderPlan | None:
    """The render plan a graph's node carries in its `_meta`, if any (one at most is expected)."""
    for node in graph.values():
        meta = node.get("_meta") if isinstance(node, Mapping) else None
        if isinstance(meta, Mapping) and META_KEY in meta:
            return RenderPlan.from_meta(meta[META_KEY])
    return None


@dataclass(frozen=True)
class Pose:
    """Camera-to-world: rotation (row-major 3x3) and the camera centre."""

    rotation: tuple[tuple[float, float, float], ...]
    centre: tuple[float, float, float]


def focal_length(width: int, height: int) -> float:
    return float(max(width, height))


def camera_path(plan: RenderPlan) -> list[Pose]:
    """One pose per frame; the first is the identity (the image's own camera)."""
    poses = []
    f = focal_length(plan.width, plan.height)
    pan_x = PAN_SHARE * plan.width * plan.speed * PLANE_DEPTH / f  # camera shift that moves the plane PAN_SHARE·W
    pan_y = PAN_SHARE * plan.height * plan.speed * PLANE_DEPTH / f
    dolly = DOLLY_SHARE * PLANE_DEPTH * plan.speed
    roll = ROLL_RAD * plan.speed
    translation = {
        CameraMotion.PAN_LEFT: (-pan_x, 0.0, 0.0), CameraMotion.PAN_RIGHT: (pan_x, 0.0, 0.0),
        CameraMotion.PAN_UP: (0.0, -pan_y, 0.0), CameraMotion.PAN_DOWN: (0.0, pan_y, 0.0),
        CameraMotion.ZOOM_IN: (0.0, 0.0, dolly), CameraMotion.ZOOM_OUT: (0.0, 0.0, -dolly),
    }.get(plan.motion, (0.0, 0.0, 0.0))
    angle = {CameraMotion.ROTATE_CW: roll, CameraMotion.ROTATE_CCW: -roll}.get(plan.motion, 0.0)
    for index in range(plan.frames):
        p = index / (plan.frames - 1) if plan.frames > 1 else 0.0
        c, s = math.cos(angle * p), math.sin(angle * p)
        poses.append(Pose(((c, -s, 0.0), (s, c, 0.0), (0.0, 0.0, 1.0)),
                          (translation[0] * p, translation[1] * p, translation[2] * p)))
    return poses


def prepare_image(data: bytes, width: int, height: int) -> NDArray[np.uint8]:
    """The image as the graph's LoadImage → ImageScale(lanczos, crop "center") gives it: EXIF-rotated, RGB, the
    centre cut to the target aspect (comfy.utils.common_upscale's rounding), Lanczos-scaled to width x height."""
    import numpy as np
    from PIL import Image, ImageOps, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as opened:
            image = ImageOps.exif_transpose(opened).convert("RGB")
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise CameraRenderError(f"the camera render's input image doesn't decode: {exc}") from None
    old_w, old_h = image.size
    old_aspect, new_aspect = old_w / old_h, width / height
    x = y = 0
    if old_aspect > new_aspect:
        x = round((old_w - old_w * (new_aspect / old_aspect)) / 2)
    elif old_aspect < new_aspect:
        y = round((old_h - old_h * (old_aspect / new_aspect)) / 2)
    image = image.crop((x, y, old_w - x, old_h - y)).resize((width, height), Image.Resampling.LANCZOS)
    return np.asarray(image, dtype=np.uint8)


def render_frames(image: NDArray[np.uint8], plan: RenderPlan,
                  depth: NDArray[np.float32] | None = None) -> Iterator[NDArray[np.uint8]]:
    """The point cloud of `image` (HxWx3, already at the plan's size) seen from each pose of the path. `depth`
    (HxW, along the optical axis) defaults to the fronto-parallel plane at PLANE_DEPTH."""
    import numpy as np

    height, width = plan.height, plan.width
    if image.shape != (height, width, 3):
        raise CameraRenderError(f"image is {image.shape}, the plan wants ({height}, {width}, 3)")
    colours = image.astype(np.float32)
    depths = None if depth is None else np.asarray(depth, dtype=np.float32)
    if depths is not None and depths.shape != (height, width):
        raise CameraRenderError(f"depth map is {depths.shape}, the plan wants ({height}, {width})")
    f = focal_length(width, height)
    cx, cy = width / 2, height / 2
    z_min = PLANE_DEPTH if depths is None else max(float(depths.min()), _NEAR)
    for pose in camera_path(plan):
        rotation = np.asarray(pose.rotation, dtype=np.float64)
        centre = np.asarray(pose.centre, dtype=np.float64)
        if depths is None:
            yield _cast(colours, rotation, centre, f, cx, cy)
            continue
        # The paths only roll, so a point's depth in this camera is its depth less the dolly, and it is magnified by
        # Z / (Z - dolly): most at the nearest point when dollying in, at most 1 when dollying out.
        magnification = z_min / max(z_min - max(float(centre[2]), 0.0), _NEAR)
        factor = min(MAX_SUPERSAMPLE, max(1, math.ceil(magnification / _ROTATED_SPACING - 1e-6)))
        yield _splat(colours, depths, rotation, centre, f, cx, cy, factor)


def _cast(colours: NDArray[np.float32], rotation: NDArray[np.float64], centre: NDArray[np.float64], f: float,
          cx: float, cy: float) -> NDArray[np.uint8]:
    """The plane seen from one pose, by casting each target pixel's ray onto it: the limit of an ever denser point
    cloud on the plane (one point per ray, no splatting gaps); black where the ray meets the plane outside the image."""
    import numpy as np

    height, width = colours.shape[:2]
    u, v = np.meshgrid(np.arange(width, dtype=np.float64) + 0.5, np.arange(height, dtype=np.float64) + 0.5)
    rays = np.stack([(u - cx) / f, (v - cy) / f, np.ones_like(u)], axis=-1) @ rotation.T  # into world axes
    t = (PLANE_DEPTH - centre[2]) / rays[..., 2]
    src_u = f * (centre[0] + t * rays[..., 0]) / PLANE_DEPTH + cx
    src_v = f * (centre[1] + t * rays[..., 1]) / PLANE_DEPTH + cy
    inside = (t > 0) & (src_u >= 0) & (src_u < width) & (src_v >= 0) & (src_v < height)
    rgb = _bilinear(colours, src_u - 0.5, src_v - 0.5) * inside[..., None]
    return np.clip(np.rint(rgb), 0, 255).astype(np.uint8)


def _splat(colours: NDArray[np.float32], depths: NDArray[np.float32], rotation: NDArray[np.float64],
           centre: NDArray[np.float64], f: float, cx: float, cy: float, factor: int) -> NDArray[np.uint8]:
    import numpy as np

    height, width = colours.shape[:2]
    canvas = np.zeros((height * width, 3), dtype=np.float32)
    zbuf = np.full(height * width, np.inf, dtype=np.float64)
    # World → this camera: X_c = R^T (X - C).
    r_t = rotation.T
    for sub_y in range(factor):
        for sub_x in range(factor):
            # Sub-pixel sample positions in continuous image coordinates (pixel x spans [x, x + 1)).
            us = np.arange(width, dtype=np.float64) + (sub_x + 0.5) / factor
            vs = np.arange(height, dtype=np.float64) + (sub_y + 0.5) / factor
            u, v = np.meshgrid(us, vs)
            colour = _bilinear(colours, u - 0.5, v - 0.5)
            # Depth is the source pixel's own (nearest, not blended): blending across an edge would float points
            # between the surfaces, into what should stay a hole.
            z = depths[v.astype(np.int64), u.astype(np.int64)].astype(np.float64)
            points = np.stack([(u - cx) / f * z - centre[0], (v - cy) / f * z - centre[1], z - centre[2]], axis=-1)
            cam = points.reshape(-1, 3) @ r_t.T
            zc = cam[:, 2]
            ahead = zc > _NEAR
            with np.errstate(divide="ignore", invalid="ignore"):
                x = np.floor(f * cam[:, 0] / zc + cx)
                y = np.floor(f * cam[:, 1] / zc + cy)
            keep = ahead & (x >= 0) & (x < width) & (y >= 0) & (y < height)
            index = (y[keep] * width + x[keep]).astype(np.int64)
            depth_kept = zc[keep]
            np.minimum.at(zbuf, index, depth_kept)
            nearest = depth_kept <= zbuf[index]
            canvas[index[nearest]] = colour.reshape(-1, 3)[keep][nearest]
    return np.clip(np.rint(canvas), 0, 255).astype(np.uint8).reshape(height, width, 3)


def _bilinear(values: NDArray[np.float32], x: NDArray[np.float64], y: NDArray[np.float64]) -> NDArray[np.float32]:
    """values (HxWxC) sampled at pixel-centre coordinates x, y, clamped at the edges."""
    import numpy as np

    height, width = values.shape[:2]
    x = np.clip(x, 0, width - 1)
    y = np.clip(y, 0, height - 1)
    x0 = np.floor(x).astype(np.int64)
    y0 = np.floor(y).astype(np.int64)
    x1 = np.minimum(x0 + 1, width - 1)
    y1 = np.minimum(y0 + 1, height - 1)
    wx = (x - x0)[..., None].astype(np.float32)
    wy = (y - y0)[..., None].astype(np.float32)
    top = values[y0, x0] * (1 - wx) + values[y0, x1] * wx
    bottom = values[y1, x0] * (1 - wx) + values[y1, x1] * wx
    result: NDArray[np.float32] = top * (1 - wy) + bottom * wy
    return result


def encode_mp4(frames: Iterator[NDArray[np.uint8]], plan: RenderPlan) -> bytes:
    """H.264 MP4 (yuv420p) of the frames at the plan's size and rate, as the sim engine writes them."""
    import av

    rate = Fraction(plan.fps).limit_denominator(1001)
    buffer = io.BytesIO()
    with av.open(buffer, mode="w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=rate, options={"preset": "veryfast", "crf": "18"})
        stream.width = plan.width
        stream.height = plan.height
        stream.pix_fmt = "yuv420p"
        stream.codec_context.time_base = 1 / rate
        for index, rgb in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            frame.pts = index
            frame.time_base = stream.codec_context.time_base
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return buffer.getvalue()


def render_mp4(image_data: bytes, plan: RenderPlan) -> bytes:
    """The whole render: the image's bytes (PNG, JPEG, …) → the MP4 Uni3C's graph loads."""
    return encode_mp4(render_frames(prepare_image(image_data, plan.width, plan.height), plan), plan)
