"""SQLite job store: the agent's only state, so a crash or restart loses nothing.

One connection shared by the HTTP threads and the workers, serialised by a lock: every statement is short,
and one writer at a time is what SQLite does anyway. WAL keeps readers of the file (an operator's sqlite3
shell) from blocking the agent. Every status change is a conditional UPDATE, so two threads can't both move
a job on.

The queue runs earliest deadline first, jobs without a deadline last, ties in creation order: a short job due
soon goes ahead of a long one due tomorrow, which a first-come queue would make it miss. A running render is never
interrupted for it. The deadline is read from the stored create body, so the table needs no new column.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from agent.schemas import CreateJobRequest, Job, JobOutput, JobStatus, utc_now, utc_stamp
from router.signing import MAX_SKEW_S

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,      -- creation order, which is also queue order
    attempt_id TEXT NOT NULL UNIQUE,
    job_id TEXT NOT NULL,                       -- the router's job, for operators (and tests) reading the file
    model TEXT NOT NULL,
    request TEXT NOT NULL,                      -- the create body, so a restarted agent can run the job again
    status TEXT NOT NULL,
    progress REAL NOT NULL DEFAULT 0,
    gpu_seconds REAL NOT NULL DEFAULT 0,
    error TEXT,
    created_at TEXT NOT NULL,
    started_at TEXT,
    ended_at TEXT,
    output_bytes INTEGER,
    output_sha256 TEXT,
    output_content_type TEXT,
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    callback_pending INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS jobs_by_status ON jobs (status, seq);
-- The health check's utilization reads the jobs that ended lately, every call, and the table keeps every job ever run.
CREATE INDEX IF NOT EXISTS jobs_by_end ON jobs (ended_at);
CREATE TABLE IF NOT EXISTS nonces (
    nonce TEXT PRIMARY KEY,
    ts INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS nonces_by_ts ON nonces (ts);
"""

# A job's place in the run order: its deadline as a Julian day (SQLite reads the ISO 8601 `Z` or offset form), a
# day past any real one when it has none.
_DUE = "COALESCE(julianday(json_extract({t}.request, '$.deadline')), 1e9)"
_RUN_ORDER = f"{_DUE.format(t='j')}, j.seq"

_SELECT = f"""
SELECT j.*, CASE WHEN j.status = 'queued'
    THEN (SELECT COUNT(*) FROM jobs q WHERE q.status = 'queued'
          AND ({_DUE.format(t='q')} < {_DUE.format(t='j')}
               OR ({_DUE.format(t='q')} = {_DUE.format(t='j')} AND q.seq < j.seq))) ELSE 0
    END AS queue_position
FROM jobs j
"""


@dataclass(frozen=True)
class JobRecord:
    request: CreateJobRequest
    job: Job
    cancel_requested: bool
    callback_pending: bool

    @property
    def attempt_id(self) -> str:
        return self.job.id


@dataclass(frozen=True)
class Recovery:
    requeued: int
    cancelled: int


