"""The local HTTP API behaves as API Gateway (HTTP API, payload 2.0) does, as seen by clients and by handlers."""

from __future__ import annotations

import base64
import json
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.shared.cookies import Cookie
from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEventV2
from aws_lambda_powertools.utilities.data_classes.api_gateway_authorizer_event import (
    APIGatewayAuthorizerEventV2,
    APIGatewayAuthorizerResponseV2,
)

from hvr.local.gateway import MAX_BODY_BYTES, HttpRequest, LocalHttpApi, Route, RouteTable

# --- toy functions -----------------------------------------------------------------------------------------------


def echo(name: str) -> Any:
    """A function that answers with the event it was given, so tests can read the event back."""

    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        return {"statusCode": 200, "body": json.dumps({"handler": name, "event": event,
                                                       "function": context.function_name})}

    return handler


def boom(event: dict[str, Any], context: Any) -> dict[str, Any]:
    raise RuntimeError("handler crashed")


powertools_app = APIGatewayHttpResolver()


@powertools_app.get("/pt/items/<item_id>")
def get_item(item_id: str) -> dict[str, Any]:
    event = powertools_app.current_event
    return {"id": item_id, "q": event.get_query_string_value("q"),
            "tenant": event.request_context.authorizer.get_lambda.get("tenant")}


@powertools_app.post("/pt/items")
def post_item() -> Response:
    return Response(201, "application/json", json.dumps({"got": powertools_app.current_event.json_body}),
                    cookies=[Cookie(name="seen", value="1")])


