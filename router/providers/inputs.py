"""Fetching a job's input before anything is sent to a provider that wants the bytes.

The URL is our own presigned one or the client's https URL, so it goes through the checked downloader
(router.providers.download) like any URL someone else chose. A failure here happens before any provider job can
exist, and is the input's, not the provider's: `InputRejected` (the input itself is wrong: refused address, gone,
too big) or `InputUnavailable` (try again later) — never `OutcomeUnknown`, and never counted against the provider's
circuit. A plain client, so no provider credential ever travels to the input's host.
"""

from __future__ import annotations

import httpx

from router.providers.download import UnsafeDownload, fetch_bytes
from router.providers.errors import InputRejected, InputUnavailable


def fetch_input(url: str, kind: str, max_bytes: int, allow_loopback: bool = False) -> bytes:
    """`allow_loopback`: the embedded stack's bucket is on loopback (see download's loopback exemption)."""
    try:
        return fetch_bytes(url, max_bytes, allow_loopback=allow_loopback)
    except UnsafeDownload as exc:
        upstream = exc.upstream_status
        if upstream is not None and (upstream >= 500 or upstream in (408, 429)):
            raise InputUnavailable(f"input {kind} fetch failed: {exc}") from exc
        raise InputRejected(f"input {kind} refused: {exc}") from exc
    except httpx.HTTPError as exc:
        raise InputUnavailable(f"input {kind} fetch failed: {exc}") from exc
