"""Fetching a job's input (our own presigned URL) before anything is sent to a provider that wants the bytes.

A failure here happens before any provider job can exist, so it is `Rejected` (the input itself is wrong: gone,
too big, not https) or `Unavailable` (try again later) — never `OutcomeUnknown`. A plain client, so no provider
credential ever travels to the bucket.
"""

from __future__ import annotations

from urllib.parse import urlsplit

import httpx

from router.providers.errors import Rejected, Unavailable


def fetch_input(url: str, kind: str, max_bytes: int, allow_http: bool = False) -> bytes:
    scheme = urlsplit(url).scheme
    if scheme != "https" and not (scheme == "http" and allow_http):
        raise Rejected(f"input URLs must be https, got {scheme or 'none'}")
    try:
        with httpx.stream("GET", url, timeout=httpx.Timeout(30.0, connect=5.0)) as response:
            if response.status_code in (403, 404, 410):
                raise Rejected(f"input {kind} not readable: HTTP {response.status_code}")
            if response.status_code != 200:
                raise Unavailable(f"input {kind} fetch failed: HTTP {response.status_code}")
            chunks, size = [], 0
            for chunk in response.iter_bytes():
                size += len(chunk)
                if size > max_bytes:
                    raise Rejected(f"input {kind} larger than {max_bytes} bytes")
                chunks.append(chunk)
    except httpx.HTTPError as exc:
        raise Unavailable(f"input {kind} fetch failed: {exc}") from exc
    return b"".join(chunks)
