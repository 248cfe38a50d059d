"""Uni3C's render_video (router/media/camera_render.py): the image as a point cloud seen along each camera preset's
path — pans move it by the stated pixels, zooms scale it, rolls turn it, unseen areas stay black — and the MP4 has
the size, frames and fps asked."""

from __future__ import annotations

import io
import json
import math
import subprocess
import sys

import av
import numpy as np
import pytest
from PIL import Image

from router.media.camera_render import (
    DOLLY_SHARE,
    META_KEY,
    PAN_SHARE,
    ROLL_RAD,
    CameraRenderError,
    RenderPlan,
    camera_path,
    find_plan,
    prepare_image,
    render_frames,
    render_mp4,
)
from router.media.probe import check_against_spec, probe
from router.models.request import CameraMotion

W, H = 256, 160


def texture(width: int = W, height: int = H, seed: int = 3) -> np.ndarray:
    """Random blocks of 4x4 pixels: every shift is recognisable, and no pixel is pure black."""
    blocks = np.random.default_rng(seed).integers(30, 256, size=(height // 4 + 1, width // 4 + 1, 3), dtype=np.uint8)
    return np.repeat(np.repeat(blocks, 4, axis=0), 4, axis=1)[:height, :width]


def frames_of(image: np.ndarray, motion: CameraMotion, speed: float = 1.0, frames: int = 9) -> list[np.ndarray]:
    height, width = image.shape[:2]
    return list(render_frames(image, RenderPlan(motion, speed, width, height, frames, 16.0)))


def black(frame: np.ndarray) -> np.ndarray:
    return np.asarray(frame.sum(axis=-1) == 0)


def centroid(frame: np.ndarray) -> tuple[float, float]:
    """Centroid of the bright pixels, relative to the frame centre."""
    ys, xs = np.nonzero(frame[..., 0] > 128)
    height, width = frame.shape[:2]
    return float(xs.mean() + 0.5 - width / 2), float(ys.mean() + 0.5 - height / 2)


def dot(dx: int, dy: int, size: int = 4) -> np.ndarray:
    image = np.zeros((H, W, 3), dtype=np.uint8)
    x, y = W // 2 + dx - size // 2, H // 2 + dy - size // 2
    image[y:y + size, x:x + size] = 255
    return image


@pytest.mark.parametrize("motion", list(CameraMotion))
def test_the_first_frame_is_the_image_itself(motion: CameraMotion) -> None:
    image = texture()
    assert np.array_equal(frames_of(image, motion)[0], image)


@pytest.mark.parametrize(("motion", "dx", "dy"), [
    (CameraMotion.PAN_LEFT, 1, 0), (CameraMotion.PAN_RIGHT, -1, 0),
    (CameraMotion.PAN_UP, 0, 1), (CameraMotion.PAN_DOWN, 0, -1),
])
def test_a_pan_moves_the_content_by_the_stated_share_of_the_frame(motion: CameraMotion, dx: int, dy: int) -> None:
    """The camera moves left, so the scene slides right: by PAN_SHARE x speed of the frame by the last frame, half
    of that half way, and what the first frame never saw comes in black."""
    image = texture()
    speed = 1.5
    rendered = frames_of(image, motion, speed=speed, frames=9)
    shift_x, shift_y = round(PAN_SHARE * speed * W) * dx, round(PAN_SHARE * speed * H) * dy

    last, middle = rendered[-1], rendered[4]
    assert np.array_equal(last, _shifted(image, shift_x, shift_y))
    assert np.array_equal(middle, _shifted(image, shift_x // 2, shift_y // 2))
    assert black(last).mean() == pytest.approx(abs(shift_x) / W + abs(shift_y) / H)


def _shifted(image: np.ndarray, sx: int, sy: int) -> np.ndarray:
    out = np.zeros_like(image)
    height, width = image.shape[:2]
    out[max(sy, 0):height + min(sy, 0), max(sx, 0):width + min(sx, 0)] = \
        image[max(-sy, 0):height + min(-sy, 0), max(-sx, 0):width + min(-sx, 0)]
    return out


@pytest.mark.parametrize(("motion", "speed"), [(CameraMotion.ZOOM_IN, 1.0), (CameraMotion.ZOOM_IN, 2.0),
                                               (CameraMotion.ZOOM_OUT, 1.0), (CameraMotion.ZOOM_OUT, 0.5)])
def test_a_zoom_scales_the_content_about_the_centre(motion: CameraMotion, speed: float) -> None:
    """A dolly of DOLLY_SHARE x speed of the way to the plane scales by 1 / (1 - that) (in) or 1 / (1 + that) (out):
    x1.5 and x3 in, x0.75 and x0.857 out, for a square off centre both in size and in distance from the centre."""
    dolly = DOLLY_SHARE * speed * (1 if motion is CameraMotion.ZOOM_IN else -1)
    scale = 1 / (1 - dolly)
    image = dot(24, 16, size=8)
    last = frames_of(image, motion, speed=speed)[-1]

    x, y = centroid(last)
    assert (x, y) == (pytest.approx(24 * scale, abs=0.6), pytest.approx(16 * scale, abs=0.6))
    bright = last[..., 0] > 128
    side = math.sqrt(bright.sum())
    assert side == pytest.approx(8 * scale, abs=1.0)
    if motion is CameraMotion.ZOOM_OUT:  # the border the image doesn't cover is black
        border = round(W * (1 - scale) / 2) - 1
        assert black(last)[:, :border].all() and black(last)[:, W - border:].all()
    else:  # zooming in, the whole frame is covered
        assert not black(frames_of(texture(), motion, speed=speed)[-1]).any()


@pytest.mark.parametrize(("motion", "sign"), [(CameraMotion.ROTATE_CW, 1), (CameraMotion.ROTATE_CCW, -1)])
def test_a_roll_turns_the_content_about_the_centre(motion: CameraMotion, sign: int) -> None:
    """Fun-Camera's ClockWise rolls the camera clockwise, so the content turns anticlockwise on screen (a point right
    of the centre rises), by 60° x speed; the corners the image no longer covers go black."""
    last = frames_of(dot(60, 0), motion)[-1]
    x, y = centroid(last)

    assert x == pytest.approx(60 * math.cos(ROLL_RAD), abs=1.0)
    assert y == pytest.approx(-sign * 60 * math.sin(ROLL_RAD), abs=1.0)
    rolled = frames_of(texture(), motion)[-1]
    assert black(rolled)[0, 0] and black(rolled)[-1, -1] and not black(rolled)[H // 2, W // 2]


def test_static_holds_still_and_speed_scales_the_path() -> None:
    image = texture()
    assert all(np.array_equal(frame, image) for frame in frames_of(image, CameraMotion.STATIC))
    slow = camera_path(RenderPlan(CameraMotion.PAN_RIGHT, 0.5, W, H, 5, 16.0))[-1].centre
    fast = camera_path(RenderPlan(CameraMotion.PAN_RIGHT, 1.0, W, H, 5, 16.0))[-1].centre
    assert fast[0] == pytest.approx(2 * slow[0]) and fast[0] > 0


def test_a_depth_map_is_splatted_with_occlusion_and_leaves_disocclusions_black() -> None:
    """The general path (a depth model's map): the plane's own depth gives the plane's render (up to the colours of
    the sub-pixel points it splats); a nearer square moves further than the background under a pan and uncovers
    background no camera saw, which stays black."""
    image = texture()
    plane = np.ones((H, W), dtype=np.float32)
    plan = RenderPlan(CameraMotion.PAN_LEFT, 0.5, W, H, 5, 16.0)
    for motion in (CameraMotion.PAN_LEFT, CameraMotion.ZOOM_IN):
        both = RenderPlan(motion, 1.0, W, H, 5, 16.0)
        splatted = list(render_frames(image, both, depth=plane))[-1]
        cast = list(render_frames(image, both))[-1]
        assert np.array_equal(black(splatted), black(cast))
        assert np.abs(splatted.astype(int) - cast.astype(int)).mean() < 10

    near = plane.copy()
    near[60:100, 100:140] = 0.5  # twice as near: moves twice as far
    layered = list(render_frames(image, plan, depth=near))[-1].astype(int)
    shift = round(PAN_SHARE * 0.5 * W)  # the background's 32 px; the square's 64
    moved = layered[64:96, 104 + 2 * shift:136 + 2 * shift]
    assert np.abs(moved - image[64:96, 104:136]).mean() < 10  # the square, in front, where it moved
    assert black(layered)[64:96, 104 + shift:96 + 2 * shift].all()  # the background it hid, seen by no one
    assert not black(layered)[:50, shift:].any()


def test_the_mp4_has_the_frames_size_and_fps_asked_and_shows_the_pan() -> None:
    png = io.BytesIO()
    Image.fromarray(texture(320, 200)).save(png, format="PNG")
    plan = RenderPlan(CameraMotion.PAN_RIGHT, 1.0, 256, 160, 17, 12.0)

    video = render_mp4(png.getvalue(), plan)

    result = probe(video)
    assert (result.container, result.codec, result.pix_fmt) == ("mp4", "h264", "yuv420p")
    assert check_against_spec(result, 256, 160, 17, 12.0) == []
    with av.open(io.BytesIO(video)) as container:
        decoded = [frame.to_ndarray(format="rgb24").astype(np.int32) for frame in container.decode(video=0)]
    first, last = decoded[0], decoded[-1]
    errors = {shift: np.abs(last[:, :256 - shift - 8] - first[:, shift:256 - 8]).mean() for shift in range(40, 90)}
    assert min(errors, key=lambda shift: errors[shift]) == round(PAN_SHARE * 256)  # content moved left 64 px
    assert last[:, -60:].max() < 24  # the uncovered right edge is black (give or take the codec)


def test_the_image_is_cut_and_scaled_as_the_graphs_imagescale_does() -> None:
    """crop "center": a 2:1 image to a square keeps the middle half (the red bands at the sides are cut off)."""
    wide = np.zeros((100, 200, 3), dtype=np.uint8)
    wide[:, :50] = (255, 0, 0)
    wide[:, 150:] = (255, 0, 0)
    wide[:, 50:150] = (0, 200, 0)
    png = io.BytesIO()
    Image.fromarray(wide).save(png, format="PNG")

    square = prepare_image(png.getvalue(), 64, 64)

    assert square.shape == (64, 64, 3)
    assert square[..., 0].max() < 16 and square[..., 1].min() > 180


def test_the_plan_travels_in_the_graph_and_bad_ones_are_named() -> None:
    plan = RenderPlan(CameraMotion.ZOOM_OUT, 0.7, 832, 480, 33, 16.0)
    graph = {"1": {"class_type": "LoadVideo", "inputs": {"file": "x.mp4"}, "_meta": {META_KEY: plan.to_meta()}},
             "2": {"class_type": "SaveVideo", "inputs": {}}}

    assert find_plan(json.loads(json.dumps(graph))) == plan
    assert find_plan({"1": {"class_type": "LoadImage", "inputs": {}}}) is None
    with pytest.raises(CameraRenderError, match="bad hvr_camera_render plan"):
        find_plan({"1": {"class_type": "LoadVideo", "_meta": {META_KEY: {"motion": "dolly_zoom"}}}})
    with pytest.raises(CameraRenderError, match="even"):
        RenderPlan(CameraMotion.STATIC, 1.0, 831, 480, 33, 16.0)
    with pytest.raises(CameraRenderError, match="doesn't decode"):
        render_mp4(b"not an image", plan)


def test_the_module_leaves_numpy_pillow_and_pyav_unimported() -> None:
    code = ("import sys, json, router.media.camera_render, router.workflows; "
            "print(json.dumps([m for m in ('numpy', 'PIL', 'av') if m in sys.modules]))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == []
