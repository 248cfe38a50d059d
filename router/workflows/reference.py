"""WAN's fine-tuned families on ComfyUI's core nodes (0.29.0 `comfy_extras/nodes_wan.py`): Phantom (subject reference
images → video), first-last-frame (FLF2V), WAN 2.2 Animate (a character driven by a video) and HuMo (audio-driven,
identity image optional). Input names, ranges and outputs are those of the real server's /object_info.

Sides: these nodes step width and height by 16, so the offers list sizes that are multiples of 16.
"""

from __future__ import annotations

from router.workflows.common import (
    INPUT_FILES,
    BuildContext,
    WorkflowError,
    clip_vision,
    diffusion_model,
    ksampler,
    load_image,
    save_video,
    wan_text,
)
from router.workflows.graph import Graph, Link

# WanPhantomSubjectToVideo, WanFirstLastFrameToVideo, WanAnimateToVideo and WanHuMoImageToVideo: "step": 16.
WAN_NODE_MULTIPLE = 16
# WanAnimateToVideo: frames carried over when continuing a motion (its default; unused on a first chunk).
ANIMATE_CONTINUE_FRAMES = 5


def _reference_files(ctx: BuildContext) -> list[str]:
    count = len(ctx.request.reference_images or ())
    if not count:
        raise WorkflowError("r2v needs reference_images")
    return [INPUT_FILES[f"reference_image_{index}"] for index in range(1, count + 1)]


def _decode_and_save(g: Graph, ctx: BuildContext, samples: Link, vae: Link, audio: Link | None = None) -> None:
    save_video(g, ctx, g.add("VAEDecode", samples=samples, vae=vae).out(), audio=audio)


def phantom_r2v(ctx: BuildContext) -> Graph:
    """Phantom-Wan 14B (a WAN 2.1 T2V fine-tune): the reference images, each scaled to the delivered size and batched,
    condition WanPhantomSubjectToVideo; sampled against its text-only negative (`negative_text`), which keeps the
    subjects in (the image-conditioned negative, `negative_img_text`, would cancel them)."""
    g = Graph()
    width, height = ctx.size(WAN_NODE_MULTIPLE)
    text = wan_text(g, ctx)
    model = diffusion_model(g, ctx.file("r2v"), ctx.sampling.shift)
    images: Link | None = None
    for file in _reference_files(ctx):
        image = load_image(g, width, height, file)
        images = image if images is None else g.add("ImageBatch", image1=images, image2=image).out()
    phantom = g.add("WanPhantomSubjectToVideo", positive=text.positive, negative=text.negative, vae=text.vae.out(),
                    width=width, height=height, length=ctx.wan_length(), batch_size=1, images=images)
    samples = ksampler(g, ctx, model, phantom.out(0), phantom.out(1), phantom.out(3))
    _decode_and_save(g, ctx, samples, text.vae.out())
    return g


def wan21_flf2v(ctx: BuildContext) -> Graph:
    """WAN 2.1 FLF2V 14B (720p): the first and last frames, each with its CLIP vision encoding, in
    WanFirstLastFrameToVideo."""
    g = Graph()
    width, height = ctx.size(WAN_NODE_MULTIPLE)
    text = wan_text(g, ctx)
    model = diffusion_model(g, ctx.file("flf2v"), ctx.sampling.shift)
    first = load_image(g, width, height)
    last = load_image(g, width, height, INPUT_FILES["last_image"])
    wan = g.add("WanFirstLastFrameToVideo", positive=text.positive, negative=text.negative, vae=text.vae.out(),
                width=width, height=height, length=ctx.wan_length(), batch_size=1, start_image=first, end_image=last,
                clip_vision_start_image=clip_vision(g, ctx, first), clip_vision_end_image=clip_vision(g, ctx, last))
    samples = ksampler(g, ctx, model, wan.out(0), wan.out(1), wan.out(2))
    _decode_and_save(g, ctx, samples, text.vae.out())
    return g


def wan22_animate(ctx: BuildContext) -> Graph:
    """WAN 2.2 Animate 14B, one chunk: the character image (`image`, also CLIP-vision encoded) moved by the driving
    `video`, given to WanAnimateToVideo as its pose video. Core ComfyUI has no pose extractor (the official template
    runs DWPose from a custom node pack), so the driving video should be a pose render; a plain video conditions the
    motion less precisely. The node prepends the reference to the latent: its `trim_latent` output cuts it off after
    sampling."""
    g = Graph()
    width, height = ctx.size(WAN_NODE_MULTIPLE)
    text = wan_text(g, ctx)
    model = diffusion_model(g, ctx.file("animate"), ctx.sampling.shift)
    character = load_image(g, width, height)
    video = g.add("LoadVideo", file=INPUT_FILES["video"])
    frames = g.add("GetVideoComponents", video=video.out())
    pose = g.add("ImageScale", image=frames.out(0), upscale_method="lanczos", width=width, height=height,
                 crop="center")
    animate = g.add("WanAnimateToVideo", positive=text.positive, negative=text.negative, vae=text.vae.out(),
                    width=width, height=height, length=ctx.wan_length(), batch_size=1,
                    continue_motion_max_frames=ANIMATE_CONTINUE_FRAMES, video_frame_offset=0,
                    clip_vision_output=clip_vision(g, ctx, character), reference_image=character,
                    pose_video=pose.out())
    samples = ksampler(g, ctx, model, animate.out(0), animate.out(1), animate.out(2))
    trimmed = g.add("TrimVideoLatent", samples=samples, trim_amount=animate.out(3))
    _decode_and_save(g, ctx, trimmed.out(), text.vae.out())
    return g


def humo_s2v(ctx: BuildContext) -> Graph:
    """HuMo 17B: speech-driven video from the audio (Whisper features), with the request's image as the identity
    reference when it has one; without one HuMo renders a person from the prompt alone."""
    g = Graph()
    width, height = ctx.size(WAN_NODE_MULTIPLE)
    text = wan_text(g, ctx)
    model = diffusion_model(g, ctx.file("s2v"), ctx.sampling.shift)
    encoder = g.add("AudioEncoderLoader", audio_encoder_name=ctx.file("audio_encoder"))
    audio = g.add("LoadAudio", audio=INPUT_FILES["audio"])
    encoded = g.add("AudioEncoderEncode", audio_encoder=encoder.out(), audio=audio.out())
    ref: Link | None = load_image(g, width, height) if ctx.request.image else None
    humo = g.add("WanHuMoImageToVideo", positive=text.positive, negative=text.negative, vae=text.vae.out(),
                 width=width, height=height, length=ctx.wan_length(), batch_size=1,
                 audio_encoder_output=encoded.out(), ref_image=ref)
    samples = ksampler(g, ctx, model, humo.out(0), humo.out(1), humo.out(2))
    _decode_and_save(g, ctx, samples, text.vae.out(), audio=audio.out())
    return g
