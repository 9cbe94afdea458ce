"""Telegram against a local fake of the Bot API (a small HTTP server this test starts — a
test double of a third-party service): commands from an allowed chat act through the real
service; the same command from another chat changes nothing and is logged; notifications
arrive; an outage or a stalled API is counted and never holds up a decision; the token is
never logged."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from aiohttp import web

from novapulse.config import load_config
from novapulse.risk import PausedBy
from novapulse.runner import BotRunner, FeedSpec

pytestmark = pytest.mark.integration

TOKEN = "123456:FAKE-token-never-logged"
ALLOWED = 1001
STRANGER = 999


async def eventually(predicate: Callable[[], bool], what: str, within: float = 10.0) -> None:
    deadline = time.monotonic() + within
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"not in {within}s: {what}")
        await asyncio.sleep(0.02)


class FakeBotApi:
    """getUpdates (long polling) and sendMessage, for one token; `mode` breaks it."""

    def __init__(self) -> None:
        self.updates: list[dict[str, Any]] = []
        self.sent: list[tuple[int, str]] = []
        self.mode = "ok"  # ok | down (502) | stalled (never answers)
        self._new = asyncio.Condition()
        self._next_id = 1
        self.url = ""

    async def say(self, chat_id: int, text: str) -> None:
        async with self._new:
            self.updates.append({"update_id": self._next_id, "message": {
                "message_id": self._next_id, "date": int(time.time()), "text": text,
                "chat": {"id": chat_id, "type": "private"}}})
            self._next_id += 1
            self._new.notify_all()

    def to(self, chat_id: int) -> list[str]:
        return [text for chat, text in self.sent if chat == chat_id]

    async def handle(self, request: web.Request) -> web.StreamResponse:
        if request.match_info["token"] != TOKEN:
            return web.json_response({"ok": False, "error_code": 401,
                                      "description": "Unauthorized"}, status=401)
        if self.mode == "down":
            return web.Response(status=502, text="Bad Gateway")
        if self.mode == "stalled":
            await asyncio.Event().wait()
        payload = await request.json()
        if request.match_info["method"] == "sendMessage":
            self.sent.append((int(payload["chat_id"]), str(payload["text"])))
            return web.json_response({"ok": True, "result": {"message_id": len(self.sent)}})
        offset = int(payload.get("offset") or 0)

        def pending() -> list[dict[str, Any]]:
            return [u for u in self.updates if u["update_id"] >= offset]

        async with self._new:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._new.wait_for(lambda: bool(pending())),
                                       float(payload.get("timeout", 0)))
            return web.json_response({"ok": True, "result": pending()})


@pytest.fixture
async def bot_api() -> AsyncIterator[FakeBotApi]:
    fake = FakeBotApi()
    app = web.Application()
    app.router.add_post("/bot{token}/{method}", fake.handle)
    runner = web.AppRunner(app, shutdown_timeout=0.1, access_log=None)  # the fake logs no URL
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    fake.url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"  # type: ignore[union-attr]
    yield fake
    await runner.cleanup()


def bot_runner(api_url: str, monkeypatch: pytest.MonkeyPatch, token: str = TOKEN) -> BotRunner:
    monkeypatch.setenv("TELEGRAM_BOT_TOKEN", token)
    config = load_config(None, environ={}, overrides={"telegram": {
        "enabled": True, "api_base_url": api_url, "allowed_chat_ids": [ALLOWED],
        "poll_timeout_seconds": 1, "request_timeout_seconds": 0.5,
        "retry_initial_seconds": 0.05, "retry_max_seconds": 0.2}})
    return BotRunner(config, FeedSpec("kraken"))


async def started(runner: BotRunner) -> asyncio.Task[None]:
    assert runner.telegram is not None
    return asyncio.create_task(runner.telegram.run())


async def stop(task: asyncio.Task[None]) -> None:
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


async def test_commands_from_an_allowed_chat_act_and_others_change_nothing(
        bot_api: FakeBotApi, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    runner = bot_runner(bot_api.url, monkeypatch)
    pause = runner.engine.risk.pause
    task = await started(runner)
    try:
        await bot_api.say(STRANGER, "/pause taking over")
        await bot_api.say(ALLOWED, "/status")
        await eventually(lambda: any("paper mode" in t for t in bot_api.to(ALLOWED)), "status")
        assert not pause.paused and bot_api.to(STRANGER) == []
        assert f"ignored /pause from chat {STRANGER}: not in telegram.allowed_chat_ids" in (
            caplog.text)

        await bot_api.say(ALLOWED, "/pause checking the exchange")
        await eventually(lambda: pause.paused, "paused")
        assert pause.paused_by is PausedBy.MANUAL
        assert pause.reason == "checking the exchange (via Telegram)"
        await eventually(lambda: any(t.startswith("Paused: Trading PAUSED via control")
                                     for t in bot_api.to(ALLOWED)), "the pause notified")

        await bot_api.say(STRANGER, "/resume")
        await bot_api.say(ALLOWED, "/positions")
        await eventually(lambda: "No open positions." in bot_api.to(ALLOWED), "positions")
        assert pause.paused  # the stranger's /resume did nothing
        await bot_api.say(ALLOWED, "/resume")
        await eventually(lambda: not pause.paused, "resumed")
        await eventually(lambda: "Trading RESUMED." in bot_api.to(ALLOWED), "resume answered")
        assert bot_api.to(STRANGER) == []
        assert runner.service.status()["telegram"]["refused"] == 2
    finally:
        await stop(task)
    assert TOKEN not in caplog.text


async def test_an_outage_is_counted_never_delays_a_decision_and_notifications_follow(
        bot_api: FakeBotApi, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    runner = bot_runner(bot_api.url, monkeypatch)
    telegram = runner.telegram
    assert telegram is not None
    task = await started(runner)
    try:
        await eventually(lambda: telegram.health().ok is True, "polling")
        bot_api.mode = "stalled"
        started_at = time.perf_counter()
        runner.engine.pause("a stalled Telegram must not hold this", PausedBy.OPERATOR,
                            time.time())
        for i in range(500):  # a burst of fills: the queue keeps its bound
            runner.thoughts.add(time.time(), "entry", f"BUY #{i}", "ETH/BTC")
        assert time.perf_counter() - started_at < 0.5
        await eventually(lambda: telegram.health().ok is False, "the stall noticed")
        assert "did not answer" in str(telegram.health().last_error)
        bot_api.mode = "down"
        await asyncio.sleep(0)  # (the stalled requests time out on their own)
        await eventually(lambda: "502" in str(telegram.health().last_error), "502 seen")
        health = telegram.health()
        assert health.outages == 1 and health.notifications_dropped > 0
        bot_api.mode = "ok"
        await eventually(lambda: bool(bot_api.to(ALLOWED)), "notifications delivered")
        assert telegram.health().ok is True
        assert runner.service.status()["telegram"]["outages"] == 1
    finally:
        await stop(task)
    assert TOKEN not in caplog.text


async def test_a_wrong_token_is_named_without_showing_it(
        bot_api: FakeBotApi, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    wrong = "999:WRONG-secret-token"
    runner = bot_runner(bot_api.url, monkeypatch, token=wrong)
    task = await started(runner)
    try:
        assert runner.telegram is not None
        await eventually(lambda: runner.telegram is not None
                         and runner.telegram.health().ok is False, "refused")
        assert "refused the token (401 Unauthorized) — check TELEGRAM_BOT_TOKEN" in caplog.text
    finally:
        await stop(task)
    assert wrong not in caplog.text
