"""Speech-to-video lipsync: WAN 2.2 S2V and InfiniteTalk on WAN 2.1 14B, both ComfyUI-native (docs/providers.md §5a).

FantasyTalking is not built: its wav2vec loader (`DownloadAndLoadWav2VecModel`) fetches weights from the HF hub at
run time, which an offline GPU box can't do. The wrapper's MultiTalk nodes would duplicate the native InfiniteTalk
path, so only the native one is built.
"""

from __future__ import annotations

import math

from router.workflows.common import (
    INPUT_FILES,
    BuildContext,
    diffusion_model,
    ksampler,
    load_image,
    save_video,
    wan_text,
)
from router.workflows.graph import Graph, Link
from router.workflows.wan import WAN21_MULTIPLE

# video_wan2_2_14B_s2v renders in chunks of 77 frames (20 latents), each extending the last.
S2V_CHUNK_LATENTS = 20
# The template decodes [first latent, all latents] and drops the first 3 frames: 4T+1 decoded, 4T-2 kept.
S2V_DROPPED_FRAMES = 3
# video_wan2_1_infinitetalk: 9 motion frames, audio scale 1.
INFINITETALK_MOTION_FRAMES = 9
INFINITETALK_AUDIO_SCALE = 1.0


def _latents_to_length(latents: int) -> int:
    return 4 * (latents - 1) + 1


def _audio(g: Graph, ctx: BuildContext) -> tuple[Link, Link]:
    """(the audio, its encoder output)."""
    encoder = g.add("AudioEncoderLoader", audio_encoder_name=ctx.file("audio_encoder"))
    audio = g.add("LoadAudio", audio=INPUT_FILES["audio"])
    encoded = g.add("AudioEncoderEncode", audio_encoder=encoder.out(), audio=audio.out())
    return audio.out(), encoded.out()


def wan22_s2v(ctx: BuildContext) -> Graph:
    """video_wan2_2_14B_s2v: WanSoundImageToVideo, then WanSoundImageToVideoExtend per further chunk, latents
    concatenated; decoded the template's way and cut to exactly the delivered frame count (any count)."""
    g = Graph()
    width, height = ctx.size(WAN21_MULTIPLE)
    frames = ctx.delivered.frames
    text = wan_text(g, ctx)
    model = diffusion_model(g, ctx.file("s2v"), ctx.sampling.shift)
    audio, encoded = _audio(g, ctx)
    image = load_image(g, width, height)
    latents_needed = math.ceil((frames + S2V_DROPPED_FRAMES - 1) / 4)
    chunk = min(latents_needed, S2V_CHUNK_LATENTS)
    first = g.add("WanSoundImageToVideo", positive=text.positive, negative=text.negative, vae=text.vae.out(),
                  width=width, height=height, length=_latents_to_length(chunk), batch_size=1,
                  audio_encoder_output=encoded, ref_image=image)
    video = ksampler(g, ctx, model, first.out(0), first.out(1), first.out(2))
    remaining = latents_needed - chunk
    while remaining > 0:
        chunk = min(remaining, S2V_CHUNK_LATENTS)
        extend = g.add("WanSoundImageToVideoExtend", positive=text.positive, negative=text.negative,
                       vae=text.vae.out(), length=_latents_to_length(chunk), video_latent=video,
                       audio_encoder_output=encoded, ref_image=image)
        more = ksampler(g, ctx, model, extend.out(0), extend.out(1), extend.out(2))
        video = g.add("LatentConcat", samples1=video, samples2=more, dim="t").out()
        remaining -= chunk
    head = g.add("LatentCut", samples=video, dim="t", index=0, amount=1)
    padded = g.add("LatentConcat", samples1=head.out(), samples2=video, dim="t")
    decoded = g.add("VAEDecode", samples=padded.out(), vae=text.vae.out())
    kept = g.add("ImageFromBatch", image=decoded.out(), batch_index=S2V_DROPPED_FRAMES, length=frames)
    save_video(g, ctx, kept.out(), audio=audio)
    return g


def infinitetalk(ctx: BuildContext) -> Graph:
    """video_wan2_1_infinitetalk, one speaker: the I2V 14B model patched by WanInfiniteTalkToVideo.

    InfiniteTalk's audio features run at 25 fps (the template's CreateVideo); at another delivered fps the lips
    drift from the audio, so the offer should deliver 25 fps for s2v.
    """
    g = Graph()
    width, height = ctx.size(WAN21_MULTIPLE)
    text = wan_text(g, ctx)
    base = diffusion_model(g, ctx.file("i2v"), None)
    patch = g.add("ModelPatchLoader", name=ctx.file("model_patch"))
    audio, encoded = _audio(g, ctx)
    talk = g.add("WanInfiniteTalkToVideo", mode="single_speaker", model=base, model_patch=patch.out(),
                 positive=text.positive, negative=text.negative, vae=text.vae.out(), width=width, height=height,
                 length=ctx.wan_length(), start_image=load_image(g, width, height), audio_encoder_output_1=encoded,
                 motion_frame_count=INFINITETALK_MOTION_FRAMES, audio_scale=INFINITETALK_AUDIO_SCALE)
    samples = ksampler(g, ctx, talk.out(0), talk.out(1), talk.out(2), talk.out(3))
    save_video(g, ctx, g.add("VAEDecode", samples=samples, vae=text.vae.out()).out(), audio=audio)
    return g
