"""`hvr-agent` / `python -m agent`: run the agent under uvicorn until SIGINT or SIGTERM."""

from __future__ import annotations

import logging
import socket
import sys
from collections.abc import Sequence

import uvicorn

from agent.app import create_app
from agent.config import READY_PREFIX, ConfigError, load_settings


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
    server.run()
    return 0 if server.started else 1


if __name__ == "__main__":
    sys.exit(main())
