"""The dashboard's pages and its login: `/`, `/login`, `/logout` (the static files are mounted
by the app). Not part of the OpenAPI schema: these are for browsers."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qs

from fastapi import APIRouter, Request, Response
from fastapi.responses import FileResponse, RedirectResponse

from novapulse.api.auth import CSRF_COOKIE, SESSION_COOKIE
from novapulse.api.context import ApiContext, is_https
from novapulse.api.throttle import ADMIN_ACCOUNT, client_address


def _page(static_dir: Path, name: str) -> Response:
    path = static_dir / name
    if not path.is_file():
        return Response("dashboard files are not installed", status_code=404,
                        media_type="text/plain")
    return FileResponse(path, media_type="text/html", headers={"Cache-Control": "no-store"})


def _client(request: Request, ctx: ApiContext) -> str:
    peer = request.client.host if request.client else "unknown"
    return client_address(peer, request.headers.get("x-forwarded-for"), ctx.trusted_proxies)


async def _password(request: Request) -> str:
    body = await request.body()  # at most LOGIN_MAX_BODY: the BodyLimit middleware sees to it
    fields = parse_qs(body.decode("utf-8", errors="replace"), max_num_fields=10)
    values = fields.get("password") or [""]
    return values[0]


def dashboard_router(ctx: ApiContext) -> APIRouter:
    router = APIRouter(include_in_schema=False)
    sessions = ctx.auth.sessions

    @router.get("/")
    async def index(request: Request) -> Response:
        if sessions.lookup(request.cookies.get(SESSION_COOKIE)) is None:
            return RedirectResponse("/login", status_code=303)
        return _page(ctx.static_dir, "index.html")

    @router.get("/favicon.ico")
    async def favicon() -> Response:
        """Browsers ask for it on every page; the icon is an SVG (every current browser)."""
        path = ctx.static_dir / "favicon.svg"
        if not path.is_file():
            return Response(status_code=404)
        return FileResponse(path, media_type="image/svg+xml",
                            headers={"Cache-Control": "max-age=86400"})

    @router.get("/login")
    async def login_page() -> Response:
        return _page(ctx.static_dir, "login.html")

    @router.post("/login")
    async def login(request: Request) -> Response:
        client = _client(request, ctx)
        wait = ctx.login_limiter.retry_after(ADMIN_ACCOUNT, client)
        if wait:
            return Response(f"too many failed logins; try again in {wait} s", status_code=429,
                            media_type="text/plain", headers={"Retry-After": str(wait)})
        if not await ctx.auth.password_matches(await _password(request)):
            ctx.login_limiter.failed(ADMIN_ACCOUNT, client)
            return RedirectResponse("/login?error=1", status_code=303)
        ctx.login_limiter.succeeded(ADMIN_ACCOUNT, client)
        cookie, csrf_token = sessions.create()
        response = RedirectResponse("/", status_code=303)
        secure = is_https(request)
        max_age = ctx.auth.settings.session_max_age_s
        response.set_cookie(SESSION_COOKIE, cookie, max_age=max_age, httponly=True,
                            samesite="strict", secure=secure, path="/")
        response.set_cookie(CSRF_COOKIE, csrf_token, max_age=max_age, httponly=False,
                            samesite="strict", secure=secure, path="/")
        return response

    @router.post("/logout")
    async def logout(request: Request) -> Response:
        sessions.end(request.cookies.get(SESSION_COOKIE))
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(SESSION_COOKIE, path="/")
        response.delete_cookie(CSRF_COOKIE, path="/")
        return response

    return router