class Authorizer:
    """Bearer ok-<tenant> is allowed, Bearer no is refused, Bearer crash raises."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []

    def __call__(self, event: dict[str, Any], context: Any) -> dict[str, Any]:
        self.events.append(event)
        token = APIGatewayAuthorizerEventV2(event).identity_source[0].removeprefix("Bearer ")
        if token == "crash":
            raise RuntimeError("authorizer crashed")
        allowed = token.startswith("ok-")
        return APIGatewayAuthorizerResponseV2(allowed, {"tenant": token[3:]} if allowed else None).asdict()


ROUTES = [
    Route("GET", "/v1/jobs", echo("list"), auth=True, function_name="ApiFunction"),
    Route("GET", "/v1/jobs/special", echo("special"), auth=True),
    Route("GET", "/v1/jobs/{id}", echo("get"), auth=True),
    Route("ANY", "/v1/jobs/{id}", echo("any-job"), auth=True),
    Route("POST", "/v1/jobs/{id}/cancel", echo("cancel"), auth=True),
    Route("ANY", "/v1/{proxy+}", echo("greedy"), auth=True),
    Route("POST", "/upload", echo("upload"), auth=False),
    Route("GET", "/boom", boom, auth=False),
    Route("GET", "/plain", lambda e, c: {"hello": "world"}, auth=False),
    Route("GET", "/text", lambda e, c: "just text", auth=False),
    Route("GET", "/bad-response", lambda e, c: {"statusCode": "two hundred"}, auth=False),
    Route("GET", "/binary", lambda e, c: {"statusCode": 200, "isBase64Encoded": True,
                                          "headers": {"Content-Type": "video/mp4"},
                                          "body": base64.b64encode(b"\x00\x01mp4").decode()}, auth=False),
    Route("GET", "/cookies", lambda e, c: {"statusCode": 201, "headers": {"X-One": "1"},
                                           "multiValueHeaders": {"X-Multi": ["a", "b"]},
                                           "cookies": ["s=1; Path=/", "t=2"], "body": "made"}, auth=False),
    Route("ANY", "/pt/{proxy+}", powertools_app.resolve, auth=True),
]


@pytest.fixture(scope="module")
def authorizer() -> Authorizer:
    return Authorizer()


@pytest.fixture(scope="module")
def api(authorizer: Authorizer) -> Iterator[LocalHttpApi]:
    with LocalHttpApi(ROUTES, authorizer) as running:
        yield running


@pytest.fixture
def http(api: LocalHttpApi) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=api.url, headers={"Authorization": "Bearer ok-acme"}) as client:
        yield client


def event_of(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    return dict(response.json()["event"])


# --- routing -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("method", "path", "handler", "route_key"), [
    ("GET", "/v1/jobs", "list", "GET /v1/jobs"),
    ("GET", "/v1/jobs/special", "special", "GET /v1/jobs/special"),  # exact beats {param}
    ("GET", "/v1/jobs/j1", "get", "GET /v1/jobs/{id}"),  # a specific method beats ANY
    ("DELETE", "/v1/jobs/j1", "any-job", "ANY /v1/jobs/{id}"),
    ("POST", "/v1/jobs/j1/cancel", "cancel", "POST /v1/jobs/{id}/cancel"),
    ("GET", "/v1/jobs/j1/other", "greedy", "ANY /v1/{proxy+}"),  # {param} routes don't match, greedy does
    ("PUT", "/v1/budgets/tenant:acme", "greedy", "ANY /v1/{proxy+}"),
])
def test_route_precedence(http: httpx.Client, method: str, path: str, handler: str, route_key: str) -> None:
    response = http.request(method, path)
    assert response.json()["handler"] == handler
    assert response.json()["event"]["routeKey"] == route_key
    assert response.json()["event"]["requestContext"]["routeKey"] == route_key


def test_route_table_default_route_and_greedy_prefix() -> None:
    table = RouteTable([Route("ANY", "/{proxy+}", echo("root")), Route("GET", "/pets/{proxy+}", echo("pets")),
                        Route("ANY", "$default", echo("default"))])
    assert (m := table.match("GET", "/pets/cat/1")) and m[0].route_key == "GET /pets/{proxy+}"
    assert (m := table.match("POST", "/pets/cat/1")) and m[0].route_key == "ANY /{proxy+}"
    assert (m := table.match("GET", "/")) and m[0].route_key == "$default"
    with pytest.raises(ValueError, match="last segment"):
        RouteTable([Route("GET", "/{proxy+}/x", echo("bad"))])


def test_no_route_is_404_before_any_auth(api: LocalHttpApi) -> None:
    response = httpx.post(f"{api.url}/nowhere")
    assert response.status_code == 404
    assert response.json() == {"message": "Not Found"}
    assert httpx.post(f"{api.url}/plain").status_code == 404  # path exists, method doesn't


# --- the handler's event -------------------------------------------------------------------------------------------


def test_event_is_a_v2_event_powertools_reads(http: httpx.Client) -> None:
    response = http.get("/v1/jobs/job%201", params=[("a", "1"), ("a", "2"), ("b", "x y")],
                        headers=[("X-Dup", "one"), ("X-Dup", "two"), ("Cookie", "c1=v1; c2=v2")])
    raw = event_of(response)
    event = APIGatewayProxyEventV2(raw)
    assert event.version == "2.0"
    assert event.raw_path == "/v1/jobs/job 1" and event.path == "/v1/jobs/job 1"  # HTTP APIs decode the path
    assert event.raw_query_string == "a=1&a=2&b=x+y"
    assert event.query_string_parameters == {"a": "1,2", "b": "x y"}
    assert event.path_parameters == {"id": "job 1"}
    assert event.cookies == ["c1=v1", "c2=v2"]
    assert raw["headers"]["x-dup"] == "one,two"
    assert "cookie" not in raw["headers"] and all(k == k.lower() for k in raw["headers"])
    assert event.http_method == "GET"
    context = event.request_context
    assert context.stage == "$default" and context.http.source_ip == "127.0.0.1"
    assert context.http.user_agent.startswith("python-httpx")
    assert context.domain_name == "127.0.0.1" and context.account_id and context.api_id
    uuid.UUID(context.request_id)
    assert abs(context.time_epoch / 1000 - time.time()) < 60
    assert event.is_base64_encoded is False and "body" not in raw
    assert context.authorizer.get_lambda == {"tenant": "acme"}
    assert response.headers["apigw-requestid"] == context.request_id
    assert response.json()["function"] == "local"


def test_percent_encoded_paths_reach_the_function_decoded(http: httpx.Client) -> None:
    # As an HTTP API delivers them (live captures: hotsock/voker vokerhttp/testdata/apigwv2-request.json): rawPath,
    # requestContext.http.path and pathParameters all decoded, so Powertools routes on the decoded path.
    event = event_of(http.put("/v1/budgets/tenant%3At9"))
    assert event["rawPath"] == event["requestContext"]["http"]["path"] == "/v1/budgets/tenant:t9"
    assert event["pathParameters"] == {"proxy": "budgets/tenant:t9"}
    got = http.get("/pt/items/a%3Ab")
    assert got.status_code == 200 and got.json()["id"] == "a:b"


@pytest.mark.parametrize("method", ["TRACE", "QUERY"])
def test_any_method_reaches_an_any_route(http: httpx.Client, method: str) -> None:
    # http.server alone answers 501 to a method it has no do_<METHOD> for; the function is the one to refuse it.
    response = http.request(method, "/v1/jobs/j1")
    assert event_of(response)["requestContext"]["http"]["method"] == method


def test_greedy_path_parameter_and_function_name(http: httpx.Client) -> None:
    event = event_of(http.get("/v1/a/b/c"))
    assert event["pathParameters"] == {"proxy": "a/b/c"}
    assert http.get("/v1/jobs").json()["function"] == "ApiFunction"
    assert "pathParameters" not in event_of(http.get("/v1/jobs"))


def test_text_body_is_text_and_binary_body_is_base64(api: LocalHttpApi) -> None:
    text = event_of(httpx.post(f"{api.url}/upload", json={"prompt": "é"}))
    assert text["isBase64Encoded"] is False and json.loads(text["body"]) == {"prompt": "é"}
    png = b"\x89PNG\r\n\x1a\n\x00\xff"
    binary = event_of(httpx.post(f"{api.url}/upload", content=png, headers={"Content-Type": "image/png"}))
    assert binary["isBase64Encoded"] is True
    assert base64.b64decode(binary["body"]) == png


def test_chunked_request_body(api: LocalHttpApi) -> None:
    event = event_of(httpx.post(f"{api.url}/upload", content=iter([b'{"a":', b" 1}"]),
                                headers={"Content-Type": "application/json"}))
    assert json.loads(event["body"]) == {"a": 1}


def test_body_over_10_mb_is_413(api: LocalHttpApi) -> None:
    response = httpx.post(f"{api.url}/upload", content=b"x" * (MAX_BODY_BYTES + 1),
                          headers={"Content-Type": "application/octet-stream"})
    assert response.status_code == 413
    assert response.json() == {"message": "Request Entity Too Large"}


# --- authorizer ----------------------------------------------------------------------------------------------------


def test_missing_identity_is_401_without_calling_the_authorizer(api: LocalHttpApi, authorizer: Authorizer) -> None:
    before = api.authorizer_invocations
    response = httpx.get(f"{api.url}/v1/jobs")
    assert response.status_code == 401 and response.json() == {"message": "Unauthorized"}
    assert api.authorizer_invocations == before


def test_refusal_is_403_and_crash_is_500(api: LocalHttpApi) -> None:
    refused = httpx.get(f"{api.url}/v1/jobs", headers={"Authorization": "Bearer no"})
    assert refused.status_code == 403 and refused.json() == {"message": "Forbidden"}
    crashed = httpx.get(f"{api.url}/v1/jobs", headers={"Authorization": "Bearer crash"})
    assert crashed.status_code == 500 and crashed.json() == {"message": "Internal Server Error"}


def test_authorizer_event_shape(api: LocalHttpApi, authorizer: Authorizer) -> None:
    httpx.get(f"{api.url}/v1/jobs/j9?x=1", headers={"Authorization": "Bearer ok-shape"})
    raw = authorizer.events[-1]
    event = APIGatewayAuthorizerEventV2(raw)
    assert raw["version"] == "2.0" and event.get_type == "REQUEST"
    assert event.identity_source == ["Bearer ok-shape"]
    assert event.route_key == "GET /v1/jobs/{id}" and event.raw_path == "/v1/jobs/j9"
    assert event.raw_query_string == "x=1" and event.query_string_parameters == {"x": "1"}
    assert event.path_parameters == {"id": "j9"}
    arn = event.parsed_arn
    assert (arn.api_id, arn.stage, arn.http_method, arn.resource) == (api.api_id, "$default", "GET", "v1/jobs/j9")
    assert event.request_context.http.method == "GET"


def test_authorizer_results_are_cached_per_identity(authorizer: Authorizer) -> None:
    routes = [Route("GET", "/r", echo("r"), auth=True)]
    with LocalHttpApi(routes, authorizer, authorizer_ttl_s=0.3) as api, httpx.Client() as http:
        # One kept-alive client: six fresh ones (TLS context each) can outlast the 0.3 s TTL on a loaded machine.
        for _ in range(3):
            assert http.get(f"{api.url}/r", headers={"Authorization": "Bearer ok-a"}).status_code == 200
            assert http.get(f"{api.url}/r", headers={"Authorization": "Bearer no"}).status_code == 403
        assert api.authorizer_invocations == 2  # one allow, one deny: both cached
        time.sleep(0.35)
        httpx.get(f"{api.url}/r", headers={"Authorization": "Bearer ok-a"})
        assert api.authorizer_invocations == 3
    with LocalHttpApi(routes, authorizer, authorizer_ttl_s=0) as uncached:
        for _ in range(2):
            httpx.get(f"{uncached.url}/r", headers={"Authorization": "Bearer ok-a"})
        assert uncached.authorizer_invocations == 2


def test_auth_routes_need_an_authorizer() -> None:
    with pytest.raises(ValueError, match="authorizer"):
        LocalHttpApi([Route("GET", "/r", echo("r"), auth=True)], None)


# --- responses -----------------------------------------------------------------------------------------------------


def test_plain_results_become_200_json(api: LocalHttpApi) -> None:
    plain = httpx.get(f"{api.url}/plain")
    assert plain.status_code == 200 and plain.json() == {"hello": "world"}
    assert plain.headers["content-type"] == "application/json"
    assert httpx.get(f"{api.url}/text").text == "just text"


def test_headers_multi_value_headers_and_cookies(api: LocalHttpApi) -> None:
    response = httpx.get(f"{api.url}/cookies")
    assert response.status_code == 201 and response.text == "made"
    assert response.headers["x-one"] == "1"
    assert response.headers.get_list("x-multi") == ["a", "b"]
    assert response.headers.get_list("set-cookie") == ["s=1; Path=/", "t=2"]
    assert response.headers["content-type"] == "application/json"


def test_base64_response_is_decoded(api: LocalHttpApi) -> None:
    response = httpx.get(f"{api.url}/binary")
    assert response.content == b"\x00\x01mp4" and response.headers["content-type"] == "video/mp4"


def test_handler_crash_and_malformed_response_are_500(api: LocalHttpApi) -> None:
    for path in ("/boom", "/bad-response"):
        response = httpx.get(f"{api.url}{path}")
        assert response.status_code == 500 and response.json() == {"message": "Internal Server Error"}


# --- a real Powertools resolver behind it -------------------------------------------------------------------------


def test_powertools_resolver_routes_reads_and_answers(http: httpx.Client) -> None:
    got = http.get("/pt/items/42", params={"q": "boat"})
    assert got.status_code == 200 and got.json() == {"id": "42", "q": "boat", "tenant": "acme"}
    posted = http.post("/pt/items", json={"name": "x"})
    assert posted.status_code == 201 and posted.json() == {"got": {"name": "x"}}
    assert posted.cookies["seen"] == "1"


# --- a burst of connections -----------------------------------------------------------------------------------


def burst(api: LocalHttpApi, connections: int) -> list[bytes]:
    """`connections` clients connect while the server is not accepting (as a CPU-starved server isn't), then each
    asks for /plain: every connection must be queued by the kernel, none refused, reset or left hanging."""
    server: Any = api._server
    gate = threading.Event()
    accept = server._handle_request_noblock

    def held() -> None:
        gate.wait()
        accept()

    server._handle_request_noblock = held  # serve_forever looks it up on every turn of its loop
    sockets: list[socket.socket] = []
    try:
        host, port = server.server_address[:2]
        for _ in range(connections):
            sockets.append(socket.create_connection((str(host), int(port)), timeout=3))
    finally:
        gate.set()
        del server._handle_request_noblock
    answers = []
    for sock in sockets:
        with sock:
            sock.sendall(b"GET /plain HTTP/1.1\r\nHost: local\r\nConnection: close\r\n\r\n")
            chunks = []
            while chunk := sock.recv(65536):
                chunks.append(chunk)
            answers.append(b"".join(chunks))
    return answers


def test_a_burst_of_64_connections_is_queued_not_reset() -> None:
    with LocalHttpApi(ROUTES, Authorizer()) as api:
        answers = burst(api, 64)
    assert len(answers) == 64 and all(a.startswith(b"HTTP/1.1 200") for a in answers)


@pytest.mark.slow
def test_64_clients_at_once_beside_a_busy_cpu_per_core() -> None:
    with LocalHttpApi(ROUTES, Authorizer()) as api, ProcessPoolExecutor(os.cpu_count() or 2) as cpus:
        spinning = [cpus.submit(spin, 8.0) for _ in range(os.cpu_count() or 2)]
        for _ in range(5):
            start = threading.Barrier(64)

            def client(api: LocalHttpApi = api, start: threading.Barrier = start) -> int:
                start.wait()
                return httpx.get(f"{api.url}/plain", timeout=30).status_code

            with ThreadPoolExecutor(64) as pool:
                assert sorted(pool.map(lambda _: client(), range(64))) == [200] * 64
        for future in spinning:
            future.result()


def spin(seconds: float) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        pass


def test_dispatch_without_a_server() -> None:
    api = LocalHttpApi([Route("GET", "/r", echo("r"))])
    response = api.dispatch(HttpRequest("GET", "/r", headers=[("Host", "example.test")]))
    event = json.loads(response.body)["event"]
    assert response.status == 200 and event["requestContext"]["domainName"] == "example.test"


def test_a_function_runs_one_invocation_at_a_time_as_in_its_lambda_environment() -> None:
    """Handlers keep per-invocation state at module level (Powertools' resolver does): the gateway must not enter
    one while it runs, however many clients arrive at once."""
    inside, most = [0], [0]
    lock = threading.Lock()

    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        with lock:
            inside[0] += 1
            most[0] = max(most[0], inside[0])
        time.sleep(0.02)
        with lock:
            inside[0] -= 1
        return {"statusCode": 200, "body": "ok"}

    with LocalHttpApi([Route("GET", "/v1/slow", handler)]) as api, ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(lambda _: httpx.get(f"{api.url}/v1/slow").status_code, range(32)))
    assert answers == [200] * 32 and most[0] == 1
