"""The real bot process in live mode against the Kraken REST emulator: every order the bot
meant, exactly once on the exchange — including a kill -9 between sending an order and
storing its answer."""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import asyncpg
import bcrypt
import httpx
import pytest

from novapulse.emulators.kraken_rest import KrakenRestEmulator
from novapulse.market.candle_files import load_candles
from novapulse.market.replay_server import ReplayServer
from support.bot_env import bot_environment, free_port
from support.bot_process import BotProcess, launch_bot

SAMPLES = Path(__file__).resolve().parents[2] / "data" / "sample"
ETH = SAMPLES / "ETH_BTC-5m.csv.gz"
CANDLES = load_candles(ETH)
START = 300
API_KEY = "Qm7Zt2Lx9Rv4Kp1Ws8Nc3Bf6Hj0Dg5AyQm7Zt2Lx9Rv4Kp1Ws8Nc3Bf6"
API_SECRET = base64.b64encode(bytes(range(7, 71))).decode()
LIVE_SECRETS = {
    "DASHBOARD_ADMIN_KEY": "admin-Zq8vN3kL1pX7rT5wB2mC9dF4",
    "DASHBOARD_SESSION_SECRET": "session-aK9xQ2mZ7vB4nL8pR3tW6yE1uI5",
    "DASHBOARD_ADMIN_PASSWORD_HASH": bcrypt.hashpw(b"a password", bcrypt.gensalt(4)).decode(),
    "KRAKEN_API_KEY": API_KEY,
    "KRAKEN_API_SECRET": API_SECRET,
}


class Market:
    """The replay feed and the emulated exchange on one clock: the exchange's price is the
    close of the candle the bot has just seen close."""

    def __init__(self, speed: float) -> None:
        self.replay = ReplayServer([(ETH, None)], speed=speed, start_index=START,
                                   snapshot_size=300, heartbeat_interval=0.5)
        self.exchange = KrakenRestEmulator(
            [(ETH, None)], now=self.market_time, api_key=API_KEY, api_secret=API_SECRET,
            balances={"BTC": Decimal(10_000)})

    def market_time(self) -> float:
        return float(CANDLES[START + self.replay.step - 1].ts)

    async def __aenter__(self) -> Market:
        await self.replay.start()
        await self.exchange.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.exchange.stop()
        await self.replay.stop()


@pytest.fixture
async def market() -> AsyncIterator[Market]:
    async with Market(speed=3_000) as m:
        yield m


class Bot(BotProcess):
    async def status(self) -> dict[str, Any] | None:
        try:
            resp = await self.api("GET", "/api/v1/status")
        except httpx.TransportError:
            return None  # not listening yet
        return dict(resp.json()) if resp.status_code == 200 else None


async def start_live_bot(market: Market, dsn: str, data_dir: Path, name: str,
                         **extra: str) -> Bot:
    env = bot_environment(dsn, "[ETH/BTC]", KRAKEN_REST_URL=market.exchange.url,
                          NOVAPULSE__DASHBOARD__HOST="127.0.0.1",
                          NOVAPULSE__RISK__STALE_DATA_SECONDS="100000",
                          **{**LIVE_SECRETS, **extra})
    return await launch_bot(["--mode", "live", "--feed", market.replay.url, "--data-dir",
                             str(data_dir)], env, data_dir.parent / f"{name}.log", free_port(),
                            LIVE_SECRETS["DASHBOARD_ADMIN_KEY"], Bot)


async def stop(bot: Bot) -> int:
    return await bot.stop()


async def rows(dsn: str, sql: str) -> list[dict[str, Any]]:
    conn = await asyncpg.connect(dsn)
    try:
        return [dict(r) for r in await conn.fetch(sql)]
    except asyncpg.UndefinedTableError:  # the bot has not migrated its database yet
        return []
    finally:
        await conn.close()


async def eventually(check: Callable[[], Awaitable[Any]], what: str, bot: Bot,
                     within_s: float = 90.0) -> Any:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        found = await check()
        if found:
            return found
        if bot.proc.returncode is not None:
            break
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}\n--- bot log ---\n{bot.log()[-4000:]}")


def exchange_orders(market: Market) -> dict[str, Any]:
    """The bot's orders on the exchange, by client order id; fails on a duplicate id."""
    seen: dict[str, Any] = {}
    for order in market.exchange.orders():
        assert order.cl_ord_id is not None
        assert order.cl_ord_id not in seen, f"two orders for one intent: {order.cl_ord_id}"
        seen[order.cl_ord_id] = order
    return seen


async def assert_books_match_the_exchange(dsn: str, on_exchange: dict[str, Any]
                                          ) -> dict[str, dict[str, Any]]:
    """Every order on the exchange is one the bot stored, and every order the bot stored is on
    the exchange — but for an intent stored and not yet sent when the bot was stopped."""
    stored = {r["client_order_id"]: r for r in await rows(dsn, "SELECT * FROM orders")}
    assert set(on_exchange) <= set(stored)  # nothing the bot did not mean
    unsent = {cid: r["status"] for cid, r in stored.items() if cid not in on_exchange}
    assert set(unsent.values()) <= {"pending"}, unsent  # nothing lost
    return stored


