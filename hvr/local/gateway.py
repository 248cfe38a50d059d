"""A local stand-in for an API Gateway HTTP API (payload format 2.0) on loopback.

It does what the managed service does between a client and the functions, so that handlers run locally exactly as
they do in AWS: route selection by API Gateway's precedence, the Lambda REQUEST authorizer (simple responses, cached
per identity like `ReauthorizeEvery`: the Authorization header and any `$context.` sources), real-shaped v2 events,
the v2 response rules, and the gateway's own error bodies (`{"message": "Not Found"}` and friends), which clients
see before any function runs.

Paths reach functions percent-decoded, as HTTP APIs deliver them: a request for `/v1/budgets/tenant%3Aacme` has
`rawPath`, `requestContext.http.path` and `pathParameters` all saying `tenant:acme` (live captures in
github.com/hotsock/voker, vokerhttp/testdata: HTTP API decodes `rawPath`, Function URLs and REST APIs don't).
"""

from __future__ import annotations

import base64
import binascii
import errno
import json
import logging
import secrets
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Protocol
from urllib.parse import parse_qsl, unquote

from hvr.local.esm import LambdaContextStub
from hvr.local.moto_server import REGION
from hvr.loopback import LoopbackServer

Handler = Callable[[dict[str, Any], Any], Any]

ACCOUNT_ID = "123456789012"  # moto's default account, so ARNs line up with the emulated resources
MAX_BODY_BYTES = 10 * 1024 * 1024  # HTTP API's payload quota
IDENTITY_HEADER = "authorization"  # the authorizer's identity source: $request.header.Authorization
DEFAULT_ROUTE = "$default"

log = logging.getLogger(__name__)


class RouteLike(Protocol):
    @property
    def method(self) -> str: ...
    @property
    def path(self) -> str: ...
    @property
    def handler(self) -> Handler: ...
    @property
    def auth(self) -> bool: ...


@dataclass(frozen=True)
class Route:
    method: str  # GET, POST, … or ANY
    path: str  # /v1/jobs/{id}, /v1/{proxy+} or $default
    handler: Handler
    auth: bool = False
    function_name: str = "local"  # what the handler sees as context.function_name


@dataclass(frozen=True)
class HttpRequest:
    method: str
    raw_path: str
    raw_query: str = ""
    headers: Sequence[tuple[str, str]] = ()
    body: bytes = b""
    source_ip: str = "127.0.0.1"
    protocol: str = "HTTP/1.1"


# `$context.` identity sources this stand-in can add to the header (the template's `Identity.Context`).
CONTEXT_IDENTITIES: dict[str, Callable[[HttpRequest], str]] = {"identity.sourceIp": lambda r: r.source_ip}


@dataclass
class HttpResponse:
    status: int
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""


class PortInUse(OSError):
    """The port asked for is taken: said in one line by `hvr dev`, not as a traceback."""


# A page the local gateway serves itself, outside the API's routes (`/docs`): its response, or None if not its path.
Page = Callable[[HttpRequest], HttpResponse | None]
RequestLog = Callable[[HttpRequest, int, float, str | None], None]  # request, status, seconds, tenant (if known)


