"""Sampling presets per workflow family and quality tier.

`standard` is what the official ComfyUI template for the family uses without speed-up LoRAs (template ids in the
comments, comfyui-workflow-templates-json 0.1.123); `draft` roughly halves the steps and `premium` adds about half
again. Those two are judgements, to be replaced by what calibration and the studio's eye say.
"""

from __future__ import annotations

from dataclasses import dataclass

from router.models.common import Quality


@dataclass(frozen=True)
class Sampling:
    steps: int
    cfg: float
    sampler: str
    scheduler: str
    shift: float | None = None  # ModelSamplingSD3 shift; None: the graph has no such node

    def switch_step(self) -> int:
        """Where a two-stage WAN 2.2 graph hands the latent from the high-noise to the low-noise model (half way,
        as video_wan2_2_14B_t2v/i2v do: 10 of 20)."""
        return self.steps // 2


def _tiers(draft: int, standard: int, premium: int, cfg: float, sampler: str, scheduler: str,
           shift: float | None) -> dict[Quality, Sampling]:
    return {
        Quality.DRAFT: Sampling(draft, cfg, sampler, scheduler, shift),
        Quality.STANDARD: Sampling(standard, cfg, sampler, scheduler, shift),
        Quality.PREMIUM: Sampling(premium, cfg, sampler, scheduler, shift),
    }


PRESETS: dict[str, dict[Quality, Sampling]] = {
    # No official template (AnimateDiff-Evolved is not core): 20 steps, cfg 7.5 is the SD1.5 habit.
    "animatediff": _tiers(12, 20, 30, 7.5, "euler", "normal", None),
    # text_to_video_wan: 30 steps, cfg 6, uni_pc/simple, shift 8.
    "wan21_t2v": _tiers(15, 30, 45, 6.0, "uni_pc", "simple", 8.0),
    # image_to_video_wan: 20 steps, cfg 6, uni_pc/simple, shift 8.
    "wan21_i2v": _tiers(12, 20, 30, 6.0, "uni_pc", "simple", 8.0),
    # wan2.1_fun_inp: 20 steps, cfg 6, uni_pc/simple, shift 5.
    "wan21_fun_inp": _tiers(12, 20, 30, 6.0, "uni_pc", "simple", 5.0),
    # video_wan2.1_fun_camera_v1.1_1.3B / _14B: 20 steps, cfg 6, uni_pc/simple, shift 8.
    "wan21_fun_camera": _tiers(12, 20, 30, 6.0, "uni_pc", "simple", 8.0),
    # video_wan_vace_inpainting without the CausVid LoRA: 20 steps, cfg 6, uni_pc/simple, shift 5.
    "wan21_vace": _tiers(12, 20, 30, 6.0, "uni_pc", "simple", 5.0),
    # video_wan2_1_infinitetalk uses a 6-step distill LoRA at cfg 1 and no ModelSamplingSD3; without the LoRA
    # these steps and cfg are a judgement.
    "wan21_infinitetalk": _tiers(12, 20, 30, 5.0, "uni_pc", "simple", None),
    # video_wan2_2_14B_t2v/i2v without the lightx2v LoRAs: 20 steps, cfg 3.5, euler/simple, shift 5, switch at 10.
    "wan22_14b": _tiers(12, 20, 30, 3.5, "euler", "simple", 5.0),
    # video_wan2_2_14B_s2v without the LoRA: 20 steps, cfg 6, uni_pc/simple, shift 8.
    "wan22_s2v": _tiers(12, 20, 30, 6.0, "uni_pc", "simple", 8.0),
    # video_wan2_2_5B_ti2v: 20 steps, cfg 5, uni_pc/simple, shift 8.
    "wan22_5b": _tiers(12, 20, 30, 5.0, "uni_pc", "simple", 8.0),
    # wan2.1_flf2v_720_f16: 20 steps, cfg 3, uni_pc/simple, shift 8.
    "wan21_flf2v": _tiers(12, 20, 30, 3.0, "uni_pc", "simple", 8.0),
    # video_humo runs 6 steps at cfg 1 with the lightx2v step-distill LoRA (uni_pc/simple, shift 8); without the LoRA
    # these steps and cfg are a judgement, as for InfiniteTalk.
    "humo": _tiers(12, 20, 30, 5.0, "uni_pc", "simple", 8.0),
    # No official template for Phantom or WAN 2.2 Animate on core nodes: the WAN 2.1 14B image-to-video settings
    # (20 steps, cfg 6, uni_pc/simple, shift 8) are a judgement until the studio's eye or calibration says otherwise.
    "wan21_phantom": _tiers(12, 20, 30, 6.0, "uni_pc", "simple", 8.0),
    "wan22_animate": _tiers(12, 20, 30, 6.0, "uni_pc", "simple", 8.0),
}
