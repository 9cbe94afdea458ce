"""Deletion under the finalizer, against a tiny local HTTP server speaking the bot's API."""

from __future__ import annotations

import base64
import dataclasses
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web

from support.local_http import serving

from .conftest import FAST, Cluster, eventually, operator

# The bot is this test's local server, named by the endpoint annotation: only honoured with
# the operator's explicit flag (the admin key goes where the annotation points).
LOCAL = dataclasses.replace(FAST, allow_endpoint_annotation=True)

BOT = "/apis/novapulse.io/v1alpha1/namespaces/default/tradingbots/bot1"


@dataclass
class FakeBot:
    """The contract: pause {reason}, close_all, status → open_positions; X-API-Key."""

    open_positions: int = 2
    can_close: bool = True
    calls: list[str] = field(default_factory=list)
    keys: list[str] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/api/v1/control/pause", self.pause)
        app.router.add_post("/api/v1/control/close_all", self.close_all)
        app.router.add_get("/api/v1/status", self.status)
        return app

    def _auth(self, request: web.Request, name: str) -> None:
        self.calls.append(name)
        self.keys.append(request.headers.get("X-API-Key", ""))

    async def pause(self, request: web.Request) -> web.Response:
        self._auth(request, "pause")
        assert request.headers.get("X-Paused-By") == "operator"
        self.reasons.append((await request.json())["reason"])
        return web.json_response({"paused": True})

    async def close_all(self, request: web.Request) -> web.Response:
        self._auth(request, "close_all")
        if self.can_close:
            self.open_positions = 0
        return web.json_response({"closing": True})

    async def status(self, request: web.Request) -> web.Response:
        self._auth(request, "status")
        return web.json_response({"paused": True, "open_positions": self.open_positions})


@pytest.fixture()
async def fake_bot() -> AsyncIterator[tuple[FakeBot, str]]:
    bot = FakeBot()
    async with serving(bot.app()) as url:
        yield bot, url


def condition(bot: dict[str, Any] | None, type_: str) -> dict[str, Any]:
    for cond in ((bot or {}).get("status") or {}).get("conditions") or []:
        if cond["type"] == type_:
            return dict(cond)
    return {}


async def _gone(cluster: Cluster) -> bool:
    return await cluster.bot("bot1") is None


async def test_delete_pauses_closes_and_waits_until_flat(
        cluster: Cluster, fake_bot: tuple[FakeBot, str]) -> None:
    fake, url = fake_bot
    async with operator(LOCAL):
        await cluster.create_bot("bot1", {"mode": "paper"},
                                 annotations={"novapulse.io/bot-endpoint": url})
        await eventually(lambda: cluster.child("apps/v1", "deployments", "bot1"))
        bot = await cluster.bot("bot1")
        assert bot is not None and "novapulse.io/finalizer" in bot["metadata"]["finalizers"]
        # Read now: once the TradingBot is gone, garbage collection takes its Secret too.
        secret = await eventually(lambda: cluster.child("v1", "secrets", "bot1-dashboard"))
        admin_key = base64.b64decode(secret["data"]["DASHBOARD_ADMIN_KEY"]).decode()

        await cluster.delete(BOT)
        await eventually(lambda: _gone(cluster), what="the finalizer released")
        assert fake.calls[:2] == ["pause", "close_all"] and fake.calls[-1] == "status"
        assert fake.open_positions == 0
        assert set(fake.keys) == {admin_key}
        assert "deleted" in fake.reasons[0]
        assert await _events(cluster, "PositionsClosed")


async def _events(cluster: Cluster, reason: str) -> list[dict[str, Any]]:
    return await cluster.events(reason)


async def test_positions_that_do_not_close_hold_the_deletion_visibly(
        cluster: Cluster, fake_bot: tuple[FakeBot, str]) -> None:
    fake, url = fake_bot
    fake.can_close = False
    async with operator(LOCAL):
        await cluster.create_bot("bot1", {"mode": "paper"},
                                 annotations={"novapulse.io/bot-endpoint": url})
        await eventually(lambda: cluster.child("apps/v1", "deployments", "bot1"))
        await cluster.delete(BOT)

        async def held() -> dict[str, Any] | None:
            bot = await cluster.bot("bot1")
            cond = condition(bot, "ManualInterventionRequired")
            return bot if cond.get("reason") == "PositionsNotClosed" else None

        bot = await eventually(held, what="ManualInterventionRequired", within=15)
        assert bot["metadata"]["deletionTimestamp"]
        assert condition(bot, "ManualInterventionRequired")["status"] == "True"
        assert "2 position(s) still open" in condition(bot, "ManualInterventionRequired")[
            "message"]
        warning = await eventually(lambda: _events(cluster, "PositionsNotClosed"))
        assert warning[0]["type"] == "Warning"

        fake.can_close = True  # someone fixes it: the next retry completes the deletion
        await eventually(lambda: _gone(cluster), what="the deletion to complete", within=15)


async def test_leave_open_pauses_and_lets_go(cluster: Cluster,
                                              fake_bot: tuple[FakeBot, str]) -> None:
    fake, url = fake_bot
    async with operator(LOCAL):
        await cluster.create_bot("bot1", {"mode": "paper", "onDelete": "leaveOpen"},
                                 annotations={"novapulse.io/bot-endpoint": url})
        await eventually(lambda: cluster.child("apps/v1", "deployments", "bot1"))
        await cluster.delete(BOT)
        await eventually(lambda: _gone(cluster), what="the finalizer released")
        assert fake.calls == ["pause"]
        assert fake.open_positions == 2
