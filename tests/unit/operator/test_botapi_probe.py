"""The auto-pilot's probe of one bot, against a local HTTP server playing the bot's answers:
one request when the status says the bot's health, the health probe only when it must."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp import web

from novapulse_operator.botapi import BotClient
from support.envtest import free_port
from support.local_http import serving

OK = {"mode": "paper", "ws_connected": True}


async def probe(status: tuple[int, dict[str, Any]], health: int,
                ) -> tuple[tuple[bool, dict[str, Any] | None, str], list[str]]:
    """What probe() returns when the bot answers `status` and `health`, and the paths asked."""
    asked: list[str] = []

    async def on_status(_: web.Request) -> web.Response:
        asked.append("/api/v1/status")
        return web.json_response(status[1], status=status[0])

    async def on_health(_: web.Request) -> web.Response:
        asked.append("/api/v1/health")
        return web.json_response({"ok": health == 200, "detail": "d"}, status=health)

    app = web.Application()
    app.router.add_get("/api/v1/status", on_status)
    app.router.add_get("/api/v1/health", on_health)
    async with serving(app) as url:
        result = await BotClient(url, "key", timeout=3).probe()
    return result, asked


async def test_a_status_that_says_healthy_is_one_request() -> None:
    answer = {**OK, "healthy": True, "health_detail": "ok"}
    assert await probe((200, answer), 200) == ((True, answer, ""), ["/api/v1/status"])


async def test_a_status_that_says_unhealthy_says_why_in_one_request() -> None:
    answer = {**OK, "healthy": False, "health_detail": "main loop stalled for 40s (limit 30s)"}
    (healthy, status, why), asked = await probe((200, answer), 503)
    assert (healthy, status, asked) == (False, answer, ["/api/v1/status"])
    assert why == "GET /api/v1/status: not healthy (main loop stalled for 40s (limit 30s))"


@pytest.mark.parametrize(("health", "expected"), [
    (200, (True, OK, "")),
    (503, (False, OK, "GET /api/v1/health answered HTTP 503")),
])
async def test_an_older_bot_without_the_verdict_is_asked_its_health_too(
        health: int, expected: tuple[bool, dict[str, Any], str]) -> None:
    assert await probe((200, OK), health) == (expected, ["/api/v1/status", "/api/v1/health"])


@pytest.mark.parametrize(("status", "health", "expected"), [
    # The main loop stuck: the status (read through it) fails, the health probe says so.
    (503, 503, (False, None, "GET /api/v1/health answered HTTP 503")),
    # The admin key changed: alive, but the status is refused (the pilot reads the key again).
    (401, 200, (True, None, "GET /api/v1/status answered HTTP 401")),
])
async def test_a_status_answered_with_an_error_asks_the_health_probe(
        status: int, health: int, expected: tuple[bool, None, str]) -> None:
    assert await probe((status, {"detail": "x"}), health) == (
        expected, ["/api/v1/status", "/api/v1/health"])


async def test_a_bot_that_does_not_answer_is_not_asked_twice() -> None:
    """The connection drops before any answer (as a dead pod's would): no health probe
    after it, which would only wait for a second timeout."""
    asked: list[str] = []

    async def dropped(request: web.Request) -> web.Response:
        asked.append(request.path)
        assert request.transport is not None
        request.transport.close()
        return web.Response()

    app = web.Application()
    app.router.add_get("/api/v1/status", dropped)
    app.router.add_get("/api/v1/health", dropped)
    async with serving(app) as url:
        healthy, status, why = await BotClient(url, "key", timeout=3).probe()
    # aiohttp itself may try a dropped GET once more; the health probe is never asked.
    assert (healthy, status) == (False, None) and set(asked) == {"/api/v1/status"}
    assert why.startswith("GET /api/v1/status failed: ")


async def test_a_closed_port_is_not_healthy() -> None:
    healthy, status, why = await BotClient(f"http://127.0.0.1:{free_port()}", "key",
                                           timeout=3).probe()
    assert (healthy, status) == (False, None)
    assert why.startswith("GET /api/v1/status failed: ClientConnectorError")
