"""SSRF rules for provider output downloads (reliability §6), against loopback servers and a fake resolver."""

import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from router.providers.download import UnsafeDownload, check_url, fetch_to_s3, store_bytes

MP4_HEAD = b"\x00\x00\x00\x18ftypisom" + b"\x00" * 64


class MemoryArtifacts:
    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}

    def upload_stream(self, key, stream) -> None:
        self.objects[key] = stream.read()


@pytest.fixture
def resolve(monkeypatch):
    """Make chosen names resolve to chosen addresses, as DNS would."""
    table: dict[str, str] = {}

    def fake(host, port, *args, **kwargs):
        if host not in table:
            raise socket.gaierror("unknown host")
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (table[host], port))]

    monkeypatch.setattr(socket, "getaddrinfo", fake)
    return table


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("http://replicate.delivery/x.mp4", "not https"),
        ("https://evil.example/x.mp4", "allow-list"),
        ("https://user@replicate.delivery/x.mp4", "userinfo"),
        ("https://replicate.delivery:8443/x.mp4", "port"),
        ("https://203.0.113.9/x.mp4", "IP literal"),
        ("https://notreplicate.delivery/x.mp4", "allow-list"),
    ],
)
def test_urls_outside_the_rules_are_refused(url: str, why: str, resolve) -> None:
    resolve["replicate.delivery"] = "34.1.2.3"
    with pytest.raises(UnsafeDownload, match=why):
        check_url(url, ["replicate.delivery"])


@pytest.mark.parametrize("address", ["127.0.0.1", "10.0.0.5", "169.254.169.254", "192.168.1.1", "100.64.0.1"])
def test_an_allowed_name_resolving_to_a_private_address_is_refused(address: str, resolve) -> None:
    resolve["pbxt.replicate.delivery"] = address
    with pytest.raises(UnsafeDownload, match="non-public"):
        check_url("https://pbxt.replicate.delivery/x.mp4", ["replicate.delivery"])


def test_a_public_address_passes_and_is_the_one_connected_to(resolve) -> None:
    resolve["pbxt.replicate.delivery"] = "34.1.2.3"
    assert check_url("https://pbxt.replicate.delivery/x.mp4", ["replicate.delivery"]) == (
        "pbxt.replicate.delivery", "34.1.2.3")


class _Server:
    def __init__(self, routes: dict[str, tuple[int, dict, bytes]]) -> None:
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                status, headers, body = routes.get(self.path, (404, {}, b"no"))
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        outer.url = f"http://127.0.0.1:{self.server.server_port}"


def test_the_loopback_exemption_is_off_by_default_and_admits_only_loopback() -> None:
    server = _Server({"/ok.mp4": (200, {}, MP4_HEAD)})
    artifacts = MemoryArtifacts()
    with pytest.raises(UnsafeDownload, match="not https"):
        fetch_to_s3(f"{server.url}/ok.mp4", ["replicate.delivery"], artifacts, "k")
    fetched = fetch_to_s3(f"{server.url}/ok.mp4", ["replicate.delivery"], artifacts, "k", allow_loopback=True)
    assert fetched.bytes == len(MP4_HEAD) and artifacts.objects["k"] == MP4_HEAD
    with pytest.raises(UnsafeDownload):
        check_url("http://10.0.0.5/x.mp4", ["replicate.delivery"], allow_loopback=True)
    server.server.shutdown()


def test_redirects_are_rechecked_bodies_capped_and_sniffed() -> None:
    server = _Server({
        "/hop.mp4": (302, {"location": "http://10.0.0.5/steal"}, b""),
        "/page.mp4": (200, {}, b"<html>not a video</html>" + b" " * 64),
        "/big.mp4": (200, {}, MP4_HEAD * 100),
        "/gone.mp4": (403, {}, b"expired"),
    })
    artifacts = MemoryArtifacts()
    with pytest.raises(UnsafeDownload):
        fetch_to_s3(f"{server.url}/hop.mp4", [], artifacts, "k", allow_loopback=True)
    with pytest.raises(UnsafeDownload, match="magic"):
        fetch_to_s3(f"{server.url}/page.mp4", [], artifacts, "k", allow_loopback=True)
    with pytest.raises(UnsafeDownload, match=r"cap|larger"):
        fetch_to_s3(f"{server.url}/big.mp4", [], artifacts, "k", allow_loopback=True, max_bytes=1000)
    with pytest.raises(UnsafeDownload, match="403"):
        fetch_to_s3(f"{server.url}/gone.mp4", [], artifacts, "k", allow_loopback=True)
    assert artifacts.objects == {}
    server.server.shutdown()


def test_inline_bytes_get_the_same_checks() -> None:
    artifacts = MemoryArtifacts()
    assert store_bytes(MP4_HEAD, artifacts, "v").bytes == len(MP4_HEAD)
    with pytest.raises(UnsafeDownload, match="magic"):
        store_bytes(b"PK\x03\x04zipfile" * 8, artifacts, "z")
