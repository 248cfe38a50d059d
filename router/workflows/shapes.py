"""What a graph renders, worked out from its numbers alone: size, frames and fps at each SaveVideo.

The ComfyUI sandbox renders its output at exactly these figures, so a builder that asks for the wrong length or
size produces a video that fails the router's output check, as it would on the real GPU. The rules follow the
nodes' documented arithmetic: WAN latents hold ((length - 1) // 4) + 1 steps of time and decode to 4 frames per
step after the first; an SD latent batch decodes to one frame per image.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

ImageSize = Callable[[str], tuple[int, int] | None]


@dataclass(frozen=True)
class Latent:
    width: int
    height: int
    t: int  # temporal latent steps (video) or batch size (images)
    video: bool

    @property
    def frames(self) -> int:
        return (self.t - 1) * 4 + 1 if self.video else self.t


@dataclass(frozen=True)
class Images:
    width: int
    height: int
    frames: int


@dataclass(frozen=True)
class VideoShape:
    width: int
    height: int
    frames: int
    fps: float


def latent_steps(length: int) -> int:
    return (length - 1) // 4 + 1


class _Args:
    def __init__(self, shapes: GraphShapes, inputs: Mapping[str, Any]) -> None:
        self._shapes = shapes
        self._inputs = inputs

    def __call__(self, name: str) -> Any:
        value = self._inputs.get(name)
        if isinstance(value, list) and len(value) == 2:
            outputs = self._shapes.outputs(str(value[0]))
            slot = value[1]
            return outputs[slot] if isinstance(slot, int) and 0 <= slot < len(outputs) else None
        return value

    def int(self, name: str) -> int | None:
        value = self(name)
        return value if isinstance(value, int) and not isinstance(value, bool) else None


def _video_latent(args: _Args) -> Latent | None:
    width, height, length = args.int("width"), args.int("height"), args.int("length")
    if width is None or height is None or length is None:
        return None
    return Latent(width, height, latent_steps(length), video=True)


def _conditioned(args: _Args) -> tuple[Any, ...]:
    return (None, None, _video_latent(args))


def _vace(args: _Args) -> tuple[Any, ...]:
    latent = _video_latent(args)
    # A reference image is encoded in front of the video and trimmed after sampling (trim_latent).
    trim = 1 if args("reference_image") is not None else 0
    return (None, None, replace(latent, t=latent.t + trim) if latent else None, trim)


def _sound_extend(args: _Args) -> tuple[Any, ...]:
    previous, length = args("video_latent"), args.int("length")
    if not isinstance(previous, Latent) or length is None:
        return (None, None, None)
    return (None, None, Latent(previous.width, previous.height, latent_steps(length), video=True))


def _empty_image_latent(args: _Args) -> tuple[Any, ...]:
    width, height, batch = args.int("width"), args.int("height"), args.int("batch_size")
    if width is None or height is None or batch is None:
        return (None,)
    return (Latent(width, height, batch, video=False),)


def _trim(args: _Args) -> tuple[Any, ...]:
    latent, amount = args("samples"), args.int("trim_amount")
    if not isinstance(latent, Latent) or amount is None:
        return (None,)
    return (replace(latent, t=max(1, latent.t - amount)),)


def _concat(args: _Args) -> tuple[Any, ...]:
    first, second = args("samples1"), args("samples2")
    if not isinstance(first, Latent) or not isinstance(second, Latent):
        return (None,)
    return (replace(first, t=first.t + second.t) if args("dim") in ("t", "-t") else first,)


def _cut(args: _Args) -> tuple[Any, ...]:
    latent, index, amount = args("samples"), args.int("index"), args.int("amount")
    if not isinstance(latent, Latent) or index is None or amount is None:
        return (None,)
    if args("dim") != "t":
        return (latent,)
    start = index if index >= 0 else max(0, latent.t + index)
    return (replace(latent, t=max(1, min(amount, latent.t - start))),)


def _decode(args: _Args) -> tuple[Any, ...]:
    latent = args("samples")
    return (Images(latent.width, latent.height, latent.frames) if isinstance(latent, Latent) else None,)


def _from_batch(args: _Args) -> tuple[Any, ...]:
    images, index, length = args("image"), args.int("batch_index"), args.int("length")
    if not isinstance(images, Images) or index is None or length is None:
        return (None,)
    start = min(index, images.frames - 1)
    return (replace(images, frames=min(length, images.frames - start)),)


def _scale(args: _Args) -> tuple[Any, ...]:
    images, width, height = args("image"), args.int("width"), args.int("height")
    if not isinstance(images, Images) or width is None or height is None:
        return (None,)
    # ImageScale keeps the aspect when one side is 0.
    if width == 0:
        width = round(images.width * height / images.height)
    if height == 0:
        height = round(images.height * width / images.width)
    return (Images(width, height, images.frames),)


def _repeat(args: _Args) -> tuple[Any, ...]:
    images, amount = args("image"), args.int("amount")
    if not isinstance(images, Images) or amount is None:
        return (None,)
    return (replace(images, frames=images.frames * amount),)


def _wrapper_embeds(args: _Args) -> Latent | None:
    """ComfyUI-WanVideoWrapper's image embeds carry the target latent shape (width, height, num_frames)."""
    width, height, frames = args.int("width"), args.int("height"), args.int("num_frames")
    if width is None or height is None or frames is None:
        return None
    return Latent(width, height, latent_steps(frames), video=True)


