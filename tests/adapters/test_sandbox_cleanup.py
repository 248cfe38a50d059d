"""Every sandbox removes what it wrote when it stops: a test run leaves no `hvr-<provider>-*` folder behind."""

from __future__ import annotations

import socket
import struct
import time
from urllib.parse import urlsplit

import httpx
import pytest

from hvr.sandbox.all import Sandboxes
from hvr.sandbox.replicate import ReplicateSandbox


def test_stopped_sandboxes_leave_nothing_in_the_temp_folder() -> None:
    sandboxes = Sandboxes().start()
    servers = list(sandboxes.servers.values())
    workdirs = [server.workdir for server in servers]
    for server in servers:
        (server.workdir / "rendered.mp4").write_bytes(b"\x00")  # what a render leaves
        httpx.get(f"{server.url}/", timeout=10)  # serving, whatever it answers
    assert all(path.is_dir() for path in workdirs)

    sandboxes.stop()

    assert [path for path in workdirs if path.exists()] == []


def test_a_client_that_resets_mid_request_costs_no_traceback_and_the_sandbox_keeps_serving(
        capfd: pytest.CaptureFixture[str]) -> None:
    """A worker killed mid-call resets its connection; socketserver printed a traceback for each (44 in the
    10,000-job storm's log). Like the API Gateway stand-in, a sandbox leaves a hang-up to the client."""
    with ReplicateSandbox(("r8_sandbox",)) as sandbox:
        host, port = urlsplit(sandbox.url).hostname, urlsplit(sandbox.url).port
        for _ in range(3):
            with socket.create_connection((host, port)) as conn:
                conn.sendall(b"GET /v1/predictions HTTP/1.1\r\nHost: x\r\n")  # the request is not finished...
                # ...and the connection is reset rather than closed (SO_LINGER 0: an RST, as a killed process's)
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        time.sleep(0.5)  # the handler threads meet the reset
        answer = httpx.get(f"{sandbox.url}/v1/predictions", headers={"Authorization": "Bearer r8_sandbox"}, timeout=10)

    assert answer.status_code == 200
    assert "Traceback" not in capfd.readouterr().err
