"""Getting results out of the agent: the MP4 PUT to the presigned URL, and the signed callback to the router.

The upload decides the job's outcome (no upload, no output), so it retries transient failures and then gives
a reason. The callback is a courtesy on top of polling: it retries a few times, and whether it lands never
changes a job; a delivery cut short by a shutdown stays marked in the store and is retried on the next start.
"""

from __future__ import annotations

import hashlib
import logging
import queue
import threading
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from agent.schemas import Job, JobOutput
from agent.store import JobStore
from router.providers.download import tls
from router.signing import AGENT_NAME_HEADER, KEY_ID_HEADER, sign

log = logging.getLogger("hvr.agent.delivery")

_RETRYABLE_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})
_UPLOAD_TIMEOUT = httpx.Timeout(120.0, connect=10.0)
_CALLBACK_TIMEOUT = httpx.Timeout(10.0)


class UploadError(Exception):
    """The output could not be stored at the presigned URL; the message is the job's failure reason."""


def _backoff(attempt: int, base_s: float) -> float:
    return base_s * (2**attempt)


def file_digest(path: Path) -> tuple[int, str]:
    """Size and SHA-256 of a file, read in chunks (a real engine's output can be large)."""
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
            size += len(chunk)
    return size, digest.hexdigest()


def upload(
    path: Path,
    put_url: str,
    content_type: str,
    *,
    attempts: int = 4,
    backoff_s: float = 0.5,
    sleep: Callable[[float], None] = time.sleep,
) -> JobOutput:
    """PUT the file (streamed with a Content-Length: presigned S3 PUTs refuse chunked bodies); describe it."""
    size, sha256 = file_digest(path)
    last = "no attempt made"
    with httpx.Client(timeout=_UPLOAD_TIMEOUT, verify=tls()) as client:
        for attempt in range(attempts):
            if attempt:
                sleep(_backoff(attempt - 1, backoff_s))
            try:
                with path.open("rb") as body:
                    response = client.put(put_url, content=body, headers={"Content-Type": content_type})
            except httpx.TransportError as exc:
                last = f"{type(exc).__name__}: {exc}"
                continue
            if response.is_success:
                return JobOutput(bytes=size, sha256=sha256, content_type=content_type)
            last = f"HTTP {response.status_code}"
            if response.status_code not in _RETRYABLE_STATUS:
                break  # an expired or wrong presigned URL won't get better by retrying
    raise UploadError(f"upload failed: {last}")


class CallbackSender:
    """Posts terminal jobs to their callback URL from one background thread, signed with `secret`. With `key`
    (the box's name and key id) the secret is the box's own key, and the callback says whose it is, so the router
    checks it against that box's keys rather than a secret the fleet shares."""

    def __init__(
        self, store: JobStore, secret: str, *, key: tuple[str, str] | None = None, attempts: int = 4,
        backoff_s: float = 0.5
    ) -> None:
        self._store = store
        self._secret = secret
        self._key_headers = {AGENT_NAME_HEADER: key[0], KEY_ID_HEADER: key[1]} if key else {}
        self._attempts = attempts
        self._backoff_s = backoff_s
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="hvr-agent-callbacks", daemon=True)

    def start(self) -> None:
        for record in self._store.pending_callbacks():
            self._queue.put(record.attempt_id)
        self._thread.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        # Anything still queued keeps callback_pending=1 in the store and goes out on the next start.
        self._stopping.set()
        self._queue.put(None)
        if self._thread.is_alive():
            self._thread.join(timeout_s)

    def notify(self, attempt_id: str) -> None:
        self._queue.put(attempt_id)

    def _loop(self) -> None:
        while not self._stopping.is_set():
            attempt_id = self._queue.get()
            if attempt_id is None:
                return
            record = self._store.get(attempt_id)
            if record is None or not record.callback_pending or record.request.callback_url is None:
                continue
            delivered = self._deliver(record.request.callback_url, record.job)
            if delivered or not self._stopping.is_set():
                # Delivered, or given up on: polling still reports the job; retrying forever would pile up.
                # Only an interrupted delivery stays pending, for the next start.
                self._store.callback_done(attempt_id)

    def _deliver(self, url: str, job: Job) -> bool:
        body = job.model_dump_json().encode()
        parts = urlsplit(url)
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        with httpx.Client(timeout=_CALLBACK_TIMEOUT, verify=tls()) as client:
            for attempt in range(self._attempts):
                if attempt and self._stopping.wait(_backoff(attempt - 1, self._backoff_s)):
                    return False
                # Signed afresh each time: the receiver refuses a nonce it has seen.
                headers = {**sign(self._secret, "POST", target, body), **self._key_headers,
                           "Content-Type": "application/json"}
                try:
                    response = client.post(url, content=body, headers=headers)
                except httpx.TransportError as exc:
                    log.warning("callback for %s failed: %s", job.id, exc)
                    continue
                if response.is_success:
                    return True
                log.warning("callback for %s answered HTTP %s", job.id, response.status_code)
                if response.status_code not in _RETRYABLE_STATUS:
                    return False
        return False
