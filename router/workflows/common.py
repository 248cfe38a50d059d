"""What every builder shares: the request as a build context, the loaders, samplers and the MP4 output."""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from router.errors import HvrError
from router.models.decision import DeliveredSpec
from router.models.offer import Offer
from router.models.request import VideoRequest
from router.workflows.graph import Graph, Link, Node
from router.workflows.models import ModelFiles
from router.workflows.presets import PRESETS, Sampling

# Names the graph gives the request's uploaded inputs. The agent uploads each input to ComfyUI under a name of its
# own and rewrites these; worker-comfyui callers send `images: [{"name": <this>, ...}]`, which it uploads as is.
# `camera_render` is no request input: the agent renders it from `image` (router/media/camera_render.py) unless sent.
INPUT_FILES = {"image": "hvr-input-image.png", "mask": "hvr-input-mask.png", "audio": "hvr-input-audio.wav",
               "last_image": "hvr-input-last-image.png", "video": "hvr-input-video.mp4",
               "camera_render": "hvr-camera-render.mp4",
               **{f"reference_image_{i}": f"hvr-input-reference-{i}.png" for i in range(1, 5)}}
OUTPUT_PREFIX = "video/hvr"
# The official WAN templates' negative prompt (text_to_video_wan and the rest), used when the request has none;
# joined with the fullwidth comma the templates use.
WAN_NEGATIVE = "\uff0c".join([
    "色调艳丽", "过曝", "静态", "细节模糊不清", "字幕", "风格", "作品", "画作", "画面", "静止", "整体发灰",
    "最差质量", "低质量", "JPEG压缩残留", "丑陋的", "残缺的", "多余的手指", "画得不好的手部", "画得不好的脸部",
    "畸形的", "毁容的", "形态畸形的肢体", "手指融合", "静止不动的画面", "杂乱的背景", "三条腿", "背景人很多",
    "倒着走",
])
SD_NEGATIVE = "blurry, low quality, watermark, text, deformed"
SEED_MAX = 2**32 - 1


class WorkflowError(HvrError, ValueError):
    """No valid graph for this request: an unsupported (model, mode), a frame count off the model's rule, a missing
    model file. The message says which."""


@dataclass(frozen=True)
class BuildContext:
    offer: Offer
    request: VideoRequest
    delivered: DeliveredSpec
    models: ModelFiles
    family: str
    seed: int

    @classmethod
    def create(cls, offer: Offer, request: VideoRequest, delivered: DeliveredSpec, models: ModelFiles,
               family: str) -> BuildContext:
        # A request without a seed gets a fresh one per build, as ComfyUI's "randomize" would.
        seed = request.seed if request.seed is not None else secrets.randbelow(SEED_MAX + 1)
        return cls(offer, request, delivered, models, family, seed)

    @property
    def sampling(self) -> Sampling:
        return PRESETS[self.family][self.request.quality]

    @property
    def model(self) -> str:
        return self.offer.model

    def file(self, role: str) -> str:
        return self.models.file(self.model, role)

    def negative(self, default: str) -> str:
        return self.request.negative_prompt if self.request.negative_prompt is not None else default

    def wan_length(self) -> int:
        """WAN's VAE packs 4 frames per latent after the first, so the frame count must be 4n+1."""
        frames = self.delivered.frames
        if frames < 1 or (frames - 1) % 4:
            raise WorkflowError(f"{self.model} renders 4n+1 frames; {frames} is not (the offer's frame rule "
                                f"should have snapped it)")
        return frames

    def size(self, multiple: int) -> tuple[int, int]:
        width, height = self.delivered.width, self.delivered.height
        if width % multiple or height % multiple:
            raise WorkflowError(f"{self.model} needs sides that are multiples of {multiple}; got {width}x{height}")
        return width, height


@dataclass(frozen=True)
class WanText:
    vae: Node
    positive: Link
    negative: Link


def wan_text(g: Graph, ctx: BuildContext, vae_role: str = "vae") -> WanText:
    clip = g.add("CLIPLoader", clip_name=ctx.file("text_encoder"), type="wan", device="default")
    vae = g.add("VAELoader", vae_name=ctx.file(vae_role))
    positive = g.add("CLIPTextEncode", text=ctx.request.prompt, clip=clip.out())
    negative = g.add("CLIPTextEncode", text=ctx.negative(WAN_NEGATIVE), clip=clip.out())
    return WanText(vae=vae, positive=positive.out(), negative=negative.out())


def diffusion_model(g: Graph, file: str, shift: float | None) -> Link:
    unet = g.add("UNETLoader", unet_name=file, weight_dtype="default")
    if shift is None:
        return unet.out()
    return g.add("ModelSamplingSD3", model=unet.out(), shift=shift).out()


def ksampler(g: Graph, ctx: BuildContext, model: Link, positive: Link, negative: Link, latent: Link) -> Link:
    s = ctx.sampling
    return g.add("KSampler", model=model, seed=ctx.seed, steps=s.steps, cfg=s.cfg, sampler_name=s.sampler,
                 scheduler=s.scheduler, positive=positive, negative=negative, latent_image=latent, denoise=1.0).out()


def load_image(g: Graph, width: int, height: int, file: str = INPUT_FILES["image"]) -> Link:
    """An input image (the request's `image` unless named), scaled and centre-cropped to the delivered size (the WAN
    nodes would stretch it)."""
    image = g.add("LoadImage", image=file)
    return g.add("ImageScale", image=image.out(), upscale_method="lanczos", width=width, height=height,
                 crop="center").out()


def clip_vision(g: Graph, ctx: BuildContext, image: Link) -> Link:
    loader = g.add("CLIPVisionLoader", clip_name=ctx.file("clip_vision"))
    return g.add("CLIPVisionEncode", clip_vision=loader.out(), image=image, crop="none").out()


def save_video(g: Graph, ctx: BuildContext, images: Link, audio: Link | None = None) -> None:
    """SaveVideo as MP4/H.264: worker-comfyui collects it (it drops VHS_VideoCombine's `gifs`)."""
    video = g.add("CreateVideo", images=images, fps=float(ctx.delivered.fps), audio=audio)
    g.add("SaveVideo", video=video.out(), filename_prefix=OUTPUT_PREFIX, format="mp4", codec="h264")
