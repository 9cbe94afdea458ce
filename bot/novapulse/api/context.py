"""What every route module needs: the bot's service, the way onto its loop, auth, metrics."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

from fastapi import Depends, Request

from novapulse.api.auth import Authenticator, AuthSettings, Caller
from novapulse.api.gateway import BotGateway
from novapulse.api.metrics import BotMetrics
from novapulse.api.throttle import LoginThrottle, Network, parse_networks
from novapulse.service import BotService

STATIC_DIR = Path(__file__).resolve().parent / "static"
SSE_KEEPALIVE_SECONDS = 15.0


@dataclass
class ApiContext:
    service: BotService
    gateway: BotGateway
    auth: Authenticator
    metrics: BotMetrics
    login_limiter: LoginThrottle
    trusted_proxies: tuple[Network, ...]
    static_dir: Path = STATIC_DIR
    sse_keepalive_s: float = SSE_KEEPALIVE_SECONDS

    @classmethod
    def build(cls, service: BotService, settings: AuthSettings, gateway: BotGateway,
              metrics: BotMetrics, static_dir: Path, sse_keepalive_s: float) -> ApiContext:
        return cls(service, gateway, Authenticator(settings), metrics,
                   LoginThrottle(settings.login_free_failures,
                                 max_delay_s=settings.login_max_delay_s),
                   parse_networks(settings.trusted_proxies), static_dir, sse_keepalive_s)


def is_https(request: Request) -> bool:
    """Behind TLS, directly or through a proxy that says so."""
    forwarded = request.headers.get("x-forwarded-proto", "").split(",")[0].strip().lower()
    return request.url.scheme == "https" or forwarded == "https"


def context_of(request: Request) -> ApiContext:
    ctx: ApiContext = request.app.state.context
    return ctx


async def _read_caller(request: Request) -> Caller:
    return await context_of(request).auth.read(request)


async def _admin_caller(request: Request) -> Caller:
    return await context_of(request).auth.admin(request)


ReadCaller = Annotated[Caller, Depends(_read_caller)]
AdminCaller = Annotated[Caller, Depends(_admin_caller)]