def _wrapper_window(args: _Args) -> tuple[Any, ...]:
    """WanVideoLongCatAvatarExtendEmbeds: `num_frames` new frames at the size of `prev_latents`."""
    previous, frames = args("prev_latents"), args.int("num_frames")
    if not isinstance(previous, Latent) or frames is None:
        return (None, None)
    return (Latent(previous.width, previous.height, latent_steps(frames), video=True), None)


def _wrapper_encode(args: _Args) -> tuple[Any, ...]:
    images = args("image")
    if not isinstance(images, Images):
        return (None,)
    return (Latent(images.width, images.height, latent_steps(images.frames), video=True),)


def _passthrough(name: str) -> Callable[[_Args], tuple[Any, ...]]:
    return lambda args: (args(name),)


def _create_video(args: _Args) -> tuple[Any, ...]:
    images, fps = args("images"), args("fps")
    if not isinstance(images, Images) or not isinstance(fps, int | float):
        return (None,)
    return (VideoShape(images.width, images.height, images.frames, float(fps)),)


_RULES: dict[str, Callable[[_Args], tuple[Any, ...]]] = {
    "EmptyLatentImage": _empty_image_latent,
    "EmptyHunyuanLatentVideo": lambda args: (_video_latent(args),),
    "Wan22ImageToVideoLatent": lambda args: (_video_latent(args),),
    "WanImageToVideo": _conditioned,
    "WanFunInpaintToVideo": _conditioned,
    "WanCameraImageToVideo": _conditioned,
    "WanSoundImageToVideo": _conditioned,
    "WanSoundImageToVideoExtend": _sound_extend,
    "WanVaceToVideo": _vace,
    "WanPhantomSubjectToVideo": lambda args: (None, None, None, _video_latent(args)),
    "WanFirstLastFrameToVideo": _conditioned,
    "WanHuMoImageToVideo": _conditioned,
    # Like VACE: the reference image's latent goes in front and trim_latent cuts it off after sampling.
    "WanAnimateToVideo": lambda args: (*_vace(args), 0, args.int("length")),
    "WanInfiniteTalkToVideo": lambda args: (None, None, None, _video_latent(args), 0),
    "WanCameraEmbedding": lambda args: (None, args.int("width"), args.int("height"), args.int("length")),
    "KSampler": _passthrough("latent_image"),
    "KSamplerAdvanced": _passthrough("latent_image"),
    "SamplerCustomAdvanced": lambda args: (args("latent_image"), args("latent_image")),
    "TrimVideoLatent": _trim,
    "LatentConcat": _concat,
    "LatentCut": _cut,
    "VAEDecode": _decode,
    "ImageFromBatch": _from_batch,
    "ImageScale": _scale,
    "RepeatImageBatch": _repeat,
    "MaskToImage": _passthrough("mask"),
    "ImageToMask": _passthrough("image"),
    "InvertMask": _passthrough("mask"),
    "ImageCompositeMasked": _passthrough("destination"),
    "CreateVideo": _create_video,
    # ComfyUI-WanVideoWrapper (router/workflows/wrapper.py): the samplers render the embeds' target shape.
    "WanVideoEmptyEmbeds": lambda args: (_wrapper_embeds(args),),
    "WanVideoImageToVideoEncode": lambda args: (_wrapper_embeds(args),),
    "WanVideoLongCatAvatarExtendEmbeds": _wrapper_window,
    "WanVideoSampler": lambda args: (args("image_embeds"), args("image_embeds")),
    "WanVideoSamplerv2": lambda args: (args("image_embeds"), args("image_embeds")),
    "WanVideoDiffusionForcingSampler": _passthrough("image_embeds"),
    "WanVideoEncode": _wrapper_encode,
    "WanVideoDecode": _decode,
}


class GraphShapes:
    """Evaluates the shape-bearing outputs of an API-format graph; anything it can't work out is None."""

    def __init__(self, graph: Mapping[str, Any], image_size: ImageSize | None = None) -> None:
        self._graph = graph
        self._image_size = image_size or (lambda _name: None)
        self._memo: dict[str, tuple[Any, ...]] = {}
        self._visiting: set[str] = set()

    def outputs(self, node_id: str) -> tuple[Any, ...]:
        if node_id in self._memo:
            return self._memo[node_id]
        node = self._graph.get(node_id)
        if not isinstance(node, Mapping) or node_id in self._visiting:
            return ()
        self._visiting.add(node_id)
        try:
            result = self._evaluate(node)
        finally:
            self._visiting.discard(node_id)
        self._memo[node_id] = result
        return result

    def _evaluate(self, node: Mapping[str, Any]) -> tuple[Any, ...]:
        class_type = node.get("class_type")
        args = _Args(self, node.get("inputs") or {})
        if class_type in ("LoadImage", "LoadImageMask"):
            name = args("image")
            size = self._image_size(name) if isinstance(name, str) else None
            return (Images(*size, frames=1) if size else None, None)
        rule = _RULES.get(str(class_type))
        return rule(args) if rule else ()

    def video(self, save_node_id: str) -> VideoShape | None:
        """What a SaveVideo node writes."""
        node = self._graph.get(save_node_id) or {}
        value = _Args(self, node.get("inputs") or {})("video")
        return value if isinstance(value, VideoShape) else None
