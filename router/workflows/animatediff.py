"""AnimateDiff on SD1.5 with AnimateDiff-Evolved's gen2 nodes (docs/providers.md §5c), saved by the native SaveVideo."""

from __future__ import annotations

from router.workflows.common import SD_NEGATIVE, BuildContext, ksampler, save_video
from router.workflows.graph import Graph

# SD1.5 motion modules see 16 frames at a time; longer clips slide a 16-frame window with 4 frames of overlap
# (ADE_StandardUniformContextOptions defaults).
CONTEXT_LENGTH = 16
CONTEXT_OVERLAP = 4
SD15_MULTIPLE = 8


def animatediff_t2v(ctx: BuildContext) -> Graph:
    g = Graph()
    width, height = ctx.size(SD15_MULTIPLE)
    frames = ctx.delivered.frames
    checkpoint = g.add("CheckpointLoaderSimple", ckpt_name=ctx.file("checkpoint"))
    motion = g.add("ADE_LoadAnimateDiffModel", model_name=ctx.file("motion_model"))
    applied = g.add("ADE_ApplyAnimateDiffModelSimple", motion_model=motion.out())
    context = None
    if frames > CONTEXT_LENGTH:
        context = g.add("ADE_StandardUniformContextOptions", context_length=CONTEXT_LENGTH, context_stride=1,
                        context_overlap=CONTEXT_OVERLAP).out()
    model = g.add("ADE_UseEvolvedSampling", model=checkpoint.out(0), beta_schedule="autoselect",
                  m_models=applied.out(), context_options=context)
    positive = g.add("CLIPTextEncode", text=ctx.request.prompt, clip=checkpoint.out(1))
    negative = g.add("CLIPTextEncode", text=ctx.negative(SD_NEGATIVE), clip=checkpoint.out(1))
    # One latent image per frame: the motion module treats the batch as time.
    latent = g.add("EmptyLatentImage", width=width, height=height, batch_size=frames)
    samples = ksampler(g, ctx, model.out(), positive.out(), negative.out(), latent.out())
    save_video(g, ctx, g.add("VAEDecode", samples=samples, vae=checkpoint.out(2)).out())
    return g
