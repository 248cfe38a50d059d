"""WAN families core ComfyUI has no nodes for, on kijai/ComfyUI-WanVideoWrapper's nodes (pinned commit 088128b2,
2026-05-24; classes, inputs and ranges in `wrapper_node_schema.json`, derived from its source by
`hvr/tools/wrapper_schema.py`). The graphs follow the wrapper's own example workflows at that commit
(`example_workflows/*.json`, named per builder); core nodes load and scale the inputs and write the MP4
(`LoadImage`/`ImageScale`, `LoadAudio`, `CLIPVisionLoader`, `CreateVideo`/`SaveVideo`, so worker-comfyui collects it).

- FantasyTalking (s2v): WAN 2.1 I2V 14B 720P plus FantasyTalking's audio-projection weights
  (`FantasyTalkingModelLoader` → `WanVideoModelLoader.fantasytalking_model`), audio features from wav2vec2-base-960h
  (`FantasyTalkingWav2VecEmbeds` → `WanVideoSampler.fantasytalking_embeds`).
- SkyReels-V2 DF 14B 540P (t2v, i2v): `WanVideoDiffusionForcingSampler` on `WanVideoEmptyEmbeds`; i2v gives the
  image's latent as `prefix_samples` (the sampler writes it over the first latent frame and keeps it).
- LongCat-Video (t2v, i2v): `WanVideoSampler` on `WanVideoEmptyEmbeds`; i2v gives the image's latent as
  `extra_latents` (the example's note: "For T2V disconnect the extra_latents").
- LongCat-Avatar (s2v): audio features from chinese-wav2vec2-base (`MultiTalkWav2VecEmbeds`), the first window of
  `WanVideoLongCatAvatarExtendEmbeds` conditioned on the image's latent, sampled by `WanVideoSamplerv2`.

One render each: the extension nodes (SkyReels' prefix of the last frames, LongCat's `overlap`/`frames_processed`)
are what long-form chaining would use, and long-form is the router's (segments chained by their last frame).

wav2vec models load from a path, never from the hub, provided the box has them: `DownloadAndLoadWav2VecModel`
calls `from_pretrained` on `ComfyUI/models/transformers/<hub id>` and runs `snapshot_download` only when that
directory is missing, so the operator puts `facebook/wav2vec2-base-960h` (FantasyTalking) and
`TencentGameMate/chinese-wav2vec2-base` (LongCat-Avatar) there and runs ComfyUI with `HF_HUB_OFFLINE=1`, which makes a
missing copy fail rather than download. The single-file `Wav2VecModelLoader` (folder `wav2vec2`) can't serve
FantasyTalking: it builds MultiTalk's chinese-base model from a fixed config and returns no `processor`, which
`FantasyTalkingWav2VecEmbeds` reads. These directories are no models.yaml role (a role is one file of a folder), so
`hvr-agent models check` does not see them; docs/providers.md §5b lists them.

Every family's text goes through the wrapper's `WanVideoTextEncodeCached` (umT5-XXL, as the LongCat examples do; it
frees the encoder before sampling) and its latents through `WanVideoVAELoader`/`WanVideoEncode`/`WanVideoDecode`:
the wrapper's model, text and VAE types don't mix with core's.
"""

from __future__ import annotations

from dataclasses import dataclass

from router.models.common import Quality
from router.workflows.common import INPUT_FILES, WAN_NEGATIVE, BuildContext, load_image, save_video
from router.workflows.graph import Graph, Link, Node

# WanVideoEmptyEmbeds / WanVideoImageToVideoEncode step width and height by 16.
WRAPPER_MULTIPLE = 16
# WanVideoEncode/WanVideoDecode tiling (off) with the examples' tile figures, which the nodes require anyway.
_TILES = {"enable_vae_tiling": False, "tile_x": 272, "tile_y": 272, "tile_stride_x": 144, "tile_stride_y": 128}
# chinese-wav2vec2-base features run at twice LongCat-Avatar's video fps (its example's note: "The model uses audio
# stride 2, meaning output fps is 16 while input audio fps is 32").
LONGCAT_AUDIO_STRIDE = 2
# The first window of LongCat-Avatar: the image's latent frame is the overlap (the example's first
# WanVideoLongCatAvatarExtendEmbeds: overlap 1, frames_processed 0, ref_frame_index 10, ref_mask_frame_range 3).
LONGCAT_FIRST_OVERLAP = 1