class GatewayError(Exception):
    """A response the gateway itself gives, with API Gateway's body for it."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


# ---------------------------------------------------------------------------------------------------------- routing

LITERAL, PARAM, GREEDY = 0, 1, 2


@dataclass(frozen=True)
class _Compiled:
    route: RouteLike
    segments: tuple[str, ...]
    kinds: tuple[int, ...]

    @property
    def route_key(self) -> str:
        return DEFAULT_ROUTE if self.route.path == DEFAULT_ROUTE else f"{self.route.method.upper()} {self.route.path}"

    def match(self, parts: list[str]) -> dict[str, str] | None:
        params: dict[str, str] = {}
        for i, (segment, kind) in enumerate(zip(self.segments, self.kinds, strict=True)):
            if kind == GREEDY:
                rest = parts[i:]
                if not rest or not any(rest):
                    return None
                params[segment[1:-2]] = unquote("/".join(rest))
                return params
            if i >= len(parts) or not parts[i]:
                return None
            if kind == PARAM:
                params[segment[1:-1]] = unquote(parts[i])
            elif segment != parts[i]:
                return None
        return params if len(parts) == len(self.segments) else None


def _split(path: str) -> list[str]:
    stripped = path.strip("/")
    return stripped.split("/") if stripped else []


def _compile(route: RouteLike) -> _Compiled:
    if route.path == DEFAULT_ROUTE:
        return _Compiled(route, (), ())
    segments = tuple(_split(route.path))
    kinds = []
    for i, segment in enumerate(segments):
        if segment.startswith("{") and segment.endswith("+}"):
            if i != len(segments) - 1:
                raise ValueError(f"{route.path}: a greedy variable must be the last segment")
            kinds.append(GREEDY)
        elif segment.startswith("{") and segment.endswith("}"):
            kinds.append(PARAM)
        else:
            kinds.append(LITERAL)
    return _Compiled(route, segments, tuple(kinds))


class RouteTable:
    """API Gateway's choice: a literal segment beats `{param}` beats `{proxy+}`, compared from the left; then a
    specific method beats ANY; `$default` only when nothing else matches."""

    def __init__(self, routes: Iterable[RouteLike]) -> None:
        self._routes = [_compile(r) for r in routes]
        keys = [c.route_key for c in self._routes]
        duplicates = {k for k in keys if keys.count(k) > 1}
        if duplicates:
            raise ValueError(f"duplicate routes: {sorted(duplicates)}")

    def match(self, method: str, raw_path: str) -> tuple[_Compiled, dict[str, str]] | None:
        parts = _split(raw_path)
        best: tuple[tuple[Any, ...], _Compiled, dict[str, str]] | None = None
        for compiled in self._routes:
            if compiled.route.path == DEFAULT_ROUTE:
                rank: tuple[Any, ...] = (1, (), 0)
                params: dict[str, str] | None = {}
            else:
                route_method = compiled.route.method.upper()
                if route_method not in (method, "ANY"):
                    continue
                params = compiled.match(parts)
                rank = (0, compiled.kinds, route_method == "ANY")
            if params is not None and (best is None or rank < best[0]):
                best = (rank, compiled, params)
        return None if best is None else (best[1], best[2])


# ----------------------------------------------------------------------------------------------------------- events

_TEXT_TYPES = ("application/json", "application/xml", "application/javascript", "application/graphql")


def _is_text(content_type: str) -> bool:
    mime = content_type.split(";", 1)[0].strip().lower()
    return mime.startswith("text/") or mime in _TEXT_TYPES or mime.endswith(("+json", "+xml"))


def _joined(pairs: Iterable[tuple[str, str]]) -> dict[str, str]:
    """v2 has no multi-value fields: repeated names are joined by commas."""
    out: dict[str, str] = {}
    for name, value in pairs:
        out[name] = f"{out[name]},{value}" if name in out else value
    return out


@dataclass
class _EventParts:
    """What the authorizer and handler events share for one request."""

    request: HttpRequest
    compiled: _Compiled
    params: dict[str, str]
    api_id: str
    request_id: str
    now: float
    headers: dict[str, str] = field(init=False)
    cookies: list[str] = field(init=False)

    def __post_init__(self) -> None:
        pairs = [(k.lower(), v) for k, v in self.request.headers]
        # v2 moves cookies out of the headers into their own list.
        self.cookies = [c.strip() for k, v in pairs if k == "cookie" for c in v.split(";") if c.strip()]
        headers = _joined((k, v) for k, v in pairs if k != "cookie")
        host = headers.get("host", "localhost")
        headers.setdefault("x-forwarded-for", self.request.source_ip)
        headers.setdefault("x-forwarded-proto", "http")
        headers.setdefault("x-forwarded-port", host.rsplit(":", 1)[1] if ":" in host else "80")
        self.headers = headers

    def common(self) -> dict[str, Any]:
        host = self.headers.get("host", "localhost").rsplit(":", 1)[0]
        path = unquote(self.request.raw_path)
        event: dict[str, Any] = {
            "version": "2.0",
            "routeKey": self.compiled.route_key,
            "rawPath": path,
            "rawQueryString": self.request.raw_query,
            "headers": self.headers,
            "requestContext": {
                "accountId": ACCOUNT_ID,
                "apiId": self.api_id,
                "domainName": host,
                "domainPrefix": host.split(".", 1)[0],
                "http": {
                    "method": self.request.method,
                    "path": path,
                    "protocol": self.request.protocol,
                    "sourceIp": self.request.source_ip,
                    "userAgent": self.headers.get("user-agent", ""),
                },
                "requestId": self.request_id,
                "routeKey": self.compiled.route_key,
                "stage": "$default",
                "time": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(self.now)),
                "timeEpoch": int(self.now * 1000),
            },
        }
        # Absent rather than empty, as API Gateway sends them.
        if self.cookies:
            event["cookies"] = self.cookies
        query = parse_qsl(self.request.raw_query, keep_blank_values=True)
        if query:
            event["queryStringParameters"] = _joined(query)
        if self.params:
            event["pathParameters"] = self.params
        return event

    def identity(self, context_sources: Sequence[str]) -> list[str]:
        """The identity sources' values, in API Gateway's order: the header, then the `$context.` ones."""
        return [self.headers[IDENTITY_HEADER], *(CONTEXT_IDENTITIES[name](self.request) for name in context_sources)]

    def authorizer_event(self, identity: list[str]) -> dict[str, Any]:
        event = self.common()
        route_arn = (f"arn:aws:execute-api:{REGION}:{ACCOUNT_ID}:{self.api_id}/$default/"
                     f"{self.request.method}{self.request.raw_path}")
        event.update({"type": "REQUEST", "routeArn": route_arn, "identitySource": identity})
        return event

    def handler_event(self, authorizer_context: dict[str, Any] | None) -> dict[str, Any]:
        event = self.common()
        if authorizer_context is not None:
            event["requestContext"]["authorizer"] = {"lambda": authorizer_context}
        body = self.request.body
        event["isBase64Encoded"] = False
        if body:
            if _is_text(self.headers.get("content-type", "")):
                try:
                    event["body"] = body.decode("utf-8")
                    return event
                except UnicodeDecodeError:
                    pass
            event["body"] = base64.b64encode(body).decode("ascii")
            event["isBase64Encoded"] = True
        return event


# -------------------------------------------------------------------------------------------------------- responses

def _json_response(status: int, payload: Any) -> HttpResponse:
    return HttpResponse(status, [("Content-Type", "application/json")], json.dumps(payload).encode())


def translate_response(result: Any) -> HttpResponse:
    """The v2 rules: a dict with `statusCode` is a response; anything else is the 200 JSON body itself."""
    if not (isinstance(result, dict) and "statusCode" in result):
        if isinstance(result, str):
            return HttpResponse(200, [("Content-Type", "application/json")], result.encode())
        return _json_response(200, result)
    try:
        status = int(result["statusCode"])
        if not 100 <= status <= 599:
            raise ValueError(status)
        headers = [(str(k), str(v)) for k, v in (result.get("headers") or {}).items()]
        for name, values in (result.get("multiValueHeaders") or {}).items():
            headers.extend((str(name), str(v)) for v in values)
        headers.extend(("Set-Cookie", str(c)) for c in result.get("cookies") or [])
        raw = result.get("body")
        text = "" if raw is None else raw if isinstance(raw, str) else json.dumps(raw)
        body = base64.b64decode(text, validate=True) if result.get("isBase64Encoded") else text.encode()
    except (TypeError, ValueError, AttributeError, binascii.Error) as exc:
        raise GatewayError(500, "Internal Server Error") from exc
    if not any(k.lower() == "content-type" for k, _ in headers):
        headers.append(("Content-Type", "application/json"))
    return HttpResponse(status, headers, body)


# ---------------------------------------------------------------------------------------------------------- the API

class _AuthorizerCache:
    def __init__(self, ttl_s: float) -> None:
        self._ttl = ttl_s
        self._entries: dict[tuple[str, ...], tuple[float, dict[str, Any]]] = {}
        self._lock = threading.Lock()

    def get(self, identity: tuple[str, ...]) -> dict[str, Any] | None:
        with self._lock:
            entry = self._entries.get(identity)
            if entry is None or entry[0] <= time.monotonic():
                self._entries.pop(identity, None)
                return None
            return entry[1]

    def put(self, identity: tuple[str, ...], result: dict[str, Any]) -> None:
        if self._ttl > 0:
            with self._lock:
                self._entries[identity] = (time.monotonic() + self._ttl, result)


class LocalHttpApi:
    def __init__(self, routes: Iterable[RouteLike], authorizer: Handler | None = None, host: str = "127.0.0.1",
                 port: int = 0, authorizer_ttl_s: float = 300, identity_context: Sequence[str] = (),
                 pages: Sequence[Page] = (), on_request: RequestLog | None = None) -> None:
        """`identity_context`: `$context.` identity sources besides the Authorization header (`identity.sourceIp`),
        which the authorizer is sent and its results are cached by. `pages`: asked in turn before the routes, for
        GET and HEAD only. `on_request`: told of every request once answered (`hvr dev`'s request log)."""
        routes = list(routes)
        if authorizer is None and any(r.auth for r in routes):
            raise ValueError("routes need an authorizer but none was given")
        unknown = set(identity_context) - set(CONTEXT_IDENTITIES)
        if unknown:
            raise ValueError(f"identity sources not known locally: {sorted(unknown)}")
        self.identity_context = tuple(identity_context)
        self.pages = tuple(pages)
        self.on_request = on_request
        self.routes = RouteTable(routes)
        self.authorizer = authorizer
        self.api_id = secrets.token_hex(5)  # API Gateway ids are 10 lower-case alphanumerics
        self.authorizer_invocations = 0  # how often the authorizer really ran; lets tests see the cache work
        self._cache = _AuthorizerCache(authorizer_ttl_s)
        self._host, self._port = host, port
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._environments: dict[int, threading.Lock] = {}
        self._environments_lock = threading.Lock()

    def _environment(self, handler: Handler) -> threading.Lock:
        """The function's one execution environment: Lambda runs one invocation at a time in each, and handlers rely
        on it (Powertools' resolver keeps the current event on its module-level app: two requests in it at once got
        each other's bodies and 500s under 64 concurrent clients). Lambda scales out with more environments; here
        a function's invocations queue for its one."""
        with self._environments_lock:
            return self._environments.setdefault(id(handler), threading.Lock())

    # The gateway's decision for one request, independent of the HTTP server.
    def dispatch(self, request: HttpRequest) -> HttpResponse:
        request_id = str(uuid.uuid4())
        started = time.perf_counter()
        caller: dict[str, Any] = {}  # the authorizer's context, once it has run: whose request it was
        try:
            response = self._dispatch(request, request_id, caller)
        except GatewayError as exc:
            response = _json_response(exc.status, {"message": exc.message})
        response.headers.append(("apigw-requestid", request_id))
        if self.on_request is not None:
            self.on_request(request, response.status, time.perf_counter() - started, caller.get("tenant"))
        return response

    def _dispatch(self, request: HttpRequest, request_id: str, caller: dict[str, Any]) -> HttpResponse:
        if len(request.body) > MAX_BODY_BYTES:
            raise GatewayError(413, "Request Entity Too Large")
        if request.method in ("GET", "HEAD"):
            for page in self.pages:
                served = page(request)
                if served is not None:
                    return served
        matched = self.routes.match(request.method, request.raw_path)
        if matched is None:
            raise GatewayError(404, "Not Found")
        compiled, params = matched
        parts = _EventParts(request, compiled, params, self.api_id, request_id, time.time())
        context = self._authorize(parts) if compiled.route.auth else None
        caller.update(context or {})
        event = parts.handler_event(context)
        lambda_context = LambdaContextStub(function_name=getattr(compiled.route, "function_name", "local"),
                                           aws_request_id=str(uuid.uuid4()))
        try:
            with self._environment(compiled.route.handler):
                result = compiled.route.handler(event, lambda_context)
        except Exception as exc:
            log.exception("%s failed", compiled.route_key)
            raise GatewayError(500, "Internal Server Error") from exc
        return translate_response(result)

    def _authorize(self, parts: _EventParts) -> dict[str, Any] | None:
        if not parts.headers.get(IDENTITY_HEADER):
            raise GatewayError(401, "Unauthorized")  # a missing identity source never reaches the authorizer
        identity = parts.identity(self.identity_context)
        result = self._cache.get(tuple(identity))
        if result is None:
            assert self.authorizer is not None
            self.authorizer_invocations += 1
            try:
                with self._environment(self.authorizer):
                    result = self.authorizer(parts.authorizer_event(identity),
                                             LambdaContextStub(function_name="authorizer"))
            except Exception as exc:
                log.exception("authorizer failed")
                raise GatewayError(500, "Internal Server Error") from exc
            if not isinstance(result, dict) or not isinstance(result.get("isAuthorized"), bool):
                log.error("authorizer returned %r, not a simple response", result)
                raise GatewayError(500, "Internal Server Error")
            self._cache.put(tuple(identity), result)
        if not result["isAuthorized"]:
            raise GatewayError(403, "Forbidden")
        context = result.get("context")
        return dict(context) if isinstance(context, dict) else None

    # The HTTP server around it.
    def start(self) -> LocalHttpApi:
        handler = type("_BoundHandler", (_RequestHandler,), {"api": self})
        try:
            self._server = LoopbackServer((self._host, self._port), handler)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise PortInUse(exc.errno, f"port {self._port} is in use") from exc
            raise
        self._server.daemon_threads = True
        # A short poll interval only bounds how long stop() waits; requests are served as they arrive.
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="local-http-api", daemon=True)
        self._thread.start()
        return self

    @property
    def url(self) -> str:
        assert self._server is not None, "start() first"
        return f"http://{self._host}:{self._server.server_address[1]}"

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> LocalHttpApi:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


