"""The local gateway's `$context.` identity sources (the template's `Identity.Context`): the authorizer is sent their
values after the header's, and its results are cached by all of them, as API Gateway caches by every source."""

from __future__ import annotations

from typing import Any

import pytest

from hvr.local.gateway import HttpRequest, LocalHttpApi, Route


class IpAuthorizer:
    """Allows any key from 10.0.0.1 only."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []

    def __call__(self, event: dict[str, Any], context: Any) -> dict[str, Any]:
        self.events.append(event)
        return {"isAuthorized": event["requestContext"]["http"]["sourceIp"] == "10.0.0.1"}


def request(ip: str, key: str = "k") -> HttpRequest:
    return HttpRequest("GET", "/r", headers=[("Authorization", f"Bearer {key}")], source_ip=ip)


def api(authorizer: IpAuthorizer, identity_context: tuple[str, ...]) -> LocalHttpApi:
    route = Route("GET", "/r", lambda e, c: {"ok": True}, auth=True)
    return LocalHttpApi([route], authorizer, authorizer_ttl_s=300, identity_context=identity_context)


def test_source_ip_in_the_identity_keys_the_cache_and_reaches_the_authorizer() -> None:
    authorizer = IpAuthorizer()
    gateway = api(authorizer, ("identity.sourceIp",))
    assert gateway.dispatch(request("10.0.0.1")).status == 200
    assert gateway.dispatch(request("10.0.0.2")).status == 403  # not the other IP's cached allow
    assert gateway.dispatch(request("10.0.0.1")).status == 200
    assert gateway.authorizer_invocations == 2
    assert [e["identitySource"] for e in authorizer.events] == [["Bearer k", "10.0.0.1"], ["Bearer k", "10.0.0.2"]]


def test_without_it_the_header_alone_is_the_identity() -> None:
    authorizer = IpAuthorizer()
    gateway = api(authorizer, ())
    assert gateway.dispatch(request("10.0.0.1")).status == 200
    assert gateway.dispatch(request("10.0.0.2")).status == 200  # the first IP's allow, from the cache
    assert [e["identitySource"] for e in authorizer.events] == [["Bearer k"]]


def test_an_identity_source_it_cannot_read_is_refused_at_start() -> None:
    with pytest.raises(ValueError, match=r"identity\.user"):
        api(IpAuthorizer(), ("identity.user",))
