"""Long-form videos from their segments: the last frame a next segment starts from, and the segments joined.

Segments of one job are rendered at one size and frame rate, usually by one model, so their streams normally agree
(codec, size, pixel format, codec extradata): then the packets are copied into one MP4 with their timestamps moved
on, nothing decoded or encoded, so the join loses nothing and costs a file copy. Where they don't agree (a fallback
hop went to a model that encodes differently, or an `extend` job's first segment is the client's own video), every
frame is decoded and encoded once more as H.264 at the asked size and rate, each output frame the source frame
showing at that instant. Only the video streams are joined: a client's video loses its sound.

A continuing segment starts from the frame the one before ended on, so each join shows that frame twice (one frame
in the segment's frame rate); dropping it would mean re-encoding the segment, since its first frame is the one
every other frame of its group refers to.

PyAV is imported inside the functions: the worker's other paths must not pay for FFmpeg (see `probe`).
"""

from __future__ import annotations

from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from router.media.probe import ProbeError

if TYPE_CHECKING:
    from av.container import InputContainer
    from av.video.stream import VideoStream

StitchMethod = Literal["copied", "re-encoded"]


def last_frame_png(source: str | Path) -> bytes:
    """The video's last frame as a PNG, decoded (not the last keyframe); ProbeError when nothing decodes."""
    import av  # deferred: see the module docstring

    last = None
    try:
        with av.open(str(source)) as container:
            for frame in container.decode(video=0):
                last = frame
    except av.FFmpegError as exc:
        raise ProbeError(f"can't read the segment: {exc}") from exc
    if last is None:
        raise ProbeError("the segment has no video frame")
    encoder = av.CodecContext.create("png", "w")
    rgb = last.reformat(format="rgb24")
    encoder.width, encoder.height, encoder.pix_fmt = rgb.width, rgb.height, "rgb24"
    return b"".join(bytes(packet) for packet in [*encoder.encode(rgb), *encoder.encode(None)])


def stitch(segments: Sequence[str | Path], target: str | Path, spec: tuple[int, int, float] | None = None,
           ) -> StitchMethod:
    """Join the segments, in order, into one MP4 at `target`, at `spec` (width, height, fps; by default the first
    segment's); how it was done."""
    import av  # deferred: see the module docstring

    if not segments:
        raise ValueError("nothing to stitch")
    containers = [av.open(str(path)) for path in segments]
    try:
        streams = [container.streams.video[0] for container in containers]
        first = streams[0]
        width, height, fps = spec or (first.codec_context.width, first.codec_context.height,
                                      float(first.average_rate or 16))
        if _copyable(streams) and (first.codec_context.width, first.codec_context.height) == (width, height) \
                and abs(float(first.average_rate or 0) - fps) < 1e-3:
            _copy(containers, streams, target)
            return "copied"
        _reencode(containers, streams, target, width, height, Fraction(fps).limit_denominator(1001))
        return "re-encoded"
    except av.FFmpegError as exc:
        raise ProbeError(f"can't stitch the segments: {exc}") from exc
    finally:
        for container in containers:
            container.close()


def _copyable(streams: Sequence[VideoStream]) -> bool:
    first = streams[0].codec_context
    return all(
        s.codec_context.name == first.name and s.codec_context.width == first.width
        and s.codec_context.height == first.height and s.codec_context.pix_fmt == first.pix_fmt
        and bytes(s.codec_context.extradata or b"") == bytes(first.extradata or b"")
        and s.average_rate == streams[0].average_rate
        for s in streams)


def _copy(containers: Sequence[InputContainer], streams: Sequence[VideoStream],
          target: str | Path) -> None:
    import av

    with av.open(str(target), "w", format="mp4") as out:
        stream = out.add_stream_from_template(streams[0])
        offset = 0  # in the output stream's time base, where the next segment starts
        for container, source in zip(containers, streams, strict=True):
            end = offset
            scale = Fraction(source.time_base or 1) / Fraction(stream.time_base or source.time_base or 1)
            for packet in container.demux(source):
                if packet.dts is None:  # the demuxer's end-of-stream marker
                    continue
                packet.pts = offset + round((packet.pts or 0) * scale)
                packet.dts = offset + round(packet.dts * scale)
                end = max(end, packet.pts + round((packet.duration or 0) * scale))
                packet.stream = stream
                out.mux(packet)
            offset = end


def _reencode(containers: Sequence[InputContainer], streams: Sequence[VideoStream], target: str | Path,
              width: int, height: int, rate: Fraction) -> None:
    import av

    with av.open(str(target), "w", format="mp4") as out:
        stream = out.add_stream("libx264", rate=rate)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        index = 0
        for container, source in zip(containers, streams, strict=True):
            frames = list(container.decode(source))
            if not frames:
                raise ProbeError("a segment has no video frame")
            seconds = len(frames) / float(source.average_rate or rate)
            wanted = max(1, round(seconds * rate))
            for n in range(wanted):  # the source frame showing at this output frame's instant
                frame = frames[min(len(frames) - 1, int(n / rate * float(source.average_rate or rate)))]
                picture = frame.reformat(width=width, height=height, format="yuv420p")
                picture.pts, picture.time_base = index, 1 / rate
                index += 1
                for packet in stream.encode(picture):
                    out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
