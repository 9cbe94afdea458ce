"""The API served the way the bot serves it (uvicorn on its own thread, calls carried onto the
bot's loop), over a real socket, in this process: health turns 503 while the main loop is
blocked; the thought stream; metrics fed by the runner's hooks."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import AsyncIterator

import bcrypt
import httpx
import pytest

from novapulse.config import load_config
from novapulse.risk import PausedBy
from novapulse.runner import BotRunner, FeedSpec
from novapulse.secrets import DashboardSecrets

ADMIN_KEY = "admin-Zq8vN3kL1pX7rT5wB2mC9dF4"
STALL_LIMIT_S = 0.6


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
async def runner() -> AsyncIterator[BotRunner]:
    config = load_config(None, environ={}, overrides={
        "dashboard": {"host": "127.0.0.1", "port": free_port()},
        "monitoring": {"main_loop_stall_seconds": STALL_LIMIT_S},
    })
    dashboard = DashboardSecrets(admin_key=ADMIN_KEY, session_secret="s" * 40,
                                 password_hash=bcrypt.hashpw(b"pw", bcrypt.gensalt(4)))
    bot = BotRunner(config, FeedSpec("kraken"), dashboard)
    await bot.start_api()
    try:
        yield bot
    finally:
        await bot.stop_api()


def _url(bot: BotRunner, path: str) -> str:
    assert bot.api is not None
    return f"http://127.0.0.1:{bot.api.port}{path}"


def _get_from_another_thread(url: str, results: dict[str, httpx.Response],
                             delay_s: float) -> threading.Thread:
    def fetch() -> None:
        time.sleep(delay_s)
        results[url] = httpx.get(url, headers={"X-API-Key": ADMIN_KEY}, timeout=10)

    thread = threading.Thread(target=fetch)
    thread.start()
    return thread


async def test_health_is_503_while_the_main_loop_is_blocked(runner: BotRunner) -> None:
    async with httpx.AsyncClient() as client:
        assert (await client.get(_url(runner, "/api/v1/health"))).status_code == 200

    results: dict[str, httpx.Response] = {}
    health, status = _url(runner, "/api/v1/health"), _url(runner, "/api/v1/status")
    threads = [_get_from_another_thread(health, results, delay_s=STALL_LIMIT_S * 2),
               _get_from_another_thread(status, results, delay_s=STALL_LIMIT_S * 2)]
    time.sleep(STALL_LIMIT_S * 4)  # noqa: ASYNC251 -- the point: block the bot's event loop
    for thread in threads:
        await asyncio.to_thread(thread.join)

    assert results[health].status_code == 503
    assert results[health].json()["ok"] is False
    assert "main loop stalled" in results[health].json()["detail"]
    assert results[status].status_code == 503  # the loop could not take the call
    assert "did not answer" in results[status].json()["detail"]

    await asyncio.sleep(runner.heartbeat_seconds * 2)  # the loop runs again: alive again
    async with httpx.AsyncClient() as client:
        assert (await client.get(health)).status_code == 200
        assert (await client.get(status, headers={"X-API-Key": ADMIN_KEY})).status_code == 200


async def test_thought_stream_sends_each_new_thought(runner: BotRunner) -> None:
    async with httpx.AsyncClient(timeout=10) as client, client.stream(
            "GET", _url(runner, "/api/v1/thoughts/stream"),
            headers={"X-API-Key": ADMIN_KEY}) as resp:
        assert resp.status_code == 200
        assert resp.headers["content-type"].startswith("text/event-stream")
        lines = resp.aiter_lines()
        assert await anext(lines) == ": connected"
        runner.thoughts.add(1.0, "blocked", "Max positions reached", "ETH/BTC",
                            {"gate": "max_positions"})
        event = await asyncio.wait_for(_next_data(lines), 5)
        assert '"message":"Max positions reached"' in event and '"pair":"ETH/BTC"' in event
    async with httpx.AsyncClient() as client:
        refused = await client.get(_url(runner, "/api/v1/thoughts/stream"))
        assert refused.status_code == 401


async def _next_data(lines: AsyncIterator[str]) -> str:
    async for line in lines:
        if line.startswith("data: "):
            return line
    raise AssertionError("stream ended")


async def test_metrics_count_blocks_orders_and_store_errors(runner: BotRunner) -> None:
    runner.thoughts.add(1.0, "blocked", "Max positions reached", "ETH/BTC",
                        {"gate": "max_positions"})
    runner.metrics.store_error()
    runner.metrics.decision(0.002)
    await runner.service.pause("checking", by=PausedBy.MANUAL)
    async with httpx.AsyncClient() as client:
        text = (await client.get(_url(runner, "/metrics"))).text
    assert 'novapulse_gate_blocks_total{gate="max_positions"} 1.0' in text
    assert "novapulse_store_errors_total 1.0" in text
    assert "novapulse_decision_latency_seconds_count 1.0" in text
    assert "novapulse_paused 1.0" in text
    assert "novapulse_equity 10000.0" in text
    assert "novapulse_main_loop_lag_seconds" in text
    assert ADMIN_KEY not in text