@dataclass(frozen=True)
class Settings:
    steps: int
    cfg: float
    shift: float
    scheduler: str  # the wrapper's scheduler name (wanvideo/schedulers scheduler_list)


@dataclass(frozen=True)
class Loading:
    """How WanVideoModelLoader loads a family's weights on the studio's 24 GB card."""

    base_precision: str
    quantization: str
    blocks_to_swap: int  # transformer blocks kept in CPU memory (WanVideoBlockSwap)


def _tiers(standard: int, cfg: float, shift: float, scheduler: str) -> dict[Quality, Settings]:
    # draft about half the standard steps, premium half again, as presets.py does for the core families.
    return {Quality.DRAFT: Settings(standard // 2, cfg, shift, scheduler),
            Quality.STANDARD: Settings(standard, cfg, shift, scheduler),
            Quality.PREMIUM: Settings(standard * 3 // 2, cfg, shift, scheduler)}


PRESETS: dict[str, dict[Quality, Settings]] = {
    # wanvideo_2_1_14B_I2V_FantasyTalking_example_01: WanVideoSampler 30 steps, cfg 5, shift 5, unipc.
    "fantasytalking": _tiers(30, 5.0, 5.0, "unipc"),
    # wanvideo_2_1_14B_skyreels_diffusion_forcing_extension_example_01: 30 steps, cfg 4, shift 5, unipc.
    "skyreels_df": _tiers(30, 4.0, 5.0, "unipc"),
    # LongCat-Video's run_demo_text_to_video.py (meituan-longcat/LongCat-Video): 50 steps, guidance 4.0, flow-match
    # Euler. The wrapper's LongCat example runs the distill LoRA instead (10 steps, cfg 1, shift 12); shift 12 is
    # taken from it, a judgement for the undistilled model.
    "longcat_video": _tiers(50, 4.0, 12.0, "euler"),
    # No undistilled LongCat-Avatar settings were read; LongCat-Video's are a judgement until calibration.
    "longcat_avatar": _tiers(50, 4.0, 12.0, "euler"),
}

LOADING: dict[str, Loading] = {
    # The FantasyTalking example: fp16 base, fp8_e4m3fn weights, 15 blocks swapped.
    "fantasytalking": Loading("fp16", "fp8_e4m3fn", 15),
    # fp8 weights of the 14B DF model; 20 blocks is WanVideoBlockSwap's default (a judgement for 24 GB).
    "skyreels_df": Loading("fp16", "fp8_e4m3fn", 20),
    # "LongCat models only run with bf16 base precision" (the LongCat-Avatar example's note); "disabled" picks the
    # quantization from the weights (the loader's tooltip). 20 and 25 of LongCat's 48 blocks: the examples' figures.
    "longcat_video": Loading("bf16", "disabled", 20),
    "longcat_avatar": Loading("bf16", "disabled", 25),
}
# Hub ids DownloadAndLoadWav2VecModel loads from ComfyUI/models/transformers/<id> (see the module docstring).
WAV2VEC_FANTASYTALKING = "facebook/wav2vec2-base-960h"
WAV2VEC_LONGCAT = "TencentGameMate/chinese-wav2vec2-base"


def _settings(ctx: BuildContext) -> Settings:
    return PRESETS[ctx.family][ctx.request.quality]


def _text(g: Graph, ctx: BuildContext) -> Link:
    encoded = g.add("WanVideoTextEncodeCached", model_name=ctx.file("text_encoder"), precision="bf16",
                    positive_prompt=ctx.request.prompt, negative_prompt=ctx.negative(WAN_NEGATIVE),
                    quantization="disabled", use_disk_cache=False, device="gpu")
    return encoded.out(0)


def _vae(g: Graph, ctx: BuildContext) -> Node:
    return g.add("WanVideoVAELoader", model_name=ctx.file("vae"), precision="bf16")


def _model(g: Graph, ctx: BuildContext, role: str, fantasytalking: Link | None = None) -> Link:
    loading = LOADING[ctx.family]
    swap = g.add("WanVideoBlockSwap", blocks_to_swap=loading.blocks_to_swap, offload_img_emb=False,
                 offload_txt_emb=False)
    loader = g.add("WanVideoModelLoader", model=ctx.file(role), base_precision=loading.base_precision,
                   quantization=loading.quantization, load_device="offload_device", attention_mode="sdpa",
                   block_swap_args=swap.out(), fantasytalking_model=fantasytalking)
    return loader.out()


def _encode(g: Graph, vae: Node, image: Link) -> Link:
    return g.add("WanVideoEncode", vae=vae.out(), image=image, **_TILES).out()


def _decode_and_save(g: Graph, ctx: BuildContext, vae: Node, samples: Link, audio: Link | None = None) -> None:
    images = g.add("WanVideoDecode", vae=vae.out(), samples=samples, normalization="default", **_TILES)
    save_video(g, ctx, images.out(), audio=audio)


def _sampler(g: Graph, ctx: BuildContext, model: Link, text: Link, embeds: Link, **extra: Link) -> Link:
    s = _settings(ctx)
    return g.add("WanVideoSampler", model=model, image_embeds=embeds, text_embeds=text, steps=s.steps, cfg=s.cfg,
                 shift=s.shift, seed=ctx.seed, force_offload=True, scheduler=s.scheduler, riflex_freq_index=0,
                 **extra).out(0)


def fantasytalking_s2v(ctx: BuildContext) -> Graph:
    """FantasyTalking (wanvideo_2_1_14B_I2V_FantasyTalking_example_01): the face image through CLIP vision and
    WanVideoImageToVideoEncode, the audio's wav2vec2 features projected by FantasyTalking's weights."""
    g = Graph()
    width, height = ctx.size(WRAPPER_MULTIPLE)
    frames = ctx.wan_length()
    text = _text(g, ctx)
    vae = _vae(g, ctx)
    projection = g.add("FantasyTalkingModelLoader", model=ctx.file("s2v"), base_precision="fp16")
    model = _model(g, ctx, "i2v", fantasytalking=projection.out())
    image = load_image(g, width, height)
    clip = g.add("CLIPVisionLoader", clip_name=ctx.file("clip_vision"))
    clip_embeds = g.add("WanVideoClipVisionEncode", clip_vision=clip.out(), image_1=image, strength_1=1.0,
                        strength_2=1.0, crop="center", combine_embeds="average", force_offload=True)
    embeds = g.add("WanVideoImageToVideoEncode", width=width, height=height, num_frames=frames,
                   noise_aug_strength=0.0, start_latent_strength=1.0, end_latent_strength=1.0, force_offload=True,
                   vae=vae.out(), clip_embeds=clip_embeds.out(), start_image=image)
    wav2vec = g.add("DownloadAndLoadWav2VecModel", model=WAV2VEC_FANTASYTALKING, base_precision="fp16",
                    load_device="main_device")
    audio = g.add("LoadAudio", audio=INPUT_FILES["audio"])
    talking = g.add("FantasyTalkingWav2VecEmbeds", wav2vec_model=wav2vec.out(), fantasytalking_model=projection.out(),
                    audio=audio.out(), num_frames=frames, fps=float(ctx.delivered.fps), audio_scale=1.0,
                    audio_cfg_scale=1.0)
    samples = _sampler(g, ctx, model, text, embeds.out(), fantasytalking_embeds=talking.out())
    _decode_and_save(g, ctx, vae, samples, audio=audio.out())
    return g


def skyreels_df(ctx: BuildContext) -> Graph:
    """SkyReels-V2 diffusion forcing, one render: text alone, or the image as the video's first frame
    (`prefix_samples`, which the sampler keeps; `addnoise_condition` 10 as the example)."""
    g = Graph()
    width, height = ctx.size(WRAPPER_MULTIPLE)
    text = _text(g, ctx)
    vae = _vae(g, ctx)
    model = _model(g, ctx, "t2v")
    embeds = g.add("WanVideoEmptyEmbeds", width=width, height=height, num_frames=ctx.wan_length())
    prefix = _encode(g, vae, load_image(g, width, height)) if ctx.request.image else None
    s = _settings(ctx)
    samples = g.add("WanVideoDiffusionForcingSampler", model=model, text_embeds=text, image_embeds=embeds.out(),
                    addnoise_condition=10, fps=float(ctx.delivered.fps), steps=s.steps, cfg=s.cfg, shift=s.shift,
                    seed=ctx.seed, force_offload=True, scheduler=s.scheduler, prefix_samples=prefix)
    _decode_and_save(g, ctx, vae, samples.out())
    return g


def longcat_video(ctx: BuildContext) -> Graph:
    """LongCat-Video (LongCat_TI2V_example_01, first segment): text alone, or the image's latent as
    `extra_latents` of the empty embeds."""
    g = Graph()
    width, height = ctx.size(WRAPPER_MULTIPLE)
    text = _text(g, ctx)
    vae = _vae(g, ctx)
    model = _model(g, ctx, "ti2v")
    first = _encode(g, vae, load_image(g, width, height)) if ctx.request.image else None
    embeds = g.add("WanVideoEmptyEmbeds", width=width, height=height, num_frames=ctx.wan_length(),
                   extra_latents=first)
    _decode_and_save(g, ctx, vae, _sampler(g, ctx, model, text, embeds.out()))
    return g


def longcat_avatar_s2v(ctx: BuildContext) -> Graph:
    """LongCat-Avatar (LongCatAvatar_audio_image_to_video_example_01, its first window only): the image's latent
    starts the video, the audio's chinese-wav2vec2 features drive it, sampled by WanVideoSamplerv2."""
    g = Graph()
    width, height = ctx.size(WRAPPER_MULTIPLE)
    frames = ctx.wan_length()
    text = _text(g, ctx)
    vae = _vae(g, ctx)
    model = _model(g, ctx, "s2v")
    reference = _encode(g, vae, load_image(g, width, height))
    wav2vec = g.add("DownloadAndLoadWav2VecModel", model=WAV2VEC_LONGCAT, base_precision="fp16",
                    load_device="main_device")
    audio = g.add("LoadAudio", audio=INPUT_FILES["audio"])
    audio_embeds = g.add("MultiTalkWav2VecEmbeds", wav2vec_model=wav2vec.out(), audio_1=audio.out(),
                         normalize_loudness=True, num_frames=frames * LONGCAT_AUDIO_STRIDE,
                         fps=float(ctx.delivered.fps * LONGCAT_AUDIO_STRIDE), audio_scale=1.0, audio_cfg_scale=2.0,
                         multi_audio_type="para")
    window = g.add("WanVideoLongCatAvatarExtendEmbeds", prev_latents=reference, audio_embeds=audio_embeds.out(0),
                   num_frames=frames, overlap=LONGCAT_FIRST_OVERLAP, frames_processed=0,
                   if_not_enough_audio="pad_with_start", ref_frame_index=10, ref_mask_frame_range=3)
    s = _settings(ctx)
    scheduler = g.add("WanVideoSchedulerv2", scheduler=s.scheduler, steps=s.steps, shift=s.shift, start_step=0,
                      end_step=-1)
    samples = g.add("WanVideoSamplerv2", model=model, image_embeds=window.out(0), text_embeds=text, cfg=s.cfg,
                    seed=ctx.seed, force_offload=True, scheduler=scheduler.out())
    _decode_and_save(g, ctx, vae, samples.out(0), audio=audio.out())
    return g
