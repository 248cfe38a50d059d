"""The scheduler: `slots` worker threads taking queued jobs in creation order; render, upload, report.

Claiming a job and registering its cancel handle happen under one condition lock, so a cancel that finds a
job running in the store always finds the handle that interrupts it; creating a job notifies the same
condition, so an idle worker starts at once instead of on its next poll.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from agent.delivery import CallbackSender, UploadError, upload
from agent.engines.base import Engine, EngineCancelled, EngineError
from agent.schemas import JobOutput, JobStatus
from agent.store import JobRecord, JobStore

log = logging.getLogger("hvr.agent.runner")

_IDLE_POLL_S = 0.5
# Progress is written at most this often per job (and on every whole percent), to keep the db quiet.
_PROGRESS_INTERVAL_S = 0.25


@dataclass
class _Active:
    cancel: threading.Event = field(default_factory=threading.Event)
    done: threading.Event = field(default_factory=threading.Event)
    # Distinguishes a client's cancel (job ends cancelled) from a shutdown (job goes back to the queue).
    user_cancelled: bool = False


@dataclass
class _Outcome:
    status: JobStatus
    gpu_seconds: float
    error: str | None = None
    output: JobOutput | None = None


class Runner:
    def __init__(
        self, store: JobStore, engine: Engine, *, slots: int, work_dir: Path, callbacks: CallbackSender
    ) -> None:
        self._store = store
        self._engine = engine
        self._slots = slots
        self._work_dir = work_dir
        self._callbacks = callbacks
        self._cond = threading.Condition()
        self._active: dict[str, _Active] = {}
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        self._work_dir.mkdir(parents=True, exist_ok=True)
        for index in range(self._slots):
            thread = threading.Thread(target=self._work, name=f"hvr-agent-slot-{index}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self, timeout_s: float = 10.0) -> None:
        """Interrupt running renders and put their jobs back in the queue, for the next start to pick up."""
        self._engine.begin_shutdown()
        self._stopping.set()
        with self._cond:
            for active in self._active.values():
                active.cancel.set()
            self._cond.notify_all()
        deadline = time.monotonic() + timeout_s
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))

    def wake(self) -> None:
        with self._cond:
            self._cond.notify()

    def interrupt(self, attempt_id: str, wait_s: float) -> None:
        """Interrupt a running job and wait (bounded) for its worker to record the end."""
        with self._cond:
            active = self._active.get(attempt_id)
            if active is None:
                return
            active.user_cancelled = True
            active.cancel.set()
        active.done.wait(wait_s)

    def _work(self) -> None:
        while not self._stopping.is_set():
            with self._cond:
                # Checked again under the lock: stop() cancels what is registered; nothing may start after.
                if self._stopping.is_set():
                    return
                record = self._store.claim_next()
                if record is None:
                    self._cond.wait(_IDLE_POLL_S)
                    continue
                active = self._active[record.attempt_id] = _Active()
            try:
                self._run(record, active)
            except Exception:  # a bug here must not kill the slot; the job is failed so it doesn't hang
                log.exception("worker crashed on %s", record.attempt_id)
                self._finish(record, _Outcome("failed", 0.0, "agent error while running the job"))
            finally:
                with self._cond:
                    del self._active[record.attempt_id]
                active.done.set()

    def _run(self, record: JobRecord, active: _Active) -> None:
        out_path = self._work_dir / (hashlib.sha256(record.attempt_id.encode()).hexdigest()[:24] + ".mp4")
        try:
            outcome = self._render_and_upload(record, active, out_path)
        finally:
            out_path.unlink(missing_ok=True)
        if outcome is None:
            self._store.requeue(record.attempt_id)
            return
        self._finish(record, outcome)

    def _render_and_upload(self, record: JobRecord, active: _Active, out_path: Path) -> _Outcome | None:
        """The job's outcome; None when the agent is stopping and the job should run on the next start."""
        request = record.request
        progress = ProgressWriter(self._store, record.attempt_id)
        try:
            result = self._engine.render(request, out_path, progress, active.cancel)
        except EngineCancelled as exc:
            if active.user_cancelled or not self._stopping.is_set():
                return _Outcome("cancelled", exc.gpu_seconds)
            return None
        except EngineError as exc:
            return _Outcome("failed", exc.gpu_seconds, exc.reason)
        except Exception as exc:  # an engine bug (or FFmpeg) still ends the job, with something to go on
            log.exception("engine crashed on %s", record.attempt_id)
            return _Outcome("failed", 0.0, f"engine error: {type(exc).__name__}: {exc}")
        try:
            output = upload(out_path, request.output.put_url, request.output.content_type)
        except UploadError as exc:
            return _Outcome("failed", result.gpu_seconds, str(exc))
        if active.user_cancelled:
            # Cancelled while uploading: the client no longer wants it, whatever landed at the URL.
            return _Outcome("cancelled", result.gpu_seconds)
        return _Outcome("succeeded", result.gpu_seconds, output=output)

    def _finish(self, record: JobRecord, outcome: _Outcome) -> None:
        finished = self._store.finish(
            record.attempt_id, outcome.status, gpu_seconds=outcome.gpu_seconds, error=outcome.error,
            output=outcome.output,
        )
        if finished is not None and finished.callback_pending:
            self._callbacks.notify(record.attempt_id)


class ProgressWriter:
    """The engine's progress callback: throttled writes to the store."""

    def __init__(self, store: JobStore, attempt_id: str) -> None:
        self._store = store
        self._attempt_id = attempt_id
        self._last_value = -1.0
        self._last_at = 0.0

    def __call__(self, fraction: float) -> None:
        now = time.monotonic()
        if fraction - self._last_value >= 0.01 or now - self._last_at >= _PROGRESS_INTERVAL_S:
            if fraction != self._last_value:
                self._store.set_progress(self._attempt_id, fraction)
            self._last_value = fraction
            self._last_at = now
