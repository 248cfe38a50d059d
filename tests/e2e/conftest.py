"""The embedded stack over HTTP: everything a client sees, through the local API Gateway."""

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from hvr.local.embedded import EmbeddedStack

TIME_SCALE = 5000.0
KEYS = "acme:acme-key:admin,beta:beta-key,acme-member:member-key"


class Receiver:
    """A client's callback endpoint: records every POST with its headers and raw body."""

    def __init__(self) -> None:
        self.calls: list[dict] = []
        self.status = 200
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                receiver.calls.append({"path": self.path, "headers": dict(self.headers), "body": body})
                self.send_response(receiver.status)
                self.end_headers()

            def log_message(self, *args) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.server.server_port}"

    def bodies(self) -> list[dict]:
        return [json.loads(call["body"]) for call in self.calls]


@pytest.fixture(scope="session")
def receiver() -> Iterator[Receiver]:
    receiver = Receiver()
    yield receiver
    receiver.server.shutdown()


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, receiver: Receiver) -> Iterator[EmbeddedStack]:
    with EmbeddedStack(Path(tmp_path_factory.mktemp("e2e")), time_scale=TIME_SCALE, api_keys=KEYS,
                       callback_hosts=f"hooks.example.test={receiver.address}") as embedded:
        yield embedded


def client(stack: EmbeddedStack, key: str | None) -> httpx.Client:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return httpx.Client(base_url=stack.url, headers=headers, timeout=30)


@pytest.fixture
def acme(stack: EmbeddedStack) -> httpx.Client:
    return client(stack, "acme-key")


@pytest.fixture
def beta(stack: EmbeddedStack) -> httpx.Client:
    return client(stack, "beta-key")


@pytest.fixture
def member(stack: EmbeddedStack) -> httpx.Client:
    return client(stack, "member-key")
