"""HMAC verification in front of every route but the health check
(docs/architecture.md, "Security between router and agent").

A plain ASGI middleware rather than a FastAPI dependency: it must see the raw body bytes and the request
target exactly as sent, and it must answer 401 before any routing or body validation, so an unsigned caller
learns nothing about the API (not even a 404 or a 422).
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Sequence

import anyio.to_thread
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from router.signing import SignatureError, verify

OPEN_PATHS = frozenset({"/v1/health"})
# Create bodies carry a ComfyUI workflow graph, typically tens of KB; anything near this is not ours.
MAX_BODY_BYTES = 4 * 1024 * 1024


class _TooLarge(Exception):
    pass


class SignatureMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        *,
        secrets: Sequence[str],
        nonce_is_fresh: Callable[[str, int], bool],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._app = app
        self._secrets = tuple(secrets)
        self._nonce_is_fresh = nonce_is_fresh
        self._clock = clock

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in OPEN_PATHS:
            await self._app(scope, receive, send)
            return
        try:
            body = await _read_body(receive)
        except _TooLarge:
            await JSONResponse({"detail": "request body too large"}, status_code=413)(scope, receive, send)
            return
        if body is None:  # the client went away before sending its body
            return
        check = functools.partial(
            verify, self._secrets, scope["method"], _request_target(scope), body, _headers(scope),
            now=self._clock(), nonce_is_fresh=self._nonce_is_fresh,
        )
        try:
            # The nonce check writes to SQLite; keep that off the event loop.
            await anyio.to_thread.run_sync(check)
        except SignatureError as exc:
            await JSONResponse({"detail": str(exc)}, status_code=401)(scope, receive, send)
            return
        await self._app(scope, _replay(body, receive), send)


def _request_target(scope: Scope) -> str:
    # raw_path is the path as the client sent it (still percent-encoded), which is what it signed.
    raw = scope.get("raw_path")
    path = raw.decode("latin-1") if raw else scope["path"]
    query = scope.get("query_string", b"").decode("latin-1")
    return f"{path}?{query}" if query else path


def _headers(scope: Scope) -> dict[str, str]:
    return {key.decode("latin-1"): value.decode("latin-1") for key, value in scope["headers"]}


async def _read_body(receive: Receive) -> bytes | None:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise _TooLarge
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    """A receive that hands the app the body already read, then defers to the real one (for disconnects)."""
    delivered = False

    async def replayed() -> Message:
        nonlocal delivered
        if delivered:
            return await receive()
        delivered = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replayed
