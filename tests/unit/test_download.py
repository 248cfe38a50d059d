"""SSRF rules for provider output downloads (docs/architecture.md, "Admission and tenancy"), against loopback
servers and a fake resolver."""

import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from router.providers.download import UnsafeDownload, check_url, fetch_bytes, fetch_to_s3, store_bytes

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


# --- client inputs: the same checked core, any public host -------------------------------------------------------

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 32


@pytest.fixture
def no_connections(monkeypatch) -> list:
    """Fails any attempt to open a socket, recording where it would have gone."""
    attempts: list = []

    def refuse(address, *args, **kwargs):
        attempts.append(address)
        raise AssertionError(f"a connection to {address} was attempted")

    monkeypatch.setattr(socket, "create_connection", refuse)
    return attempts


@pytest.mark.parametrize("url", [
    "https://127.0.0.1:46015/in.png",  # the probe's URL
    "http://127.0.0.1:46015/in.png",
    "https://2130706433/in.png",
    "https://0x7f000001/in.png",
    "https://[::1]/in.png",
    "https://evil@127.0.0.1/in.png",
    "https://localhost/in.png",
    "https://loopback.example.com/in.png",  # a name resolving to loopback
    "https://metadata.example.com/in.png",  # ... or to the metadata service
    "https://six.example.com/in.png",  # ... or to loopback in an IPv6 wrapping
])
def test_an_input_aimed_at_internal_addresses_is_refused_without_a_connection(url: str, resolve,
                                                                              no_connections) -> None:
    from router.providers.errors import InputRejected
    from router.providers.inputs import fetch_input

    resolve.update({"loopback.example.com": "127.0.0.1", "metadata.example.com": "169.254.169.254",
                    "six.example.com": "::ffff:127.0.0.1"})
    with pytest.raises(InputRejected):
        fetch_input(url, "image", 1000)
    assert no_connections == []


def _mock(routes: dict[str, httpx.Response]) -> tuple[httpx.Client, list[httpx.Request]]:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return routes[request.headers["host"] + request.url.path]

    return httpx.Client(transport=httpx.MockTransport(handler)), seen


def test_an_input_is_fetched_from_the_checked_address_with_its_name_for_host_and_sni(resolve) -> None:
    resolve["inputs.example.com"] = "34.1.2.3"
    client, seen = _mock({"inputs.example.com:8443/in.png": httpx.Response(200, content=PNG)})
    assert fetch_bytes("https://inputs.example.com:8443/in.png", 1000, client=client) == PNG
    [request] = seen
    assert (request.url.host, request.url.port) == ("34.1.2.3", 8443)
    assert request.extensions["sni_hostname"] == "inputs.example.com"


@pytest.mark.parametrize("location", [
    "http://127.0.0.1:8188/prompt",  # ComfyUI on the GPU box, over plain http
    "https://127.0.0.1/in.png",
    "https://internal.example.com/in.png",  # a name resolving to a private address
    "https://localhost/in.png",
])
def test_a_redirect_into_the_network_is_refused_even_with_the_loopback_exemption(location: str, resolve) -> None:
    resolve.update({"inputs.example.com": "34.1.2.3", "internal.example.com": "10.0.0.5"})
    client, seen = _mock({"inputs.example.com/in.png": httpx.Response(302, headers={"location": location})})
    for allow_loopback in (False, True):  # a public URL can't redirect its way into the embedded stack's exemption
        with pytest.raises(UnsafeDownload):
            fetch_bytes("https://inputs.example.com/in.png", 1000, allow_loopback=allow_loopback, client=client)
    assert len(seen) == 2  # one request per try, none to the redirect target


def test_input_failures_say_whose_they_are() -> None:
    from router.providers.errors import InputRejected, InputUnavailable, TransientError
    from router.providers.inputs import fetch_input

    server = _Server({"/in.png": (200, {}, PNG), "/gone.png": (404, {}, b""), "/busy.png": (503, {}, b""),
                      "/big.png": (200, {}, PNG * 100)})
    assert fetch_input(f"{server.url}/in.png", "image", 1000, allow_loopback=True) == PNG
    with pytest.raises(InputRejected, match="404"):
        fetch_input(f"{server.url}/gone.png", "image", 1000, allow_loopback=True)
    with pytest.raises(InputRejected, match="over the cap"):
        fetch_input(f"{server.url}/big.png", "image", 1000, allow_loopback=True)
    with pytest.raises(InputUnavailable, match="503"):
        fetch_input(f"{server.url}/busy.png", "image", 1000, allow_loopback=True)
    server.server.shutdown()
    server.server.server_close()
    with pytest.raises(InputUnavailable) as refused:
        fetch_input(f"{server.url}/in.png", "image", 1000, allow_loopback=True)
    assert isinstance(refused.value, TransientError)  # retried later, but (circuits.watch) not the provider's fault


@pytest.mark.parametrize("address", ["64:ff9b::a00:5", "2002:7f00:1::1", "::127.0.0.1", "224.0.0.1"])
def test_ipv6_wrappings_of_private_addresses_and_multicast_are_not_public(address: str, resolve) -> None:
    resolve["pbxt.replicate.delivery"] = address
    with pytest.raises(UnsafeDownload, match="non-public"):
        check_url("https://pbxt.replicate.delivery/x.mp4", ["replicate.delivery"])
