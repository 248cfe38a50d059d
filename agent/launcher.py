"""Run the agent as a real subprocess (for the router's demo and integration tests).

A real process, not an app in a thread, so tests exercise what production runs: uvicorn, signals, a restart
on the same SQLite file, and a SIGKILL mid-render. The agent's output goes to a log file (a pipe nobody
drains would eventually block it); the ready line in that log gives the port when port 0 asked for any.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Self

import httpx

from agent.config import KEY_SECRET_ENV, PARENT_ENV, READY_PREFIX, SECRETS_ENV

_PROJECT_ROOT = Path(__file__).resolve().parent.parent


class AgentStartError(RuntimeError):
    """The agent process exited or never answered its health check; the message ends with its log."""


class AgentProcess:
    def __init__(
        self,
        db_path: Path | str,
        *,
        secrets: Sequence[str],
        host: str = "127.0.0.1",
        port: int = 0,
        slots: int = 1,
        time_scale: float = 1.0,
        agent_id: str = "local-gpu",
        models_file: Path | None = None,
        log_path: Path | None = None,
        env: Mapping[str, str] | None = None,
        startup_timeout_s: float = 30.0,
    ) -> None:
        if not secrets and not (env or {}).get(KEY_SECRET_ENV):
            raise ValueError("the agent refuses to start without a secret: a shared one, or a key of its own")
        self.db_path = Path(db_path)
        self.log_path = log_path or self.db_path.with_name(self.db_path.name + ".log")
        self._secrets = tuple(secrets)
        self._host = host
        self._port = port
        self._slots = slots
        self._time_scale = time_scale
        self._agent_id = agent_id
        self._models_file = models_file
        self._extra_env = dict(env or {})
        self._startup_timeout_s = startup_timeout_s
        self._process: subprocess.Popen[bytes] | None = None
        self._url: str | None = None

    @property
    def url(self) -> str:
        """Base URL, e.g. http://127.0.0.1:41234; the same across restarts of this object."""
        if self._url is None:
            raise RuntimeError("the agent has not been started")
        return self._url

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process and self._process.poll() is None else None

    @property
    def running(self) -> bool:
        return self.pid is not None

    @property
    def returncode(self) -> int | None:
        """The exit status of the last process, once it has exited; None while it runs or before any start."""
        return self._process.poll() if self._process is not None else None

    def _argv(self) -> list[str]:
        argv = [
            sys.executable, "-m", "agent",
            "--host", self._host, "--port", str(self._port), "--db", str(self.db_path),
            "--slots", str(self._slots), "--time-scale", repr(self._time_scale), "--agent-id", self._agent_id,
        ]
        if self._models_file is not None:
            argv += ["--models-file", str(self._models_file)]
        return argv

    def _env(self) -> dict[str, str]:
        env = {**os.environ, **self._extra_env, SECRETS_ENV: ",".join(self._secrets), "PYTHONUNBUFFERED": "1",
               PARENT_ENV: str(os.getpid())}  # never an orphan: it stops if this process dies unannounced
        # So `-m agent` resolves to this checkout even where the project isn't installed.
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(_PROJECT_ROOT), env.get("PYTHONPATH", "")) if p)
        return env

    def start(self) -> Self:
        """Start the agent (again, on the same db and port after a stop or kill); wait until it is healthy."""
        if self.running:
            raise RuntimeError("the agent is already running")
        self.db_path.parent.mkdir(parents=True, exist_ok=True)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            offset = log.tell()
            self._process = subprocess.Popen(
                self._argv(), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=self._env()
            )
        try:
            self._url = self._await_ready(offset)
            # Later starts reuse the port, so a client holding the URL reaches the restarted agent.
            self._port = int(self._url.rsplit(":", 1)[1])
        except BaseException:
            self.kill()
            raise
        return self

    def _await_ready(self, offset: int) -> str:
        deadline = time.monotonic() + self._startup_timeout_s
        url: str | None = None
        while time.monotonic() < deadline:
            if self._process is None or self._process.poll() is not None:
                raise AgentStartError(f"agent exited during startup:\n{self._log_tail(offset)}")
            url = url or self._ready_url(offset)
            if url is not None and self._healthy(url):
                return url
            time.sleep(0.05)
        tail = self._log_tail(offset)
        raise AgentStartError(f"agent not healthy after {self._startup_timeout_s} s:\n{tail}")

    def _ready_url(self, offset: int) -> str | None:
        with self.log_path.open("rb") as log:
            log.seek(offset)
            for line in log.read().decode(errors="replace").splitlines():
                if line.startswith(READY_PREFIX):
                    return line[len(READY_PREFIX):].strip()
        return None

    @staticmethod
    def _healthy(url: str) -> bool:
        try:
            return httpx.get(f"{url}/v1/health", timeout=2.0).status_code == 200
        except httpx.HTTPError:
            return False

    def _log_tail(self, offset: int, limit: int = 4000) -> str:
        with self.log_path.open("rb") as log:
            log.seek(offset)
            return log.read().decode(errors="replace")[-limit:]

    def stop(self, timeout_s: float = 15.0) -> int | None:
        """Graceful stop (SIGTERM: running jobs go back to the queue), SIGKILL if it hangs; the exit code."""
        process = self._process
        if process is None:
            return None
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        return process.returncode

    def kill(self) -> None:
        """SIGKILL, to simulate a crash: nothing in the agent gets to clean up."""
        process = self._process
        if process is not None and process.poll() is None:
            process.kill()
            process.wait()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