async def test_a_live_bot_trades_on_the_exchange_and_its_books_match(
        market: Market, pg_dsn: str, tmp_path: Path) -> None:
    bot = await start_live_bot(market, pg_dsn, tmp_path / "data", "live")
    try:
        async def closed() -> list[dict[str, Any]]:
            return await rows(pg_dsn, "SELECT * FROM trades WHERE status = 'closed'")

        await eventually(closed, "a live trade opened and closed on the exchange", bot)
    finally:
        assert await stop(bot) == 0, bot.log()[-3000:]
    on_exchange = exchange_orders(market)
    stored = await assert_books_match_the_exchange(pg_dsn, on_exchange)
    for cid, order in on_exchange.items():
        row = stored[cid]
        assert row["status"] == "filled" and order.status == "closed"
        assert row["price"] == pytest.approx(float(order.average_price), rel=1e-9)
        assert row["quantity"] == pytest.approx(float(order.vol_exec), rel=1e-9)
        assert row["exchange_order_id"] == order.txid
    assert "paper" not in {r["mode"] for r in await rows(pg_dsn, "SELECT mode FROM trades")}


async def test_kill_9_between_sending_an_order_and_storing_its_answer_never_sends_it_twice(
        market: Market, pg_dsn: str, tmp_path: Path) -> None:
    # The exchange takes the first order and fills it, but its answer never comes back.
    market.exchange.inject_fault("AddOrder", "timeout_after_accept")
    data_dir = tmp_path / "data"
    bot = await start_live_bot(market, pg_dsn, data_dir, "first")

    async def accepted() -> bool:
        return len(market.exchange.orders()) == 1

    await eventually(accepted, "the exchange to accept the first order", bot)
    bot.proc.kill()  # kill -9 while the bot still waits for the answer
    await asyncio.wait_for(bot.proc.wait(), 30)
    (pending,) = await rows(pg_dsn, "SELECT * FROM orders")
    assert pending["status"] == "pending"  # stored before it was sent; the answer never came
    (cid,) = exchange_orders(market)
    assert cid == pending["client_order_id"]

    restarted = await start_live_bot(market, pg_dsn, data_dir, "second")
    try:
        async def settled() -> list[dict[str, Any]]:
            return await rows(pg_dsn, "SELECT * FROM orders WHERE client_order_id = "
                                      f"'{cid}' AND status = 'filled'")

        await eventually(settled, "the order found on the exchange by its client id", restarted)
    finally:
        assert await stop(restarted) == 0, restarted.log()[-3000:]
    on_exchange = exchange_orders(market)  # still one order for that intent
    assert on_exchange[cid].status == "closed"
    (trade,) = await rows(pg_dsn, f"SELECT * FROM trades WHERE trade_id = "
                                  f"'{pending['trade_id']}'")
    assert trade["status"] in ("open", "closing", "closed")
    assert trade["entry_price"] == pytest.approx(float(on_exchange[cid].average_price))
    await assert_books_match_the_exchange(pg_dsn, on_exchange)


