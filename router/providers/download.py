"""Fetching provider outputs into S3 without trusting the URL (reliability §6).

A provider — or whoever forged its webhook — chooses the output URL, so every hop is checked: https only, a host
on the provider's allow-list (exact or a vetted suffix; no userinfo, no port, no IP literal), every resolved
address public, and the connection made to the checked address (Host and SNI kept) so DNS can't be rebound between
the check and the request. Redirects are followed by hand, each re-checked, at most three. The body is capped,
sniffed for MP4/WebM magic, hashed while streaming and uploaded to S3 in parts as it arrives.

The embedded stack's sandboxes serve plain http on loopback; `allow_loopback=True` (off by default, set only by the
embedded stack) admits exactly that and nothing else.
"""

from __future__ import annotations

import hashlib
import io
import ipaddress
import socket
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit, urlunsplit

import httpx

MAX_BYTES = 2 * 1024**3
MAX_REDIRECTS = 3
MP4_MAGIC_OFFSET, MP4_MAGIC = 4, b"ftyp"
WEBM_MAGIC = b"\x1a\x45\xdf\xa3"


class UnsafeDownload(Exception):
    """The URL, an address it resolves to, a redirect or the body itself was refused; the message says which."""


@dataclass(frozen=True)
class Fetched:
    bytes: int
    sha256: str


def _is_loopback_host(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_url(url: str, allowed_hosts: Sequence[str], allow_loopback: bool = False) -> tuple[str, str]:
    """(host, address to connect to) for a URL that passes the rules, else UnsafeDownload."""
    parts = urlsplit(url)
    host = (parts.hostname or "").rstrip(".").lower()
    if allow_loopback and _is_loopback_host(host) and parts.scheme in ("http", "https"):
        return host, "127.0.0.1" if host == "localhost" else host
    if parts.scheme != "https":
        raise UnsafeDownload(f"not https: {parts.scheme}://")
    if parts.username or parts.password:
        raise UnsafeDownload("userinfo in URL")
    if parts.port not in (None, 443):
        raise UnsafeDownload(f"non-default port {parts.port}")
    try:
        host = host.encode("idna").decode()
    except UnicodeError as exc:
        raise UnsafeDownload(f"bad host name {host!r}") from exc
    try:
        ipaddress.ip_address(host)
    except ValueError:
        pass
    else:
        raise UnsafeDownload(f"IP literal host {host}")
    if not any(host == allowed or host.endswith("." + allowed) for allowed in allowed_hosts):
        raise UnsafeDownload(f"host {host} not on the provider's allow-list")
    try:
        infos = socket.getaddrinfo(host, 443, proto=socket.IPPROTO_TCP)
    except socket.gaierror as exc:
        raise UnsafeDownload(f"{host} does not resolve: {exc}") from exc
    addresses = [ipaddress.ip_address(info[4][0]) for info in infos]
    for address in addresses:
        mapped = getattr(address, "ipv4_mapped", None)
        if not address.is_global or (mapped is not None and not mapped.is_global):
            raise UnsafeDownload(f"{host} resolves to non-public address {address}")
    return host, str(addresses[0])


def _pinned(url: str, address: str) -> str:
    parts = urlsplit(url)
    netloc = f"[{address}]" if ":" in address else address
    if parts.port:
        netloc += f":{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, ""))


class _Body(io.RawIOBase):
    """The response body as a file for S3's multipart upload: capped, sniffed and hashed as it is read."""

    def __init__(self, chunks: Iterator[bytes], max_bytes: int) -> None:
        self._chunks = chunks
        self._pending = b""
        self._max = max_bytes
        self.total = 0
        self.digest = hashlib.sha256()
        self._sniffed = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        while not self._pending:
            chunk = next(self._chunks, None)
            if chunk is None:
                if not self._sniffed:
                    raise UnsafeDownload("empty or truncated body")
                return 0
            self._accept(chunk)
        size = min(len(buffer), len(self._pending))
        buffer[:size] = self._pending[:size]
        self._pending = self._pending[size:]
        return size

    def _accept(self, chunk: bytes) -> None:
        self.total += len(chunk)
        if self.total > self._max:
            raise UnsafeDownload(f"body larger than {self._max} bytes")
        if not self._sniffed:
            head = chunk
            if head[MP4_MAGIC_OFFSET:MP4_MAGIC_OFFSET + 4] != MP4_MAGIC and not head.startswith(WEBM_MAGIC):
                raise UnsafeDownload("not an MP4/WebM file (magic bytes)")
            self._sniffed = True
        self.digest.update(chunk)
        self._pending = chunk


def fetch_to_s3(url: str, allowed_hosts: Sequence[str], artifacts: object, key: str, *, allow_loopback: bool = False,
                max_bytes: int = MAX_BYTES, timeout_s: float = 60.0, client: httpx.Client | None = None) -> Fetched:
    """Download `url` into `artifacts` (an ArtifactStore) at `key`; every hop checked as the module says."""
    http = client or httpx.Client(timeout=httpx.Timeout(timeout_s, connect=5.0), follow_redirects=False)
    try:
        for _ in range(MAX_REDIRECTS + 1):
            host, address = check_url(url, allowed_hosts, allow_loopback)
            extensions = {} if _is_loopback_host(host) else {"sni_hostname": host}
            request = http.build_request("GET", _pinned(url, address), headers={"Host": urlsplit(url).netloc},
                                         extensions=extensions)
            response = http.send(request, stream=True)
            try:
                if response.is_redirect:
                    url = urljoin(url, response.headers.get("location", ""))
                    continue
                if response.status_code != 200:
                    raise UnsafeDownload(f"HTTP {response.status_code} fetching the output")
                declared = int(response.headers.get("content-length") or 0)
                if declared > max_bytes:
                    raise UnsafeDownload(f"declared size {declared} over the cap {max_bytes}")
                body = _Body(response.iter_bytes(1 << 20), max_bytes)
                artifacts.upload_stream(key, io.BufferedReader(body, 8 << 20))  # type: ignore[attr-defined]
                return Fetched(bytes=body.total, sha256=body.digest.hexdigest())
            finally:
                response.close()
        raise UnsafeDownload(f"more than {MAX_REDIRECTS} redirects")
    finally:
        if client is None:
            http.close()


def store_bytes(data: bytes, artifacts: object, key: str, max_bytes: int = MAX_BYTES) -> Fetched:
    """Inline outputs (Veo's video bytes) get the same cap and magic check as downloads."""
    body = _Body(iter([data]), max_bytes)
    artifacts.upload_stream(key, io.BufferedReader(body, 8 << 20))  # type: ignore[attr-defined]
    return Fetched(bytes=body.total, sha256=body.digest.hexdigest())


# Where each provider serves outputs (providers.md): exact hosts or vetted suffixes.
OUTPUT_HOSTS: dict[str, tuple[str, ...]] = {
    "replicate": ("replicate.delivery",),
    "runpod": ("runpod.io", "runpod.ai", "runpod.net"),
    "veo": ("storage.googleapis.com",),
}
