"""The FastAPI application of one bot: the API contract (README) and the dashboard."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from novapulse import __version__
from novapulse.api.auth import AuthSettings
from novapulse.api.context import SSE_KEEPALIVE_SECONDS, STATIC_DIR, ApiContext
from novapulse.api.gateway import BotGateway, BotLoopUnresponsive
from novapulse.api.limits import BodyLimit
from novapulse.api.metrics import BotMetrics
from novapulse.api.routes_control import control_router
from novapulse.api.routes_dashboard import dashboard_router
from novapulse.api.routes_probes import probes_router
from novapulse.api.routes_read import read_router
from novapulse.service import BotService

log = logging.getLogger("novapulse.api")

SECURITY_HEADERS = [
    (b"content-security-policy",
     b"default-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"),
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
]


class SecurityHeaders:
    """Adds the security headers to every response (pure ASGI: streams stay streams)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        is_api = str(scope.get("path", "")).startswith("/api/")

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", [])
                           if k.lower() not in {h for h, _ in SECURITY_HEADERS}]
                headers += SECURITY_HEADERS
                if is_api and not any(k.lower() == b"cache-control" for k, _ in headers):
                    headers.append((b"cache-control", b"no-store"))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


def _precise_openapi(app: FastAPI) -> dict[str, Any]:
    """The generated schema, with one fix: an optional header or query parameter is absent
    when unset, never `null` (there is no null in a header), so drop the null branch."""
    if app.openapi_schema is None:
        schema = get_openapi(title=app.title, version=app.version, routes=app.routes)
        for operations in schema.get("paths", {}).values():
            for operation in operations.values():
                for parameter in operation.get("parameters", []):
                    choices = parameter.get("schema", {}).get("anyOf")
                    if choices and {"type": "null"} in choices:
                        rest = [c for c in choices if c != {"type": "null"}]
                        if len(rest) == 1:
                            parameter["schema"] = {**parameter["schema"], **rest[0]}
                            del parameter["schema"]["anyOf"]
        app.openapi_schema = schema
    return app.openapi_schema


def create_app(service: BotService, auth: AuthSettings, *, metrics: BotMetrics | None = None,
               gateway: BotGateway | None = None, static_dir: Path = STATIC_DIR,
               sse_keepalive_s: float = SSE_KEEPALIVE_SECONDS) -> FastAPI:
    """The app over one bot. `gateway` carries calls onto the bot's loop when the API runs on a
    thread of its own (the runner's set-up); without one, handlers call the service directly."""
    ctx = ApiContext.build(service, auth, gateway or BotGateway(), metrics or BotMetrics(),
                           static_dir, sse_keepalive_s)
    app = FastAPI(title="NovaPulse control API", version=__version__,
                  docs_url=None, redoc_url=None, openapi_url="/api/v1/openapi.json")
    app.include_router(probes_router(ctx))
    app.include_router(read_router(ctx))
    app.include_router(control_router(ctx))
    app.include_router(dashboard_router(ctx))
    app.mount("/static", StaticFiles(directory=static_dir, check_dir=False), name="static")

    @app.exception_handler(BotLoopUnresponsive)
    async def loop_unresponsive(_: Request, exc: BotLoopUnresponsive) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=503)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        # The type only: an exception's text may quote data it was handed.
        log.error("%s %s failed: %s", request.method, request.url.path, type(exc).__name__)
        return JSONResponse({"detail": "internal error"}, status_code=500)

    app.add_middleware(SecurityHeaders)
    app.add_middleware(BodyLimit)  # outermost: an oversized body is refused before anything
    app.openapi = lambda: _precise_openapi(app)  # type: ignore[method-assign]
    app.state.context = ctx
    return app
