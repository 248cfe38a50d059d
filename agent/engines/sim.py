"""The sim engine: a real H.264 MP4 of the requested size, frames and fps, visibly labelled as a simulation.

It never pretends to be a model: every frame says SIM, the frame counter and the prompt over a moving
gradient. What it imitates is the GPU's time: it reports the *modelled* GPU-seconds from `router/workflows/models.yaml`
(the studio's figures) and spreads `gpu_seconds / time_scale` of wall time over the render, so queues, ETAs,
progress and costs behave as they would on the real card, only faster.

Sandbox hooks (documented in docs/agent-api.md): `[sim:fail]` in the prompt fails the render after the
model-load phase; `[sim:wrong-size]` renders half the requested width, for the router's output check to catch.
"""

from __future__ import annotations

import math
import random
import textwrap
import threading
import time
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
import yaml
from PIL import Image, ImageDraw, ImageFont
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from agent.engines.base import Engine, EngineCancelled, EngineError, ProgressFn, RenderResult
from agent.schemas import CreateJobRequest, Vram

FAIL_MARKER = "[sim:fail]"
WRONG_SIZE_MARKER = "[sim:wrong-size]"
# Short enough that a cancel lands within a fraction of a second, long enough not to spin.
_STEP_S = 0.05
_Font = ImageFont.ImageFont | ImageFont.FreeTypeFont
FrameHook = Callable[[int, int], None]


class SimModel(BaseModel):
    model_config = ConfigDict(frozen=True)

    overhead_s: float = Field(ge=0)
    seconds_per_frame: float = Field(gt=0)
    ref_width: int = Field(gt=0)
    ref_height: int = Field(gt=0)
    vram_mb: int = Field(ge=0)
    source: str = Field(min_length=1)

    def nominal_seconds(self, width: int, height: int, frames: int) -> float:
        pixels = (width * height) / (self.ref_width * self.ref_height)
        return self.overhead_s + self.seconds_per_frame * frames * pixels


class SimCatalog(BaseModel):
    model_config = ConfigDict(frozen=True)

    noise_sigma: float = Field(ge=0, le=2)
    vram_total_mb: int = Field(gt=0)
    vram_source: str = ""
    ram_total_mb: int | None = Field(default=None, gt=0)  # the simulated box's system memory; None: the host's
    models: dict[str, SimModel] = Field(min_length=1)

    @classmethod
    def load(cls, path: Path) -> SimCatalog:
        try:
            raw = yaml.safe_load(path.read_text(encoding="utf-8"))
            return cls.model_validate(raw["sim"])
        except (OSError, yaml.YAMLError, KeyError, TypeError, ValidationError) as exc:
            raise ValueError(f"bad sim models file {path}: {exc}") from exc


class _WallClock:
    """Maps render fractions onto the scaled-down wall time and turns cancel into EngineCancelled."""

    def __init__(self, wall_total_s: float, time_scale: float, cancel: threading.Event, progress: ProgressFn):
        self._start = time.monotonic()
        self._wall_total_s = wall_total_s
        self._time_scale = time_scale
        self._cancel = cancel
        self._progress = progress

    def elapsed_gpu_s(self) -> float:
        return min(time.monotonic() - self._start, self._wall_total_s) * self._time_scale

    def wait_until(self, fraction: float) -> None:
        """Sleep until `fraction` of the wall budget has passed (at once if encoding already used it up)."""
        deadline = self._start + self._wall_total_s * fraction
        while True:
            if self._cancel.is_set():
                raise EngineCancelled(gpu_seconds=self.elapsed_gpu_s())
            now = time.monotonic()
            done = (now - self._start) / self._wall_total_s if self._wall_total_s > 0 else 1.0
            self._progress(min(done, fraction))
            if now >= deadline:
                return
            time.sleep(min(_STEP_S, deadline - now))


class SimEngine(Engine):
    name = "sim"

    def __init__(self, models_file: Path, time_scale: float = 1.0, seed: int | None = None) -> None:
        if time_scale <= 0:
            raise ValueError("time_scale must be positive")
        self._catalog = SimCatalog.load(models_file)
        self._time_scale = time_scale
        self._seed = seed
        self._lock = threading.Lock()
        self._vram_in_use_mb = 0

    def _model(self, name: str) -> SimModel:
        try:
            return self._catalog.models[name]
        except KeyError:
            known = ", ".join(sorted(self._catalog.models))
            raise EngineError(f"unknown model {name!r} (the sim knows: {known})") from None

    def estimate_gpu_seconds(self, request: CreateJobRequest) -> float:
        model = self._model(request.model)
        spec = request.spec
        # Seeded by the attempt id, so a job's figure is the same across restarts and between ETA and result.
        rng = random.Random(f"{self._seed}:{request.attempt_id}")
        factor = math.exp(rng.gauss(0.0, self._catalog.noise_sigma))
        return model.nominal_seconds(spec.width, spec.height, spec.frames) * factor

    def ram_mb(self) -> int | None:
        return self._catalog.ram_total_mb or super().ram_mb()

    def vram(self) -> Vram:
        total = self._catalog.vram_total_mb
        with self._lock:
            return Vram(total_mb=total, free_mb=max(0, total - self._vram_in_use_mb))

    def render(
        self, request: CreateJobRequest, out_path: Path, progress: ProgressFn, cancel: threading.Event
    ) -> RenderResult:
        model = self._model(request.model)
        gpu_total_s = self.estimate_gpu_seconds(request)
        clock = _WallClock(gpu_total_s / self._time_scale, self._time_scale, cancel, progress)
        nominal = model.nominal_seconds(request.spec.width, request.spec.height, request.spec.frames)
        load_fraction = model.overhead_s / nominal if nominal > 0 else 0.0
        with self._lock:
            self._vram_in_use_mb += model.vram_mb
        try:
            clock.wait_until(load_fraction)
            if FAIL_MARKER in request.prompt:
                raise EngineError(f"sim: render failed on request ({FAIL_MARKER} in the prompt)",
                                  gpu_seconds=clock.elapsed_gpu_s())

            def frame_done(index: int, frames: int) -> None:
                # Frame i is due once its share of the post-load budget has passed.
                clock.wait_until(load_fraction + (1 - load_fraction) * (index + 1) / frames)

            _encode(request, out_path, after_frame=frame_done)
            clock.wait_until(1.0)
        finally:
            with self._lock:
                self._vram_in_use_mb -= model.vram_mb
        return RenderResult(gpu_seconds=gpu_total_s)


