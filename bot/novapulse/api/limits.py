"""Request bodies are bounded before they are read, on every route.

A declared `Content-Length` over the route's limit is answered 413 at once, without reading a
byte of the body; a body without one (chunked) is counted as it arrives and refused the moment
it passes the limit. So no request, authenticated or not, can make the API buffer more than
its limit (the largest body any route takes is a small JSON object or the login form).
"""

from __future__ import annotations

from collections.abc import Mapping

from starlette.types import ASGIApp, Message, Receive, Scope, Send

DEFAULT_MAX_BODY = 64 * 1024
LOGIN_MAX_BODY = 4 * 1024
ROUTE_LIMITS: Mapping[str, int] = {"/login": LOGIN_MAX_BODY}


class _TooLarge(Exception):
    pass


def _declared_length(scope: Scope) -> int | None:
    """The Content-Length header (-1 when malformed), None when absent."""
    for name, value in scope.get("headers", ()):
        if name.lower() == b"content-length":
            try:
                return int(value)
            except ValueError:
                return -1
    return None


async def _refuse(send: Send, limit: int) -> None:
    body = f'{{"detail":"request body too large (limit {limit} bytes)"}}'.encode()
    await send({"type": "http.response.start", "status": 413,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})


class BodyLimit:
    """Pure ASGI: refuses an oversized body with 413 before the application reads it."""

    def __init__(self, app: ASGIApp, default: int = DEFAULT_MAX_BODY,
                 routes: Mapping[str, int] = ROUTE_LIMITS) -> None:
        self.app = app
        self.default = default
        self.routes = dict(routes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.routes.get(str(scope.get("path", "")), self.default)
        declared = _declared_length(scope)
        if declared is not None and not 0 <= declared <= limit:
            await _refuse(send, limit)
            return
        received = 0
        started = False

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise _TooLarge
            return message

        async def tracked(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted, tracked)
        except _TooLarge:
            if not started:
                await _refuse(send, limit)
