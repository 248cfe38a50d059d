"""`hvr-agent` / `python -m agent`: run the agent under uvicorn until SIGINT or SIGTERM; `hvr-agent models check`
lists the model files the box holds (agent.models_cli)."""

from __future__ import annotations

import logging
import os
import socket
import sys
import threading
import time
from collections.abc import Sequence

import uvicorn

from agent.app import create_app
from agent.config import PARENT_ENV, READY_PREFIX, ConfigError, load_settings


class _Server(uvicorn.Server):
    """Announces the bound address once the socket listens: with --port 0 it is the only way to learn it."""

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        if self.should_exit or not self.servers:
            return
        host, port = self.servers[0].sockets[0].getsockname()[:2]
        shown = f"[{host}]" if ":" in host else host
        print(f"{READY_PREFIX}http://{shown}:{port}", flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["models"]:
        from agent.models_cli import main as models_main

        return models_main(args[1:])
    try:
        settings = load_settings(argv)
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        # httpx logs every request URL at INFO; ours are presigned S3 URLs whose query string is a credential.
        logging.getLogger("httpx").setLevel(logging.WARNING)
        app = create_app(settings)
    except (ConfigError, ValueError) as exc:
        print(f"hvr-agent: {exc}", file=sys.stderr)
        return 2
    config = uvicorn.Config(app, host=settings.host, port=settings.port, log_level="info", lifespan="on")
    server = _Server(config)
    _exit_with_parent(server)
    server.run()
    return 0 if server.started else 1


def _exit_with_parent(server: uvicorn.Server, every_s: float = 1.0) -> None:
    """Started by agent.launcher (hvr's embedded stack, tests): stop as on SIGTERM once that process is gone, even
    SIGKILLed, instead of living on as an orphan that holds its port."""
    raw = os.environ.get(PARENT_ENV, "")
    if not raw.isdigit() or os.getppid() != int(raw):
        return  # run by hand, or through a wrapper: no launcher to outlive

    def watch() -> None:
        while os.getppid() == int(raw):
            time.sleep(every_s)
        server.should_exit = True

    threading.Thread(target=watch, name="hvr-agent-parent", daemon=True).start()


if __name__ == "__main__":
    sys.exit(main())