class JobStore:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        # isolation_level=None: autocommit, and BEGIN IMMEDIATE where several statements must be atomic.
        self._conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=30)
        self._conn.row_factory = sqlite3.Row
        with self._lock:
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=NORMAL")
            self._conn.executescript(_SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    # -- nonces ---------------------------------------------------------------------------------------------

    def nonce_is_fresh(self, nonce: str, ts: int, *, now: float | None = None) -> bool:
        """Record the nonce; False when it was already seen. Rows older than the skew window are pruned, since
        a request that old fails the timestamp check before its nonce is ever looked at."""
        horizon = int(time.time() if now is None else now) - MAX_SKEW_S - 1
        with self._transaction() as conn:
            conn.execute("DELETE FROM nonces WHERE ts < ?", (horizon,))
            inserted = conn.execute("INSERT OR IGNORE INTO nonces (nonce, ts) VALUES (?, ?)", (nonce, ts))
            return inserted.rowcount == 1

    # -- jobs -----------------------------------------------------------------------------------------------

    def create(self, request: CreateJobRequest) -> tuple[JobRecord, bool]:
        """Insert a queued job unless the attempt id exists; returns the stored job and whether it is new."""
        with self._transaction() as conn:
            cursor = conn.execute(
                """INSERT OR IGNORE INTO jobs (attempt_id, job_id, model, request, status, created_at)
                   VALUES (?, ?, ?, ?, 'queued', ?)""",
                (request.attempt_id, request.job_id, request.model, request.model_dump_json(), utc_now()),
            )
            created = cursor.rowcount == 1
            record = self._fetch(conn, request.attempt_id)
        if record is None:  # can't happen: inserted or already there, inside one transaction
            raise RuntimeError(f"job {request.attempt_id!r} vanished while being created")
        return record, created

    def get(self, attempt_id: str) -> JobRecord | None:
        with self._lock:
            return self._fetch(self._conn, attempt_id)

    def active(self) -> list[JobRecord]:
        """Running jobs, then queued ones, in the order they run."""
        with self._lock:
            rows = self._conn.execute(
                _SELECT + f" WHERE j.status IN ('queued', 'running') ORDER BY j.status = 'queued', {_RUN_ORDER}"
            ).fetchall()
        return [_record(row) for row in rows]

    def claim_next(self) -> JobRecord | None:
        """Move the queued job due first to running and return it; None when the queue is empty."""
        with self._transaction() as conn:
            row = conn.execute(
                f"SELECT attempt_id FROM jobs j WHERE status = 'queued' ORDER BY {_RUN_ORDER} LIMIT 1"
            ).fetchone()
            if row is None:
                return None
            conn.execute(
                "UPDATE jobs SET status = 'running', started_at = ?, progress = 0 WHERE attempt_id = ?",
                (utc_now(), row["attempt_id"]),
            )
            return self._fetch(conn, row["attempt_id"])

    def set_progress(self, attempt_id: str, progress: float) -> None:
        with self._lock:
            self._conn.execute(
                "UPDATE jobs SET progress = ? WHERE attempt_id = ? AND status = 'running'",
                (min(max(progress, 0.0), 1.0), attempt_id),
            )

    def finish(
        self,
        attempt_id: str,
        status: JobStatus,
        *,
        gpu_seconds: float,
        error: str | None = None,
        output: JobOutput | None = None,
    ) -> JobRecord | None:
        """Move a running job to a terminal status; None when it was no longer running (nothing changed)."""
        with self._transaction() as conn:
            cursor = conn.execute(
                """UPDATE jobs SET status = ?, gpu_seconds = ?, error = ?, ended_at = ?,
                       progress = CASE WHEN ? = 'succeeded' THEN 1.0 ELSE progress END,
                       output_bytes = ?, output_sha256 = ?, output_content_type = ?,
                       callback_pending = json_extract(request, '$.callback_url') IS NOT NULL
                   WHERE attempt_id = ? AND status = 'running'""",
                (
                    status, gpu_seconds, error, utc_now(), status,
                    output.bytes if output else None,
                    output.sha256 if output else None,
                    output.content_type if output else None,
                    attempt_id,
                ),
            )
            return self._fetch(conn, attempt_id) if cursor.rowcount == 1 else None

    def cancel(self, attempt_id: str) -> tuple[JobRecord | None, bool]:
        """Cancel a job: a queued one is dequeued at once (returns True: it changed), a running one is only
        flagged, for its worker to interrupt; terminal jobs are left alone. (None, False) when unknown."""
        with self._transaction() as conn:
            dequeued = conn.execute(
                """UPDATE jobs SET status = 'cancelled', ended_at = ?,
                       callback_pending = json_extract(request, '$.callback_url') IS NOT NULL
                   WHERE attempt_id = ? AND status = 'queued'""",
                (utc_now(), attempt_id),
            ).rowcount == 1
            conn.execute("UPDATE jobs SET cancel_requested = 1 WHERE attempt_id = ? AND status = 'running'",
                         (attempt_id,))
            return self._fetch(conn, attempt_id), dequeued

    def requeue(self, attempt_id: str) -> None:
        """Put a running job back in its place in the queue for the next start (the agent is stopping)."""
        with self._lock:
            self._conn.execute(
                """UPDATE jobs SET status = 'queued', progress = 0, started_at = NULL
                   WHERE attempt_id = ? AND status = 'running'""",
                (attempt_id,),
            )

    def recover(self) -> Recovery:
        """After a crash, jobs still marked running were interrupted: re-queue them (keeping their creation
        order), except those a cancel was already asked for, which end cancelled."""
        with self._transaction() as conn:
            cancelled = conn.execute(
                """UPDATE jobs SET status = 'cancelled', ended_at = ?,
                       callback_pending = json_extract(request, '$.callback_url') IS NOT NULL
                   WHERE status = 'running' AND cancel_requested = 1""",
                (utc_now(),),
            ).rowcount
            requeued = conn.execute(
                "UPDATE jobs SET status = 'queued', progress = 0, started_at = NULL WHERE status = 'running'"
            ).rowcount
        return Recovery(requeued=requeued, cancelled=cancelled)

    def busy_seconds(self, window_s: float, *, now: float | None = None) -> float:
        """Wall-clock seconds the slots spent rendering in the last `window_s`: each job's run, from its start to
        its end (or now, while it runs), clipped to the window and summed over the jobs, so at most window_s times
        the slots. A job never started adds nothing, nor does a render a restart interrupted: re-queueing it
        clears its start."""
        end = time.time() if now is None else now
        start = end - window_s
        with self._lock:
            rows = self._conn.execute(
                """SELECT started_at, ended_at FROM jobs
                   WHERE started_at IS NOT NULL AND (ended_at IS NULL OR ended_at > ?)""",
                (utc_stamp(datetime.fromtimestamp(start, UTC)),),
            ).fetchall()
        busy = 0.0
        for row in rows:
            ran_until = end if row["ended_at"] is None else min(_epoch(row["ended_at"]), end)
            busy += max(0.0, ran_until - max(_epoch(row["started_at"]), start))
        return busy

    def pending_callbacks(self) -> list[JobRecord]:
        with self._lock:
            rows = self._conn.execute(_SELECT + " WHERE j.callback_pending = 1 ORDER BY j.seq").fetchall()
        return [_record(row) for row in rows]

    def callback_done(self, attempt_id: str) -> None:
        with self._lock:
            self._conn.execute("UPDATE jobs SET callback_pending = 0 WHERE attempt_id = ?", (attempt_id,))

    @staticmethod
    def _fetch(conn: sqlite3.Connection, attempt_id: str) -> JobRecord | None:
        row = conn.execute(_SELECT + " WHERE j.attempt_id = ?", (attempt_id,)).fetchone()
        return None if row is None else _record(row)


def _epoch(stamp: str) -> float:
    return datetime.fromisoformat(stamp).timestamp()


def _record(row: sqlite3.Row) -> JobRecord:
    request = CreateJobRequest.model_validate_json(row["request"])
    output = None
    if row["output_sha256"] is not None:
        output = JobOutput(bytes=row["output_bytes"], sha256=row["output_sha256"],
                           content_type=row["output_content_type"])
    job = Job(
        id=row["attempt_id"],
        job_id=request.job_id,
        model=request.model,
        status=row["status"],
        progress=row["progress"],
        queue_position=row["queue_position"],
        gpu_seconds=row["gpu_seconds"],
        error=row["error"],
        created_at=row["created_at"],
        started_at=row["started_at"],
        ended_at=row["ended_at"],
        output=output,
    )
    return JobRecord(request=request, job=job, cancel_requested=bool(row["cancel_requested"]),
                     callback_pending=bool(row["callback_pending"]))
