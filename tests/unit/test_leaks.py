"""The leak check that runs after every test session (tests/leaks.py): it sees a child process and a sandbox folder
while they exist, and not once they are gone."""

from __future__ import annotations

import subprocess
import sys

from hvr.sandbox.base import SandboxServer
from tests.leaks import descendants, temp_dirs


def test_a_child_process_is_seen_until_it_is_stopped() -> None:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        assert child.pid in descendants()
    finally:
        child.kill()
        child.wait()
    assert child.pid not in descendants()


def test_a_sandboxs_temp_folder_is_seen_until_it_stops() -> None:
    server = SandboxServer().start()
    assert server.workdir.name in temp_dirs()
    server.stop()
    assert server.workdir.name not in temp_dirs()
