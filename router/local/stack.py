"""The pieces of a local run wired together: moto on loopback, the template's resources, the GPU agent on its
`sim` engine, and the worker function fed by a local event source mapping. Used by `make demo` and the tests."""

from __future__ import annotations

import os
import secrets
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from router.local.esm import EventSourceMapping
from router.local.moto_server import LOCAL_ENV, LockedMotoServer
from router.local.provision import Stack, provision


class LocalStack:
    def __init__(self, workdir: Path, time_scale: float = 1000.0, with_agent: bool = True) -> None:
        self.workdir = Path(workdir)
        self.time_scale = time_scale
        self.with_agent = with_agent
        self.agent_secret = secrets.token_hex(16)
        self.moto = LockedMotoServer()
        self.agent: Any = None
        self.stack: Stack | None = None
        self.worker: EventSourceMapping | None = None
        self._saved_env: dict[str, str | None] = {}

    def start(self) -> LocalStack:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.moto.start()
        self._set_env({**LOCAL_ENV, "AWS_ENDPOINT_URL": self.moto.url})
        from router.store.aws import client

        clients = {name: client(name, self.moto.url) for name in ("dynamodb", "sqs", "s3")}
        self.stack = provision(clients, time_scale=self.time_scale)
        env = self.stack.function_env("WorkerFunction")
        env["HVR_TIME_SCALE"] = str(self.time_scale)
        if self.with_agent:
            from agent.launcher import AgentProcess

            self.agent = AgentProcess(self.workdir / "agent.sqlite", secrets=[self.agent_secret],
                                      time_scale=self.time_scale, agent_id="agent-1").start()
            env.update({"HVR_AGENT_URL": self.agent.url, "HVR_AGENT_SECRET": self.agent_secret})
        else:
            env.update({"HVR_AGENT_URL": "", "HVR_AGENT_SECRET": ""})
        self._set_env(env)
        self.reset_caches()
        from functions.worker.handler import lambda_handler

        self.worker = EventSourceMapping(clients["sqs"], self.stack.queue_urls["JobsQueue"], lambda_handler,
                                         function_name="WorkerFunction")
        return self

    @staticmethod
    def reset_caches() -> None:
        """Settings and clients are cached per process, as in Lambda; a new stack starts them afresh."""
        from router.services.deps import default_deps
        from router.settings import get_settings

        get_settings.cache_clear()
        default_deps.cache_clear()

    @property
    def deps(self) -> Any:
        from router.services.deps import default_deps

        return default_deps()

    def drain(self, done: Callable[[], bool], timeout_s: float = 60.0, idle_sleep_s: float = 0.1) -> bool:
        """Run the worker until `done()` or the timeout; True if done."""
        assert self.worker is not None
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if done():
                return True
            if self.worker.poll_once() == 0:
                time.sleep(idle_sleep_s)
        return done()

    def stop(self) -> None:
        if self.agent is not None:
            self.agent.stop()
        self.moto.stop()
        for key, value in self._saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        self.reset_caches()

    def _set_env(self, values: dict[str, str]) -> None:
        for key, value in values.items():
            self._saved_env.setdefault(key, os.environ.get(key))
            os.environ[key] = value

    def __enter__(self) -> LocalStack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