async def test_an_exit_that_fails_three_retries_is_in_error_survives_a_restart_and_resolves(
        market: Market, pg_dsn: str, tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    quick = {"NOVAPULSE__RISK__STOP_LOSS_PCT": "0.3", "NOVAPULSE__RISK__TAKE_PROFIT_PCT": "0.3"}
    bot = await start_live_bot(market, pg_dsn, data_dir, "first", **quick)
    try:
        async def opened() -> list[dict[str, Any]]:
            return await rows(pg_dsn, "SELECT * FROM trades WHERE status = 'open'")

        (trade,) = await eventually(opened, "a position open on the exchange", bot)
        # From now on the exchange refuses every order: the exit and its three retries.
        market.exchange.inject_fault("AddOrder", "insufficient_funds", times=4)

        async def in_error() -> list[dict[str, Any]]:
            return await rows(pg_dsn, "SELECT * FROM trades WHERE status = 'error'")

        await eventually(in_error, "the trade in error after its exit retries", bot)
        status = await eventually(bot.status, "the status API", bot)
        (listed,) = status["error_trade_list"]
        assert listed["trade_id"] == trade["trade_id"] and listed["pair"] == "ETH/BTC"
        assert "InsufficientFunds" in listed["last_error"]
        assert status["error_trades"] >= 1
        assert "Exit order failed (3 retries exhausted)" in bot.log()
    finally:
        assert await stop(bot) == 0, bot.log()[-3000:]
    refused = [o for o in market.exchange.orders() if o.status == "canceled" or o.vol_exec == 0]
    assert refused == []  # refused orders never reached the book

    restarted = await start_live_bot(market, pg_dsn, data_dir, "second", **quick)
    try:
        status = await eventually(bot_with_error(restarted), "the error trade after restart",
                                  restarted)
        assert status["error_trade_list"][0]["trade_id"] == trade["trade_id"]
        resp = await restarted.api("POST", f"/api/v1/trades/{trade['trade_id']}/resolve",
                                   json={"exit_price": 0.1, "fee": 0.0001,
                                         "note": "sold by hand on the exchange"})
        assert resp.status_code == 200, resp.text
        assert resp.json()["status"] == "closed"
        assert resp.json()["exit_price"] == pytest.approx(0.1)
        (closed,) = await rows(pg_dsn, f"SELECT * FROM trades WHERE trade_id = "
                                       f"'{trade['trade_id']}'")
        assert closed["status"] == "closed" and "resolved by an admin" in closed["notes"]
        again = await restarted.api("POST", f"/api/v1/trades/{trade['trade_id']}/resolve",
                                    json={"exit_price": 0.1})
        assert again.status_code == 404
    finally:
        assert await stop(restarted) == 0, restarted.log()[-3000:]


def bot_with_error(bot: Bot) -> Callable[[], Awaitable[dict[str, Any] | None]]:
    async def check() -> dict[str, Any] | None:
        status = await bot.status()
        return status if status and status["error_trade_list"] else None
    return check


async def test_a_wrong_api_secret_stops_trading_with_a_clear_reason_not_a_crash_loop(
        market: Market, pg_dsn: str, tmp_path: Path) -> None:
    wrong = base64.b64encode(bytes(range(100, 164))).decode()
    bot = await start_live_bot(market, pg_dsn, tmp_path / "data", "wrong-secret",
                               KRAKEN_API_SECRET=wrong)
    try:
        async def paused() -> dict[str, Any] | None:
            status = await bot.status()
            return status if status and status["paused"] else None

        status = await eventually(paused, "trading paused for the refused key", bot)
        assert status["paused_by"] == "risk_rule"
        assert status["pause_reason"].startswith("Exchange authentication failed")
        assert "KRAKEN_API_KEY" in status["pause_reason"]
        assert status["exchange"]["error"].startswith("AuthenticationError")
        assert bot.proc.returncode is None  # up, and saying why it does not trade
        assert wrong not in bot.log() and API_KEY not in bot.log()
    finally:
        assert await stop(bot) == 0, bot.log()[-3000:]
    assert market.exchange.orders() == []


async def test_reconciliation_reports_orphans_and_records_a_position_sold_outside_the_bot(
        market: Market, pg_dsn: str, tmp_path: Path) -> None:
    bot = await start_live_bot(market, pg_dsn, tmp_path / "data", "reconcile",
                               NOVAPULSE__EXCHANGE__RECONCILE_INTERVAL_SECONDS="2",
                               NOVAPULSE__RISK__STOP_LOSS_PCT="20",
                               NOVAPULSE__RISK__TAKE_PROFIT_PCT="50")
    try:
        # Someone leaves a resting order of their own on the account, and later sells the
        # bot's coins by hand. The order rests from the start: a reconciliation reads open
        # orders, then balances, and the report that shows the sale's ghost (once: it is then
        # recorded closed) must not have read the open orders before the order was placed.
        # The sale comes right after the position opens, before the bot's own exit can sell.
        market.exchange.place_outside_order("ETH/BTC", "buy", Decimal("1"), ordertype="limit",
                                            price=Decimal("0.001"), cl_ord_id="hand-order-1")

        async def opened() -> list[dict[str, Any]]:
            return await rows(pg_dsn, "SELECT * FROM trades WHERE status = 'open'")

        (trade,) = await eventually(opened, "a position open on the exchange", bot)
        sale = market.exchange.place_outside_order("ETH/BTC", "sell",
                                                   Decimal(repr(trade["quantity"])))

        async def reported() -> dict[str, Any] | None:
            status = await bot.status()
            found = status and status["exchange"]["reconciliation"]
            return found if found and found["ghosts"] and found["orphans"] else None

        found = await eventually(reported, "a reconciliation with the ghost and the orphan", bot,
                                 within_s=60)
        assert found["ghosts"] == [trade["trade_id"]]
        assert found["orphans"] == ["hand-order-1"]

        async def recorded() -> list[dict[str, Any]]:
            return await rows(pg_dsn, "SELECT * FROM trades WHERE trade_id = "
                                      f"'{trade['trade_id']}' AND status = 'closed'")

        (closed,) = await eventually(recorded, "the sold position recorded as closed", bot)
        assert closed["exit_price"] == pytest.approx(float(sale.average_price), rel=1e-9)
        assert "closed outside the bot" in closed["notes"]
        log = bot.log()
        assert f"Potential ghost position: {trade['trade_id']}" in log
        assert "Potential orphan order: hand-order-1" in log
    finally:
        assert await stop(bot) == 0, bot.log()[-3000:]
