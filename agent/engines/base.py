"""The seam between the scheduler and whatever actually renders (the sim today, ComfyUI later)."""

from __future__ import annotations

import os
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from agent.schemas import CreateJobRequest, Vram

ProgressFn = Callable[[float], None]


class EngineError(Exception):
    """The render failed; the message becomes the job's `error`, so it must make sense to an operator."""

    def __init__(self, reason: str, *, gpu_seconds: float = 0.0) -> None:
        super().__init__(reason)
        self.reason = reason
        self.gpu_seconds = gpu_seconds


class EngineCancelled(Exception):
    """The render stopped because its cancel event was set; carries the GPU time already spent."""

    def __init__(self, *, gpu_seconds: float = 0.0) -> None:
        super().__init__("cancelled")
        self.gpu_seconds = gpu_seconds


@dataclass(frozen=True)
class RenderResult:
    gpu_seconds: float


class Engine(ABC):
    """Renders one job to an MP4 file. Called from worker threads, one call per slot at a time."""

    name: str
    # Set by begin_shutdown(): a render cancelled from then on is going back to the queue, not ending.
    shutting_down: bool = False

    @abstractmethod
    def estimate_gpu_seconds(self, request: CreateJobRequest) -> float:
        """Expected GPU time for the whole job (for the health ETA); EngineError for an unknown model."""

    @abstractmethod
    def render(
        self, request: CreateJobRequest, out_path: Path, progress: ProgressFn, cancel: threading.Event
    ) -> RenderResult:
        """Write the video to `out_path`; EngineCancelled once `cancel` is set; EngineError on failure."""

    @abstractmethod
    def vram(self) -> Vram:
        """Total and free GPU memory as the engine sees it now."""

    def ram_mb(self) -> int | None:
        """The box's system memory (what offloading spills into), for the router's hardware fit: the host's own."""
        try:
            return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // (1024 * 1024)
        except (ValueError, OSError, AttributeError):  # not a POSIX host: say nothing rather than guess
            return None

    def refusal(self, request: CreateJobRequest) -> str | None:
        """Why this engine can never run the job as asked (a GPU too small for it), checked before the job is
        accepted; None when it can run it, or can't tell up front."""
        return None

    def runnable_models(self) -> dict[str, list[str]] | None:
        """Model → modes this engine can run now (files present, memory enough), for the health check; None when
        the engine doesn't know (the router then assumes every model)."""
        return None

    def begin_shutdown(self) -> None:
        """The agent is stopping: renders about to be cancelled will run again on the next start, so an engine
        whose work outlives the agent (ComfyUI's queue) lets go of it instead of cancelling it."""
        self.shutting_down = True
