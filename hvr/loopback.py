"""The HTTP server the embedded stack's own endpoints run on: the API Gateway stand-in and the provider sandboxes."""

from __future__ import annotations

import socket
import sys
from http.server import ThreadingHTTPServer
from typing import Any


class LoopbackServer(ThreadingHTTPServer):
    # socketserver's listen backlog is 5: a burst of clients (a test's thread pool, a campaign's uploads) overflows
    # it and the kernel drops or resets the rest. A managed API queues them; so does this, as far as the kernel allows.
    request_queue_size = socket.SOMAXCONN

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that hangs up mid-request or mid-response (a CLI that could not write the file it was streaming, a
        # worker killed mid-call) is the client's business, as behind API Gateway or a provider's API; socketserver
        # would print a traceback for each (44 in the 10,000-job storm's log, all from sandboxes).
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)
