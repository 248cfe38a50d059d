"""Fetching URLs that someone else chose without trusting them (docs/architecture.md, "Admission and tenancy"):
provider outputs into S3, a client's input files, and (through `send_checked`) client callbacks. This is the one
place such a URL is connected to.

Every hop is checked: https only; the host a DNS name (router.hosts: no IP literal in any spelling, no userinfo,
no localhost) on an allow-list where the caller has one (outputs: the provider's hosts, exact or a vetted suffix,
port 443); every resolved address public; and the connection made to the checked address (Host and SNI kept) so DNS
can't be rebound between the check and the request. Redirects are followed by hand, each re-checked, at most three.
Bodies are capped; outputs are also sniffed for MP4/WebM magic, hashed while streaming and uploaded in parts.

The embedded stack's sandboxes and bucket serve on loopback; `allow_loopback=True` (off by default, set only by the
embedded stack) admits a literal loopback URL and nothing else — never a name that resolves there, and never a
redirect to loopback from anywhere but loopback.
"""

from __future__ import annotations

import hashlib
import io
import ipaddress
import socket
import ssl
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from urllib.parse import urljoin, urlsplit, urlunsplit

import httpx

from router.errors import HvrError
from router.hosts import HostRefused, is_loopback_host, public_dns_host

MAX_BYTES = 2 * 1024**3
MAX_REDIRECTS = 3
MP4_MAGIC_OFFSET, MP4_MAGIC = 4, b"ftyp"
WEBM_MAGIC = b"\x1a\x45\xdf\xa3"
# IPv6 forms that carry an IPv4 address a gateway or the kernel may deliver to: NAT64 and IPv4-compatible.
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_V4_COMPATIBLE = ipaddress.ip_network("::/96")


class UnsafeDownload(HvrError):
    """The URL, an address it resolves to, a redirect or the body itself was refused; the message says which.
    `upstream_status` is the HTTP status when the server answered with something other than 200 (`status` is
    ours, as for every HvrError: the caller decides what the refusal means to its own client)."""

    def __init__(self, message: str, upstream_status: int | None = None) -> None:
        super().__init__(message)
        self.upstream_status = upstream_status


@dataclass(frozen=True)
class Fetched:
    bytes: int
    sha256: str


