"""Polling for a condition a background thread or process brings about, rather than sleeping a guessed time."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any


def until(check: Callable[[], Any], timeout_s: float = 30.0, what: str = "the condition", every_s: float = 0.02
          ) -> Any:
    """`check()`'s first truthy answer, asked every `every_s` until `timeout_s`; AssertionError naming `what` after."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(every_s)
    raise AssertionError(f"timed out waiting for {what}")