class _RequestHandler(BaseHTTPRequestHandler):
    api: LocalHttpApi
    protocol_version = "HTTP/1.1"  # keep-alive, as clients (httpx pools) expect
    # Headers and body leave in two writes; with Nagle on, the body waits for the client's delayed ACK of the
    # headers: 40 ms added to every response on a kept-alive connection.
    disable_nagle_algorithm = True

    def _handle(self) -> None:
        try:
            body = self._read_body()
        except GatewayError as exc:
            # A refused body may still be on the socket: this connection ends, and the client is told so, or its pool
            # would send the next request down it and read no answer.
            response = _json_response(exc.status, {"message": exc.message})
            self.close_connection = True
        else:
            raw_path, _, raw_query = self.path.partition("?")
            request = HttpRequest(self.command, raw_path, raw_query, list(self.headers.items()), body,
                                  self.client_address[0], self.request_version)
            response = self.api.dispatch(request)
        self.send_response(response.status)
        for name, value in response.headers:
            if name.lower() not in ("content-length", "connection", "transfer-encoding", "date"):
                self.send_header(name, value)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.send_header("Date", formatdate(usegmt=True))
        self.send_header("Content-Length", str(len(response.body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(response.body)

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            return self._read_chunked()
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY_BYTES:
            # Drain it so the client, still sending, reads the 413 instead of a reset connection.
            while length > 0 and (chunk := self.rfile.read(min(length, 1 << 20))):
                length -= len(chunk)
            raise GatewayError(413, "Request Entity Too Large")
        return self.rfile.read(length) if length else b""

    def _read_chunked(self) -> bytes:
        chunks: list[bytes] = []
        total = 0
        while True:
            size = int(self.rfile.readline().split(b";", 1)[0].strip() or b"0", 16)
            if size == 0:
                while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                    pass  # trailers
                return b"".join(chunks)
            total += size
            if total > MAX_BODY_BYTES:
                raise GatewayError(413, "Request Entity Too Large")
            chunks.append(self.rfile.read(size))
            self.rfile.readline()

    def __getattr__(self, name: str) -> Any:
        """http.server serves a method by its `do_<METHOD>`, and answers 501 for any it lacks (TRACE, QUERY, …).
        Every method goes to the route table instead: an ANY route takes it to the function, which answers 405
        with Allow for a method its path doesn't serve. (What API Gateway itself does with them isn't documented.)"""
        if name.startswith("do_"):
            return self._handle
        raise AttributeError(name)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: one line per request would drown `hvr dev` output; failures are logged where they happen."""
