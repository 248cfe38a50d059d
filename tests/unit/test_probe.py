"""router.media.probe on files the sim engine renders, and on things that aren't videos."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from agent.config import DEFAULT_MODELS_FILE
from agent.engines.sim import SimEngine
from agent.schemas import CreateJobRequest
from router.media.probe import ProbeError, ProbeResult, check_against_spec, probe

# So large that the modelled GPU time takes no wall time: these tests are about the file, not the clock.
INSTANT = 1e12


def render(tmp_path: Path, *, width: int = 64, height: int = 48, frames: int = 8, fps: float = 8,
           prompt: str = "a lighthouse in a storm") -> Path:
    request = CreateJobRequest.model_validate({
        "attempt_id": f"att_probe_{width}x{height}_{frames}_{fps}",
        "job_id": "job_probe",
        "model": "animatediff-sd15",
        "prompt": prompt,
        "spec": {"width": width, "height": height, "frames": frames, "fps": fps},
        "output": {"put_url": "http://127.0.0.1:9/unused"},
    })
    out = tmp_path / "out.mp4"
    SimEngine(DEFAULT_MODELS_FILE, time_scale=INSTANT).render(request, out, lambda _: None, threading.Event())
    return out


@pytest.fixture(scope="module")
def sim_video(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    return render(tmp_path_factory.mktemp("probe")).read_bytes()


def test_probe_reports_exactly_what_was_rendered(sim_video: bytes) -> None:
    result = probe(sim_video)
    assert (result.container, result.codec, result.pix_fmt) == ("mp4", "h264", "yuv420p")
    assert (result.width, result.height, result.frames) == (64, 48, 8)
    assert result.fps == pytest.approx(8.0)
    assert result.duration_s == pytest.approx(1.0, rel=0.05)
    assert result.bytes == len(sim_video)
    assert check_against_spec(result, 64, 48, 8, 8) == []


def test_probe_accepts_a_path(tmp_path: Path, sim_video: bytes) -> None:
    path = tmp_path / "v.mp4"
    path.write_bytes(sim_video)
    assert probe(path) == probe(sim_video)
    assert probe(str(path)) == probe(sim_video)


def test_fractional_fps_survives_the_roundtrip(tmp_path: Path) -> None:
    result = probe(render(tmp_path, frames=5, fps=23.976))
    assert result.frames == 5
    assert check_against_spec(result, 64, 48, 5, 23.976) == []


def test_wrong_size_hook_halves_the_width(tmp_path: Path) -> None:
    result = probe(render(tmp_path, width=64, prompt="[sim:wrong-size] a lighthouse"))
    assert (result.width, result.height) == (32, 48)
    assert check_against_spec(result, 64, 48, 8, 8) == ["size 32x48, expected 64x48"]


def test_every_mismatch_is_reported(sim_video: bytes) -> None:
    reasons = check_against_spec(probe(sim_video), 48, 64, 16, 24)
    assert reasons == ["size 64x48, expected 48x64", "8 frames, expected 16", "8.000 fps, expected 24"]


@pytest.mark.parametrize(("fps", "ok"), [(8.079, True), (7.921, True), (8.09, False), (7.9, False), (0, False)])
def test_fps_tolerance_is_one_percent(fps: float, ok: bool) -> None:
    result = ProbeResult(container="mp4", codec="h264", pix_fmt="yuv420p", width=8, height=8, frames=1,
                         fps=8.0, duration_s=0.125, bytes=1)
    assert (check_against_spec(result, 8, 8, 1, fps) == []) is ok


@pytest.mark.parametrize(
    "bad",
    [
        b"",
        b"<!DOCTYPE html><html><body>AccessDenied</body></html>",
        b"\x00" * 4096,
    ],
    ids=["empty", "html", "zeros"],
)
def test_non_video_bytes_raise(bad: bytes) -> None:
    with pytest.raises(ProbeError):
        probe(bad)


@pytest.mark.parametrize("keep", [0.5, 0.1])
def test_truncated_video_raises(sim_video: bytes, keep: float) -> None:
    with pytest.raises(ProbeError):
        probe(sim_video[: int(len(sim_video) * keep)])


def test_missing_file_is_an_os_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        probe(tmp_path / "nope.mp4")
