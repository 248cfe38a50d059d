"""What a delivered video really is (container, codec, size, frames, fps), checked against what was asked.

PyAV is imported inside `probe()`: this module is importable from the API function, whose cold start must not
pay for FFmpeg; only the code paths that really look at a video load it.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict

from router.errors import HvrError

if TYPE_CHECKING:
    from av.container import InputContainer

# ISO base-media brands meaning "MP4" rather than QuickTime; FFmpeg reads both with one demuxer ("mov,mp4,…").
_MP4_BRANDS = frozenset({"isom", "iso2", "iso4", "iso5", "iso6", "mp41", "mp42", "avc1", "dash", "msnv"})
FPS_TOLERANCE = 0.01


class ProbeError(HvrError):
    """The bytes are not a playable video (not a media file, no video stream, truncated, undecodable)."""


class ProbeResult(BaseModel):
    model_config = ConfigDict(frozen=True)

    container: str  # "mp4", "mov", or FFmpeg's demuxer name for anything else
    codec: str  # FFmpeg's decoder name, e.g. "h264"
    pix_fmt: str | None
    width: int
    height: int
    frames: int  # counted by decoding every frame, not read from the header
    fps: float
    duration_s: float
    bytes: int


def probe(source: str | Path | bytes) -> ProbeResult:
    """Open, demux and decode the whole video; ProbeError unless every frame decodes."""
    import av  # deferred: see the module docstring

    size = len(source) if isinstance(source, bytes) else Path(source).stat().st_size
    if size == 0:
        raise ProbeError("empty file")
    target: str | io.BytesIO = io.BytesIO(source) if isinstance(source, bytes) else str(source)
    try:
        with av.open(target, mode="r") as container:
            return _inspect(container, size)
    except av.FFmpegError as exc:
        raise ProbeError(f"not a playable video: {exc}") from exc


def _inspect(container: InputContainer, size: int) -> ProbeResult:
    if not container.streams.video:
        raise ProbeError("no video stream")
    stream = container.streams.video[0]
    # Decoding rather than trusting stream.frames: the header count is absent for some containers and a
    # truncated file can still claim the full count; decoding also proves the frames are really there.
    decoded = sum(1 for _ in container.decode(stream))
    if decoded == 0:
        raise ProbeError("video stream holds no decodable frames")
    rate = stream.average_rate or stream.guessed_rate
    fps = float(rate) if rate else 0.0
    if stream.duration is not None and stream.time_base is not None:
        duration_s = float(stream.duration * stream.time_base)
    elif container.duration is not None:
        duration_s = container.duration / 1_000_000  # AV_TIME_BASE
    else:
        duration_s = decoded / fps if fps else 0.0
    ctx = stream.codec_context
    return ProbeResult(
        container=_container_name(container),
        codec=ctx.name,
        pix_fmt=ctx.pix_fmt,
        width=ctx.width,
        height=ctx.height,
        frames=decoded,
        fps=fps,
        duration_s=duration_s,
        bytes=size,
    )


def _container_name(container: InputContainer) -> str:
    name = container.format.name
    if "mp4" not in name.split(","):
        return name
    brand = container.metadata.get("major_brand", "").strip()
    if brand == "qt":
        return "mov"
    return "mp4" if brand in _MP4_BRANDS or not brand else name


def check_against_spec(result: ProbeResult, width: int, height: int, frames: int, fps: float) -> list[str]:
    """Why the video doesn't match the spec (empty when it does): exact size and frames, fps within 1 %."""
    reasons: list[str] = []
    if (result.width, result.height) != (width, height):
        reasons.append(f"size {result.width}x{result.height}, expected {width}x{height}")
    if result.frames != frames:
        reasons.append(f"{result.frames} frames, expected {frames}")
    if fps <= 0 or abs(result.fps - fps) > FPS_TOLERANCE * fps:
        reasons.append(f"{result.fps:.3f} fps, expected {fps:g}")
    return reasons
