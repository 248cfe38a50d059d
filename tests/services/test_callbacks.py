"""Client callbacks are delivered to the address that was checked: no second lookup for DNS to rebind."""

import base64
import socket

import httpx
import pytest

from router.models.common import utcnow
from router.models.job import Job, JobStatus
from router.models.request import VideoRequest
from router.services import callbacks
from router.store.messages import MessageKind, WorkerMessage
from tests.twins import Twins, twins

SECRET = "whsec_" + base64.b64encode(b"k" * 32).decode()


def deps(dev_hosts: str | None = None) -> Twins:
    return twins({}, HVR_CALLBACK_SECRET=SECRET, HVR_DEV_CALLBACK_HOSTS=dev_hosts or "")


def finished_job(callback_url: str) -> Job:
    now = utcnow()
    return Job(id="job_cb", tenant="t", status=JobStatus.SUCCEEDED, created_at=now, updated_at=now,
               request=VideoRequest(mode="t2v", prompt="x", callback_url=callback_url))


MESSAGE = WorkerMessage(kind=MessageKind.CALLBACK, tenant="t", job_id="job_cb")


@pytest.fixture
def sent(monkeypatch) -> list[httpx.Request]:
    """Every request that reaches the transport (where a socket would be opened), answered 204."""
    requests: list[httpx.Request] = []

    def handle(self, request: httpx.Request) -> httpx.Response:
        requests.append(request)
        return httpx.Response(204)

    monkeypatch.setattr(httpx.HTTPTransport, "handle_request", handle)
    return requests


@pytest.fixture
def rebinding(monkeypatch) -> list[str]:
    """A resolver that answers a public address first and loopback after: the classic rebinding attack."""
    answers = ["34.1.2.3", "127.0.0.1"]
    asked: list[str] = []

    def fake(host, port, *args, **kwargs):
        asked.append(host)
        address = answers[min(len(asked), len(answers)) - 1]
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port))]

    monkeypatch.setattr(socket, "getaddrinfo", fake)
    return asked


def test_the_post_goes_to_the_checked_address_however_dns_answers_next(sent, rebinding) -> None:
    callbacks.deliver(finished_job("https://hooks.example.com/cb?ref=7"), MESSAGE, deps().deps)

    [request] = sent
    assert request.url.host == "34.1.2.3" and request.url.path == "/cb" and request.url.query == b"ref=7"
    assert request.headers["host"] == "hooks.example.com"
    assert request.extensions["sni_hostname"] == "hooks.example.com"  # TLS still verifies the name
    assert rebinding == ["hooks.example.com"]  # resolved once, for the check


def test_a_name_resolving_to_loopback_gets_nothing(sent, monkeypatch) -> None:
    monkeypatch.setattr(socket, "getaddrinfo",
                        lambda host, port, *a, **k: [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port))])
    world = deps()
    callbacks.deliver(finished_job("https://hooks.example.com/cb"), MESSAGE, world.deps)
    assert sent == [] and len(world.queue) == 0  # refused, and not retried


def test_a_redirect_is_not_followed(monkeypatch, rebinding) -> None:
    requests: list[httpx.Request] = []

    def handle(self, request: httpx.Request) -> httpx.Response:
        requests.append(request)
        return httpx.Response(302, headers={"location": "http://127.0.0.1:8188/prompt"})

    monkeypatch.setattr(httpx.HTTPTransport, "handle_request", handle)
    world = deps()
    callbacks.deliver(finished_job("https://hooks.example.com/cb"), MESSAGE, world.deps)
    assert len(requests) == 1 and len(world.queue) == 1  # a failed delivery, retried later


def test_dev_callback_hosts_still_deliver_to_their_loopback_stand_in(sent) -> None:
    world = deps("hooks.example.test=127.0.0.1:9")
    callbacks.deliver(finished_job("https://hooks.example.test/cb"), MESSAGE, world.deps)
    [request] = sent
    assert str(request.url) == "http://127.0.0.1:9/cb"
