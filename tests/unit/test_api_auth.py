"""Who may do what: every endpoint × {no key, wrong key, read key, admin key}; dashboard login,
session cookie, CSRF, login rate limit, security headers; no secret in any answer or log.

Over ASGITransport with a real BotRunner/BotService (an engine with no feed and no store)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass

import bcrypt
import httpx
import pytest

from novapulse.api import AuthSettings, create_app
from novapulse.config import load_config
from novapulse.runner import BotRunner, FeedSpec

ADMIN_KEY = "admin-Zq8vN3kL1pX7rT5wB2mC9dF4"
READ_KEY = "read-Hh3kQ2xM9vB4nL8pR3tW6yE1"
WRONG_KEY = "wrong-0000000000000000000000"
SESSION_SECRET = "session-aK9xQ2mZ7vB4nL8pR3tW6yE1uI5"
PASSWORD = "correct horse battery staple"
PASSWORD_HASH = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(4))
SECRETS = [ADMIN_KEY, READ_KEY, SESSION_SECRET, PASSWORD, PASSWORD_HASH.decode()]

PUBLIC = [("GET", "/api/v1/health"), ("GET", "/api/v1/ready"), ("GET", "/metrics")]
READS = [("GET", f"/api/v1/{p}") for p in (
    "status", "thoughts", "risk", "strategies", "positions", "trades", "performance", "equity")]
CONTROLS = [("POST", f"/api/v1/{p}") for p in (
    "control/pause", "control/resume", "control/close_all",
    "strategies/ema_cross/enable", "strategies/ema_cross/disable")]
CREDENTIALS = {"no key": None, "wrong key": WRONG_KEY, "read key": READ_KEY,
               "admin key": ADMIN_KEY}


@dataclass
class Api:
    client: httpx.AsyncClient
    runner: BotRunner


@pytest.fixture
async def api() -> AsyncIterator[Api]:
    runner = BotRunner(load_config(None, environ={}), FeedSpec("kraken"))
    settings = AuthSettings(admin_key=ADMIN_KEY, read_key=READ_KEY,
                            session_secret=SESSION_SECRET, password_hash=PASSWORD_HASH,
                            login_free_failures=3, trusted_proxies=("203.0.113.7",))
    app = create_app(runner.service, settings, metrics=runner.metrics)
    transport = httpx.ASGITransport(app, client=("203.0.113.7", 5555))
    async with httpx.AsyncClient(transport=transport, base_url="http://bot") as client:
        yield Api(client, runner)


def _headers(key: str | None) -> dict[str, str]:
    return {"X-API-Key": key} if key is not None else {}


def _expected(path: str, credential: str) -> int:
    if (("GET", path) in PUBLIC):
        return 503 if path.endswith("/ready") else 200  # no store in this test: not ready
    if credential in ("no key", "wrong key"):
        return 401
    if credential == "read key" and any(path == p for _, p in CONTROLS):
        return 403
    return 200


@pytest.mark.parametrize("credential", list(CREDENTIALS))
async def test_auth_matrix(api: Api, credential: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    seen = []
    for method, path in PUBLIC + READS + CONTROLS:
        resp = await api.client.request(method, path, headers=_headers(CREDENTIALS[credential]))
        seen.append((method, path, resp.status_code))
        for secret in SECRETS:
            assert secret not in resp.text and secret not in str(resp.headers)
    assert seen == [(m, p, _expected(p, credential)) for m, p in PUBLIC + READS + CONTROLS]
    for secret in SECRETS:
        assert secret not in caplog.text


async def test_pause_and_resume_as_the_runbooks_do(api: Api) -> None:
    admin = _headers(ADMIN_KEY)
    resp = await api.client.post("/api/v1/control/pause", headers=admin,
                                 json={"reason": "checking the exchange"})
    assert resp.json() == {"changed": True, "paused": True, "paused_by": "manual",
                           "pause_reason": "checking the exchange"}
    status = (await api.client.get("/api/v1/status", headers=_headers(READ_KEY))).json()
    assert (status["paused"], status["paused_by"]) == (True, "manual")
    # The operator may only lift its own pause...
    resp = await api.client.post("/api/v1/control/resume",
                                 headers={**admin, "X-Paused-By": "operator"})
    assert resp.status_code == 409 and api.runner.engine.risk.pause.paused
    # ...and `curl -X POST .../control/resume -H "X-API-Key: $DASHBOARD_ADMIN_KEY"` lifts any.
    resp = await api.client.post("/api/v1/control/resume", headers=admin)
    assert resp.status_code == 200 and resp.json()["changed"] is True
    assert not api.runner.engine.risk.pause.paused


async def test_operator_pauses_are_marked_and_lifted_by_the_operator(api: Api) -> None:
    operator = {**_headers(ADMIN_KEY), "X-Paused-By": "operator"}
    resp = await api.client.post("/api/v1/control/pause", headers=operator,
                                 json={"reason": "feed down for 120s"})
    assert resp.json()["paused_by"] == "operator"
    resp = await api.client.post("/api/v1/control/pause", headers=operator,
                                 json={"reason": "again"})
    assert resp.json()["changed"] is False  # the operator's first pause keeps its reason
    resp = await api.client.post("/api/v1/control/resume", headers=operator)
    assert resp.status_code == 200 and resp.json()["paused"] is False


async def test_a_human_pause_during_an_operator_pause_survives_the_operators_resume(
        api: Api) -> None:
    operator = {**_headers(ADMIN_KEY), "X-Paused-By": "operator"}
    await api.client.post("/api/v1/control/pause", headers=operator,
                          json={"reason": "feed down for 120s"})
    resp = await api.client.post("/api/v1/control/pause", headers=_headers(ADMIN_KEY),
                                 json={"reason": "checking the exchange"})
    # Was: `changed: false` — the human's pause was dropped, and the operator's resume below
    # then let the bot trade again.
    assert resp.json()["changed"] is True and resp.json()["paused_by"] == "manual"
    resp = await api.client.post("/api/v1/control/resume", headers=operator)
    assert resp.status_code == 200 and resp.json()["changed"] is True
    assert resp.json()["paused"] is True and resp.json()["paused_by"] == "manual"
    assert resp.json()["pause_reason"] == "checking the exchange"
    resp = await api.client.post("/api/v1/control/resume", headers=operator)
    assert resp.status_code == 409  # nothing of the operator's left to lift
    resp = await api.client.post("/api/v1/control/resume", headers=_headers(ADMIN_KEY))
    assert resp.json()["paused"] is False


async def _login(client: httpx.AsyncClient, password: str, **headers: str) -> httpx.Response:
    return await client.post("/login", content=f"password={password}".replace(" ", "+"),
                             headers={"Content-Type": "application/x-www-form-urlencoded",
                                      **headers})


async def test_dashboard_session_login_csrf_and_logout(api: Api) -> None:
    client = api.client
    resp = await client.get("/")
    assert resp.status_code == 303 and resp.headers["location"] == "/login"
    resp = await _login(client, "wrong")
    assert resp.status_code == 303 and resp.headers["location"] == "/login?error=1"
    assert "np_session" not in client.cookies

    resp = await _login(client, PASSWORD)
    assert resp.status_code == 303 and resp.headers["location"] == "/"
    cookies = resp.headers.get_list("set-cookie")
    session_cookie = next(c for c in cookies if c.startswith("np_session="))
    csrf_cookie = next(c for c in cookies if c.startswith("np_csrf="))
    assert "httponly" in session_cookie.lower() and "samesite=strict" in session_cookie.lower()
    assert "httponly" not in csrf_cookie.lower() and "secure" not in session_cookie.lower()
    csrf = client.cookies["np_csrf"]

    assert (await client.get("/api/v1/status")).status_code == 200  # session = admin
    page = await client.get("/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert (await client.post("/api/v1/control/pause")).status_code == 403  # no CSRF header
    resp = await client.post("/api/v1/control/pause", headers={"X-CSRF-Token": "forged"})
    assert resp.status_code == 403
    resp = await client.post("/api/v1/control/pause", headers={"X-CSRF-Token": csrf},
                             json={"reason": "from the dashboard"})
    assert resp.status_code == 200 and resp.json()["paused_by"] == "manual"
    resp = await client.post("/api/v1/control/resume",
                             headers={"X-CSRF-Token": csrf, "X-Paused-By": "operator"})
    assert resp.status_code == 403  # only the admin key may speak for the operator
    # A key, when sent, decides alone: a wrong key is refused even with a live session.
    assert (await client.get("/api/v1/status", headers=_headers(WRONG_KEY))).status_code == 401

    old_cookie = client.cookies["np_session"]
    assert (await client.post("/logout")).status_code == 303
    client.cookies.set("np_session", old_cookie)  # a replayed cookie after logout is dead
    assert (await client.get("/api/v1/status")).status_code == 401


async def test_tampered_session_cookie_is_refused(api: Api) -> None:
    await _login(api.client, PASSWORD)
    cookie = api.client.cookies["np_session"]
    api.client.cookies.set("np_session", cookie[:-2] + ("AA" if cookie[-2:] != "AA" else "BB"))
    assert (await api.client.get("/api/v1/status")).status_code == 401


async def test_secure_cookies_behind_tls(api: Api) -> None:
    resp = await _login(api.client, PASSWORD, **{"X-Forwarded-Proto": "https"})
    for cookie in resp.headers.get_list("set-cookie"):
        assert "secure" in cookie.lower()


def _peer(api: Api, address: str) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(api.client._transport.app,  # type: ignore[attr-defined]
                                    client=(address, 4444))
    return httpx.AsyncClient(transport=transport, base_url="http://bot")


async def test_failed_logins_back_off_per_client_and_another_user_gets_in(api: Api) -> None:
    # 203.0.113.7 is the configured ingress: its X-Forwarded-For names the real client.
    attacker = {"X-Forwarded-For": "192.0.2.66"}
    for _ in range(3):
        assert (await _login(api.client, "guess", **attacker)).status_code == 303
    blocked = await _login(api.client, "guess", **attacker)
    assert blocked.status_code == 429 and blocked.headers["Retry-After"] == "1"
    assert (await _login(api.client, PASSWORD, **attacker)).status_code == 429  # even so
    # Another user behind the same ingress, and one connecting directly, are not held back.
    assert (await _login(api.client, PASSWORD, **{"X-Forwarded-For": "192.0.2.10"})
            ).status_code == 303
    async with _peer(api, "198.51.100.9") as client:
        assert (await _login(client, PASSWORD)).status_code == 303
        # A client that is not a trusted proxy cannot pick a fresh address per guess.
        for n in range(4):
            await _login(client, "guess", **{"X-Forwarded-For": f"192.0.2.{100 + n}"})
        assert (await _login(client, "guess", **{"X-Forwarded-For": "192.0.2.200"})
                ).status_code == 429


async def test_the_back_off_doubles_and_a_success_clears_it(api: Api) -> None:
    throttle = api.client._transport.app.state.context.login_limiter  # type: ignore[attr-defined]
    now = [1000.0]
    throttle.clock = lambda: now[0]
    waits: list[int] = []
    for _ in range(6):
        now[0] += waits[-1] if waits else 0  # wait exactly as long as told, then guess again
        assert (await _login(api.client, "guess")).status_code == 303
        waits.append(throttle.retry_after("admin", "203.0.113.7"))
    assert waits == [0, 0, 1, 2, 4, 8]
    assert (await _login(api.client, PASSWORD)).status_code == 429
    now[0] += 8
    assert (await _login(api.client, PASSWORD)).status_code == 303
    assert throttle.retry_after("admin", "203.0.113.7") == 0


@pytest.mark.parametrize(("path", "size"), [("/login", 5_000), ("/api/v1/control/pause", 70_000),
                                             ("/api/v1/trades/t1/resolve", 70_000)])
async def test_oversized_bodies_are_refused_unread(api: Api, path: str, size: int) -> None:
    body = b"password=" + b"a" * size
    resp = await api.client.post(path, content=body, headers=_headers(ADMIN_KEY))
    assert resp.status_code == 413
    # Without a Content-Length (chunked), counted as it arrives.
    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(body), 8192):
            yield body[start:start + 8192]
    resp = await api.client.post(path, content=chunks(), headers=_headers(ADMIN_KEY))
    assert resp.status_code == 413
    assert (await api.client.post("/api/v1/control/pause", json={"reason": "small"},
                                  headers=_headers(ADMIN_KEY))).status_code == 200


async def test_metrics_with_a_read_key_for_bearer_scrapers() -> None:
    runner = BotRunner(load_config(None, environ={}), FeedSpec("kraken"))
    settings = AuthSettings(admin_key=ADMIN_KEY, read_key=READ_KEY, session_secret=SESSION_SECRET,
                            password_hash=PASSWORD_HASH, metrics_require_key=True)
    transport = httpx.ASGITransport(create_app(runner.service, settings, metrics=runner.metrics))
    async with httpx.AsyncClient(transport=transport, base_url="http://bot") as client:
        assert (await client.get("/metrics")).status_code == 401
        wrong = {"Authorization": f"Bearer {WRONG_KEY}"}
        assert (await client.get("/metrics", headers=wrong)).status_code == 401
        ok = await client.get("/metrics", headers={"Authorization": f"Bearer {READ_KEY}"})
        assert ok.status_code == 200 and "novapulse_equity" in ok.text
        assert (await client.get("/metrics", headers=_headers(READ_KEY))).status_code == 200


async def test_overlong_password_is_just_wrong(api: Api) -> None:
    resp = await _login(api.client, "x" * 200)
    assert resp.status_code == 303 and resp.headers["location"] == "/login?error=1"


@pytest.mark.parametrize("path", ["/", "/login", "/api/v1/health", "/api/v1/status",
                                  "/metrics", "/api/v1/nope"])
async def test_security_headers_on_every_response(api: Api, path: str) -> None:
    resp = await api.client.get(path)
    assert resp.headers["content-security-policy"].startswith("default-src 'self'")
    assert resp.headers["x-frame-options"] == "DENY"
    assert resp.headers["x-content-type-options"] == "nosniff"
    assert resp.headers["referrer-policy"] == "no-referrer"


async def test_static_files_are_served(api: Api) -> None:
    resp = await api.client.get("/static/app.js")
    assert resp.status_code == 200
    assert (await api.client.get("/static/../auth.py")).status_code == 404


async def test_unknown_strategy_is_404_and_switch_works(api: Api) -> None:
    admin = _headers(ADMIN_KEY)
    assert (await api.client.post("/api/v1/strategies/nope/disable",
                                  headers=admin)).status_code == 404
    resp = await api.client.post("/api/v1/strategies/ema_cross/disable", headers=admin)
    assert resp.json() == {"name": "ema_cross", "enabled": False, "changed": True}
    rows = (await api.client.get("/api/v1/strategies", headers=admin)).json()["strategies"]
    row = next(r for r in rows if r["name"] == "ema_cross")
    assert row["manually_disabled"] and not row["enabled"]
    status = (await api.client.get("/api/v1/status", headers=admin)).json()
    assert "ema_cross" in status["strategies_disabled"]