def _public(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if not address.is_global or address.is_multicast:
        return False
    if isinstance(address, ipaddress.IPv6Address):
        embedded = address.ipv4_mapped or address.sixtofour
        if embedded is None and (address in _NAT64 or address in _V4_COMPATIBLE):
            embedded = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if embedded is not None:
            return _public(embedded)
    return True


def check_url(url: str, allowed_hosts: Sequence[str] | None, allow_loopback: bool = False, *,
              any_port: bool = False) -> tuple[str, str]:
    """(host, address to connect to) for a URL that passes the rules, else UnsafeDownload. `allowed_hosts=None`
    admits any public host; `any_port` any port (a client's own URLs), else only 443 (provider outputs)."""
    parts = urlsplit(url)
    host = _host_of(url)
    if allow_loopback and is_loopback_host(host) and parts.scheme in ("http", "https"):
        return host, "127.0.0.1" if host == "localhost" else host
    if parts.scheme != "https":
        raise UnsafeDownload(f"not https: {parts.scheme}://")
    try:
        host = public_dns_host(url)
        port = parts.port
    except (HostRefused, ValueError) as exc:
        raise UnsafeDownload(str(exc)) from exc
    if not any_port and port not in (None, 443):
        raise UnsafeDownload(f"non-default port {port}")
    if allowed_hosts is not None and not any(host == allowed or host.endswith("." + allowed)
                                             for allowed in allowed_hosts):
        raise UnsafeDownload(f"host {host} not on the provider's allow-list")
    try:
        infos = socket.getaddrinfo(host, port or 443, proto=socket.IPPROTO_TCP)
    except socket.gaierror as exc:
        raise UnsafeDownload(f"{host} does not resolve: {exc}") from exc
    addresses = [ipaddress.ip_address(info[4][0]) for info in infos]
    if not addresses:
        raise UnsafeDownload(f"{host} does not resolve")
    for address in addresses:
        if not _public(address):
            raise UnsafeDownload(f"{host} resolves to non-public address {address}")
    return host, str(addresses[0])


def _pinned(url: str, address: str) -> str:
    parts = urlsplit(url)
    netloc = f"[{address}]" if ":" in address else address
    if parts.port:
        netloc += f":{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, ""))


def _host_of(url: str) -> str:
    return (urlsplit(url).hostname or "").rstrip(".").lower()


def send_checked(http: httpx.Client, method: str, url: str, allowed_hosts: Sequence[str] | None, *,
                 allow_loopback: bool = False, any_port: bool = False, stream: bool = False,
                 content: bytes | None = None, headers: Mapping[str, str] | None = None) -> httpx.Response:
    """One request to `url` after `check_url`, connected to the address that was checked (no second lookup).
    Never follows a redirect: a caller that wants them re-checks each (`_get`)."""
    host, address = check_url(url, allowed_hosts, allow_loopback, any_port=any_port)
    port = urlsplit(url).port
    host_header = f"[{host}]" if ":" in host else host
    extensions = {} if is_loopback_host(host) else {"sni_hostname": host}
    request = http.build_request(method, _pinned(url, address), content=content, extensions=extensions,
                                 headers={**(headers or {}), "Host": f"{host_header}:{port}" if port else host_header})
    return http.send(request, stream=stream, follow_redirects=False)


@contextmanager
def _get(http: httpx.Client, url: str, allowed_hosts: Sequence[str] | None, *, allow_loopback: bool,
         any_port: bool) -> Iterator[httpx.Response]:
    """The first answer to GET `url` that isn't a redirect, each hop checked. Only a loopback URL keeps the
    loopback exemption for its redirects: a public URL can't redirect its way into it."""
    allow_loopback = allow_loopback and is_loopback_host(_host_of(url))
    for _ in range(MAX_REDIRECTS + 1):
        response = send_checked(http, "GET", url, allowed_hosts, allow_loopback=allow_loopback, any_port=any_port,
                                stream=True)
        if not response.is_redirect:
            break
        response.close()
        url = urljoin(url, response.headers.get("location", ""))
    else:
        raise UnsafeDownload(f"more than {MAX_REDIRECTS} redirects")
    try:
        if response.status_code != 200:
            raise UnsafeDownload(f"HTTP {response.status_code} fetching {_host_of(url)}", response.status_code)
        yield response
    finally:
        response.close()


@cache
def tls() -> ssl.SSLContext:
    """One TLS context per process, as httpx builds it by default. Building one loads the CA bundle (23 ms of CPU),
    and each download and callback makes a client of its own; a context is safe to share between threads."""
    return httpx.create_ssl_context()


def _client(timeout_s: float) -> httpx.Client:
    return httpx.Client(timeout=httpx.Timeout(timeout_s, connect=5.0), follow_redirects=False, verify=tls())


def _declared_size(response: httpx.Response, max_bytes: int) -> None:
    declared = int(response.headers.get("content-length") or 0)
    if declared > max_bytes:
        raise UnsafeDownload(f"declared size {declared} over the cap {max_bytes}")


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


def fetch_to_s3(url: str, allowed_hosts: Sequence[str] | None, artifacts: object, key: str, *,
                allow_loopback: bool = False, max_bytes: int = MAX_BYTES, timeout_s: float = 60.0,
                client: httpx.Client | None = None) -> Fetched:
    """Download `url` into `artifacts` (an ArtifactStore) at `key`; every hop checked as the module says."""
    http = client or _client(timeout_s)
    try:
        with _get(http, url, allowed_hosts, allow_loopback=allow_loopback, any_port=False) as response:
            _declared_size(response, max_bytes)
            body = _Body(response.iter_bytes(1 << 20), max_bytes)
            artifacts.upload_stream(key, io.BufferedReader(body, 8 << 20))  # type: ignore[attr-defined]
            return Fetched(bytes=body.total, sha256=body.digest.hexdigest())
    finally:
        if client is None:
            http.close()


def fetch_bytes(url: str, max_bytes: int, *, allow_loopback: bool = False, timeout_s: float = 30.0,
                client: httpx.Client | None = None) -> bytes:
    """A client's file (an input image, audio, mask), whole: any public host and port, every hop checked, capped.
    UnsafeDownload for what the rules or the server refused (`status` set for an HTTP error); transport
    failures stay httpx errors, for the caller to call transient."""
    http = client or _client(timeout_s)
    try:
        with _get(http, url, None, allow_loopback=allow_loopback, any_port=True) as response:
            _declared_size(response, max_bytes)
            chunks, size = [], 0
            for chunk in response.iter_bytes(1 << 20):
                size += len(chunk)
                if size > max_bytes:
                    raise UnsafeDownload(f"body larger than {max_bytes} bytes")
                chunks.append(chunk)
            return b"".join(chunks)
    finally:
        if client is None:
            http.close()


def store_bytes(data: bytes, artifacts: object, key: str, max_bytes: int = MAX_BYTES) -> Fetched:
    """Inline outputs (Veo's video bytes) get the same cap and magic check as downloads."""
    body = _Body(iter([data]), max_bytes)
    artifacts.upload_stream(key, io.BufferedReader(body, 8 << 20))  # type: ignore[attr-defined]
    return Fetched(bytes=body.total, sha256=body.digest.hexdigest())


# Where each provider serves outputs (docs/providers.md §1.3, §2.6, §3.3): exact hosts or vetted suffixes.
OUTPUT_HOSTS: dict[str, tuple[str, ...]] = {
    "replicate": ("replicate.delivery",),
    "runpod": ("runpod.io", "runpod.ai", "runpod.net"),
    "veo": ("storage.googleapis.com",),
}