def _output_size(request: CreateJobRequest) -> tuple[int, int]:
    width, height = request.spec.width, request.spec.height
    if WRONG_SIZE_MARKER in request.prompt:
        width = max(2, (width // 4) * 2)  # half, kept even for yuv420p
    return width, height


def _encode(request: CreateJobRequest, out_path: Path, *, after_frame: FrameHook) -> None:
    width, height = _output_size(request)
    encode_video(out_path, width, height, request.spec.frames, request.spec.fps, request.model, request.prompt,
                 after_frame=after_frame)


def encode_video(out_path: Path, width: int, height: int, frames: int, fps: float, label: str, text: str,
                 after_frame: FrameHook | None = None) -> None:
    """A real H.264 MP4 that shows it is a sim: frame counter, label and text on a drifting gradient. The provider
    sandboxes render their outputs with it too."""
    rate = Fraction(fps).limit_denominator(1001)
    painter = _FramePainter(width, height, label, text)
    with av.open(str(out_path), mode="w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=rate, options={"preset": "ultrafast", "crf": "18"})
        stream.width = width
        stream.height = height
        stream.pix_fmt = "yuv420p"
        stream.codec_context.time_base = 1 / rate
        for index in range(frames):
            frame = av.VideoFrame.from_ndarray(painter.paint(index, frames), format="rgb24")
            frame.pts = index
            frame.time_base = stream.codec_context.time_base
            container.mux(stream.encode(frame))
            if after_frame is not None:
                after_frame(index, frames)
        container.mux(stream.encode(None))


class _FramePainter:
    """Draws one frame: a gradient drifting with the frame index, the SIM label, the counter, the prompt."""

    def __init__(self, width: int, height: int, model_name: str, prompt: str) -> None:
        self._width = width
        self._height = height
        self._size = max(8, height // 14)
        self._font = _font(self._size)
        self._x = np.linspace(0.0, 1.0, width, dtype=np.float32)[None, :]
        self._y = np.linspace(0.0, 1.0, height, dtype=np.float32)[:, None]
        self._header = f"SIM (not a model) | {model_name}"
        self._prompt_lines = self._wrap(prompt)
        # The header and prompt are the same on every frame: drawn once (outlined text is most of a frame's cost) and
        # laid over each frame's gradient; only the counter is drawn per frame.
        overlay = Image.new("RGBA", (width, height), (0, 0, 0, 0))
        draw = ImageDraw.Draw(overlay)
        self._text(draw, 0, self._header)
        for row, line in enumerate(self._prompt_lines, start=2):  # row 1 is the counter's
            self._text(draw, row, line)
        box = overlay.getbbox()  # only the text's box is laid over, not the whole transparent frame
        self._overlay = (overlay.crop(box), box[:2]) if box else None

    def _wrap(self, prompt: str) -> list[str]:
        # Lines that fit under the header and the counter; the last one is marked when the prompt is cut.
        chars_per_line = max(8, int(self._width / (self._size * 0.55)))
        room = max(0, (self._height - 2 * self._line_height() - 4) // self._line_height())
        lines = textwrap.wrap(" ".join(prompt.split()), chars_per_line) or [""]
        if len(lines) > room:
            lines = lines[:room]
            if lines:
                lines[-1] = lines[-1][: max(0, chars_per_line - 3)] + "..."
        return lines

    def _line_height(self) -> int:
        return self._size + 2

    def paint(self, index: int, frames: int) -> np.ndarray:
        phase = index / max(frames, 1)
        # Kept in a mid range so white text with a dark outline stays readable on every frame. Red varies along x
        # only and green along y only: each is worked out for one row or column and broadcast into the frame.
        rgb = np.empty((self._height, self._width, 3), dtype=np.uint8)
        rgb[..., 0] = _shade((self._x + phase) % 1.0)
        rgb[..., 1] = _shade((self._y + 0.5 * phase) % 1.0)
        rgb[..., 2] = _shade(np.float32(0.5 + 0.5 * math.sin(2 * math.pi * phase)))
        image = Image.fromarray(rgb)
        if self._overlay is not None:
            text, corner = self._overlay
            image.paste(text, corner, text)
        self._text(ImageDraw.Draw(image), 1, f"frame {index + 1}/{frames}")
        return np.asarray(image)

    def _text(self, draw: ImageDraw.ImageDraw, row: int, line: str) -> None:
        draw.text((2, 2 + row * self._line_height()), line, font=self._font, fill=(255, 255, 255),
                  stroke_width=1, stroke_fill=(0, 0, 0))


def _shade(value: np.ndarray | np.floating[Any]) -> np.ndarray:
    return np.asarray(40 + 150 * value).astype(np.uint8)


def _font(size: int) -> _Font:
    try:
        return ImageFont.load_default(size=size)
    except ImportError:  # Pillow built without FreeType only has the fixed bitmap font
        return ImageFont.load_default()
