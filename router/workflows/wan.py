"""WAN text- and image-to-video: 2.1 (1.3B, 14B, Fun-InP), 2.2 A14B two-stage, 2.2 TI2V 5B (docs/providers.md §5a)."""

from __future__ import annotations

from router.models.common import Mode
from router.workflows.common import (
    BuildContext,
    clip_vision,
    diffusion_model,
    ksampler,
    load_image,
    save_video,
    wan_text,
)
from router.workflows.graph import Graph, Link

# WAN 2.1's VAE compresses 8x spatially; the 2.2 5B VAE 16x (Wan22ImageToVideoLatent steps width by 32).
WAN21_MULTIPLE = 8
WAN22_5B_MULTIPLE = 16
# The second stage runs to the end whatever the step count (the templates' 10000).
LAST_STEP = 10000


def wan21_t2v(ctx: BuildContext) -> Graph:
    """text_to_video_wan: UNET + umt5 + EmptyHunyuanLatentVideo → KSampler."""
    g = Graph()
    width, height = ctx.size(WAN21_MULTIPLE)
    text = wan_text(g, ctx)
    model = diffusion_model(g, ctx.file("t2v"), ctx.sampling.shift)
    latent = g.add("EmptyHunyuanLatentVideo", width=width, height=height, length=ctx.wan_length(), batch_size=1)
    samples = ksampler(g, ctx, model, text.positive, text.negative, latent.out())
    save_video(g, ctx, g.add("VAEDecode", samples=samples, vae=text.vae.out()).out())
    return g


def wan21_i2v(ctx: BuildContext) -> Graph:
    """image_to_video_wan: the 14B I2V model with CLIP vision (the 720p checkpoint at 720p and up, when listed)."""
    width, height = ctx.size(WAN21_MULTIPLE)
    role = "i2v_720p" if min(width, height) >= 720 and ctx.models.has(ctx.model, "i2v_720p") else "i2v"
    return _wan21_from_image(ctx, "WanImageToVideo", role)


def wan21_fun_inp_i2v(ctx: BuildContext) -> Graph:
    """wan2.1_fun_inp: the 1.3B Fun-InP model, start image only."""
    return _wan21_from_image(ctx, "WanFunInpaintToVideo", "i2v")


def _wan21_from_image(ctx: BuildContext, node: str, role: str) -> Graph:
    """A WAN 2.1 start-image graph; the two templates differ only in the conditioning node and the model file."""
    g = Graph()
    width, height = ctx.size(WAN21_MULTIPLE)
    text = wan_text(g, ctx)
    model = diffusion_model(g, ctx.file(role), ctx.sampling.shift)
    image = load_image(g, width, height)
    wan = g.add(node, positive=text.positive, negative=text.negative, vae=text.vae.out(), width=width,
                height=height, length=ctx.wan_length(), batch_size=1, clip_vision_output=clip_vision(g, ctx, image),
                start_image=image)
    samples = ksampler(g, ctx, model, wan.out(0), wan.out(1), wan.out(2))
    save_video(g, ctx, g.add("VAEDecode", samples=samples, vae=text.vae.out()).out())
    return g


def wan22_14b(ctx: BuildContext) -> Graph:
    """video_wan2_2_14B_t2v / _i2v: high-noise model for the first half of the steps, low-noise for the rest."""
    g = Graph()
    width, height = ctx.size(WAN21_MULTIPLE)
    text = wan_text(g, ctx)
    prefix = "i2v" if ctx.request.mode is Mode.I2V else "t2v"
    sampling = ctx.sampling
    high = diffusion_model(g, ctx.file(f"{prefix}_high"), sampling.shift)
    low = diffusion_model(g, ctx.file(f"{prefix}_low"), sampling.shift)
    positive, negative = text.positive, text.negative
    if prefix == "i2v":
        wan = g.add("WanImageToVideo", positive=positive, negative=negative, vae=text.vae.out(), width=width,
                    height=height, length=ctx.wan_length(), batch_size=1, start_image=load_image(g, width, height))
        positive, negative, latent = wan.out(0), wan.out(1), wan.out(2)
    else:
        latent = g.add("EmptyHunyuanLatentVideo", width=width, height=height, length=ctx.wan_length(),
                       batch_size=1).out()
    switch = sampling.switch_step()
    common = {"steps": sampling.steps, "cfg": sampling.cfg, "sampler_name": sampling.sampler,
              "scheduler": sampling.scheduler, "positive": positive, "negative": negative}
    first = g.add("KSamplerAdvanced", model=high, add_noise="enable", noise_seed=ctx.seed, latent_image=latent,
                  start_at_step=0, end_at_step=switch, return_with_leftover_noise="enable", **common)
    second = g.add("KSamplerAdvanced", model=low, add_noise="disable", noise_seed=ctx.seed, latent_image=first.out(),
                   start_at_step=switch, end_at_step=LAST_STEP, return_with_leftover_noise="disable", **common)
    save_video(g, ctx, g.add("VAEDecode", samples=second.out(), vae=text.vae.out()).out())
    return g


def wan22_5b(ctx: BuildContext) -> Graph:
    """video_wan2_2_5B_ti2v: one model for text and image; the image, when given, is the latent's first frame."""
    g = Graph()
    width, height = ctx.size(WAN22_5B_MULTIPLE)
    text = wan_text(g, ctx)
    model = diffusion_model(g, ctx.file("ti2v"), ctx.sampling.shift)
    start: Link | None = load_image(g, width, height) if ctx.request.mode is Mode.I2V else None
    latent = g.add("Wan22ImageToVideoLatent", vae=text.vae.out(), width=width, height=height,
                   length=ctx.wan_length(), batch_size=1, start_image=start)
    samples = ksampler(g, ctx, model, text.positive, text.negative, latent.out())
    save_video(g, ctx, g.add("VAEDecode", samples=samples, vae=text.vae.out()).out())
    return g
