"""Every sandbox removes what it wrote when it stops: a test run leaves no `hvr-<provider>-*` folder behind."""

from __future__ import annotations

import httpx

from hvr.sandbox.all import Sandboxes


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
