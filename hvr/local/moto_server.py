"""moto as a real HTTP server on loopback, behind one lock.

moto's backends are not thread-safe: two requests interleaving inside a conditional write can both "succeed".
Serializing every request keeps the emulation honest while many clients (worker, agent uploads, tests) talk to it.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from typing import Any

from werkzeug.serving import BaseWSGIServer, make_server

REGION = "us-east-1"
LOCAL_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": REGION,
    "AWS_REGION": REGION,
}


class LockedMotoServer:
    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self._host, self._port = host, port
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def start(self) -> LockedMotoServer:
        from moto.moto_server.werkzeug_app import (
            DomainDispatcherApplication,
            MotoRequestHandler,
            create_backend_app,
        )

        app = DomainDispatcherApplication(create_backend_app)

        def locked(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
            with self._lock:
                # Drain the response inside the lock: moto builds some bodies lazily from live state.
                return list(app(environ, start_response))

        class QuietHandler(MotoRequestHandler):
            def log_request(self, *args: Any, **kwargs: Any) -> None:
                """One line per AWS call drowns the demo's output; errors are still logged."""

        self._server = make_server(self._host, self._port, locked, threaded=True, request_handler=QuietHandler)
        self._thread = threading.Thread(target=self._server.serve_forever, name="moto", daemon=True)
        self._thread.start()
        return self

    @property
    def url(self) -> str:
        assert self._server is not None, "start() first"
        return f"http://{self._host}:{self._server.server_port}"

    def stop(self) -> None:
        # moto keeps one state per process, shared by every server in it: wipe it so the next stack starts empty.
        from moto.moto_api._internal.models import moto_api_backend

        with self._lock:
            moto_api_backend.reset()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> LockedMotoServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
