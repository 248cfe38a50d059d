"""Joining segments: copied packet for packet when their streams agree, re-encoded at the first one's size and rate
when they don't; and the last frame a next segment starts from."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.engines.sim import encode_video
from router.media.probe import ProbeError, probe
from router.media.stitch import last_frame_png, stitch


def segment(folder: Path, name: str, width: int = 320, height: int = 192, frames: int = 17, fps: float = 16.0,
            ) -> Path:
    path = folder / f"{name}.mp4"
    encode_video(path, width, height, frames, fps, "test", name)
    return path


def test_segments_that_agree_are_copied_and_play_as_one_video_of_all_their_frames(tmp_path: Path) -> None:
    parts = [segment(tmp_path, f"s{i}") for i in range(3)]
    assert stitch(parts, tmp_path / "out.mp4") == "copied"
    joined = probe(tmp_path / "out.mp4")
    assert (joined.frames, joined.fps, joined.width, joined.height) == (51, 16.0, 320, 192)
    assert joined.duration_s == pytest.approx(51 / 16, abs=1e-3)


def test_segments_that_differ_are_re_encoded_at_the_first_ones_size_and_rate_keeping_each_ones_length(
        tmp_path: Path) -> None:
    first = segment(tmp_path, "first")
    other = segment(tmp_path, "other", width=256, height=256, frames=24, fps=24.0)  # 1 s
    assert stitch([first, other], tmp_path / "out.mp4") == "re-encoded"
    joined = probe(tmp_path / "out.mp4")
    assert (joined.width, joined.height, joined.fps) == (320, 192, 16.0)
    assert joined.frames == 17 + 16


def test_the_last_frame_is_a_png_of_the_segments_size(tmp_path: Path) -> None:
    png = last_frame_png(segment(tmp_path, "s"))
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    assert int.from_bytes(png[16:20], "big") == 320 and int.from_bytes(png[20:24], "big") == 192  # IHDR


def test_a_file_that_is_not_a_video_has_no_last_frame(tmp_path: Path) -> None:
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"not a video at all" * 100)
    with pytest.raises(ProbeError):
        last_frame_png(junk)
