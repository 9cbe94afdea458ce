"""The real bot process on the replay feed over a real socket, storing in real PostgreSQL.

Covers: trades land with every field; `kill -9` mid-run and restart loses and duplicates
nothing and restores open positions; a second bot on the same identity refuses to start; the
circuit breaker pauses trading when the feed stays down."""

from __future__ import annotations

import asyncio
import itertools
import signal
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from novapulse.market.replay_server import ReplayServer
from support.bot_env import bot_environment, free_port

SAMPLES = Path(__file__).resolve().parents[2] / "data" / "sample"
FILES = ["ETH_BTC-5m.csv.gz", "LTC_BTC-5m.csv.gz", "XLM_BTC-5m.csv.gz", "ADA_BTC-5m.csv.gz"]
PAIRS = "[ETH/BTC, LTC/BTC, XLM/BTC, ADA/BTC]"
SPEED = 15_000.0  # a 5-minute candle every 20 ms


def bot_env(dsn: str, **extra: str) -> dict[str, str]:
    return bot_environment(dsn, PAIRS, **{
        "NOVAPULSE__RISK__STOP_LOSS_PCT": "0.8",
        "NOVAPULSE__RISK__TAKE_PROFIT_PCT": "0.8",
        "NOVAPULSE__RISK__STALE_DATA_SECONDS": "60",
        "NOVAPULSE__FEED__RECONNECT_INITIAL_SECONDS": "0.1",
        "NOVAPULSE__FEED__RECONNECT_MAX_SECONDS": "0.5",
        **extra,
    })


class BotProcess:
    def __init__(self, proc: asyncio.subprocess.Process, log_path: Path) -> None:
        self.proc = proc
        self.log_path = log_path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    async def wait(self, within_s: float = 30.0) -> int:
        return await asyncio.wait_for(self.proc.wait(), within_s)


async def start_bot(url: str, data_dir: Path, env: dict[str, str], name: str) -> BotProcess:
    log_path = data_dir.parent / f"{name}.log"
    handle = log_path.open("ab")
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "novapulse.cli", "run", "--mode", "paper", "--feed", url,
        "--data-dir", str(data_dir), "--port", str(free_port()), env=env, stdout=handle,
        stderr=handle,
    )
    handle.close()
    return BotProcess(proc, log_path)


async def eventually(predicate: Callable[[], Awaitable[bool]], within_s: float,
                     what: str, bot: BotProcess | None = None) -> None:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        if await predicate():
            return
        if bot is not None and bot.proc.returncode is not None:
            break
        await asyncio.sleep(0.1)
    detail = f"\n--- bot log ---\n{bot.log()[-4000:]}" if bot else ""
    raise AssertionError(f"timed out waiting for {what}{detail}")


@pytest.fixture
async def replay() -> AsyncIterator[ReplayServer]:
    server = ReplayServer([(SAMPLES / f, None) for f in FILES], speed=SPEED, start_index=300,
                          snapshot_size=300, heartbeat_interval=0.5)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


async def fetch(dsn: str, sql: str) -> list[dict[str, Any]]:
    conn = await asyncpg.connect(dsn)
    try:
        return [dict(r) for r in await conn.fetch(sql)]
    finally:
        await conn.close()


async def trades(dsn: str) -> list[dict[str, Any]]:
    try:
        return await fetch(dsn, "SELECT * FROM trades ORDER BY created_at, trade_id")
    except asyncpg.UndefinedTableError:
        return []


async def stop_bot(bot: BotProcess) -> int:
    if bot.proc.returncode is None:
        bot.proc.send_signal(signal.SIGTERM)
    return await bot.wait()


async def test_kill_9_loses_nothing_and_duplicates_nothing(
        replay: ReplayServer, pg_dsn: str, tmp_path: Path) -> None:
    env = bot_env(pg_dsn)
    data_dir = tmp_path / "data"
    bot = await start_bot(replay.url, data_dir, env, "first")

    async def open_and_closed() -> bool:
        rows = await trades(pg_dsn)
        return any(r["status"] == "open" for r in rows) and sum(
            r["status"] == "closed" for r in rows) >= 3

    await eventually(open_and_closed, 60, "open and closed trades", bot)
    bot.proc.kill()  # kill -9: no chance to flush or clean up
    assert await bot.wait() == -signal.SIGKILL
    before = {r["trade_id"]: r for r in await trades(pg_dsn)}
    orders_before = await fetch(pg_dsn, "SELECT client_order_id FROM orders")
    open_before = {tid for tid, r in before.items() if r["status"] == "open"}

    restarted = await start_bot(replay.url, data_dir, env, "second")
    try:
        await eventually(lambda: _has_more(pg_dsn, len(before) + 3), 60,
                         "new trades after restart", restarted)
        await eventually(lambda: _async(f"restored {len(open_before)} open position(s)"
                                        in restarted.log()), 10, "restore message", restarted)
    finally:
        assert await stop_bot(restarted) == 0, restarted.log()[-3000:]

    after = {r["trade_id"]: r for r in await trades(pg_dsn)}
    assert set(before) <= set(after), "a trade recorded before the crash is gone"
    for trade_id, row in before.items():
        if row["status"] == "closed":
            assert after[trade_id] == row, f"closed trade {trade_id} changed after restart"
        else:
            kept = {k: v for k, v in row.items() if k not in _EXIT_FIELDS}
            assert {k: after[trade_id][k] for k in kept} == kept
    orders = await fetch(pg_dsn, "SELECT client_order_id, trade_id, kind FROM orders")
    assert {o["client_order_id"] for o in orders_before} <= {o["client_order_id"] for o in orders}
    # No duplicate: one entry order per trade, at most one exit, and positions on one pair
    # never overlap in time (a second bot or a replayed entry would overlap).
    per_trade: dict[tuple[str, str], int] = {}
    for order in orders:
        key = (order["trade_id"], order["kind"])
        per_trade[key] = per_trade.get(key, 0) + 1
    assert max(per_trade.values()) == 1
    by_pair: dict[str, list[dict[str, Any]]] = {}
    for row in after.values():
        by_pair.setdefault(row["pair"], []).append(row)
    for rows in by_pair.values():
        rows.sort(key=lambda r: r["created_at"])
        for earlier, later in itertools.pairwise(rows):
            assert earlier["exit_time"] is not None and earlier["exit_time"] <= later["created_at"]
    for row in after.values():
        if row["status"] == "closed":
            missing = [k for k in _REQUIRED_CLOSED if row[k] is None or row[k] == ""]
            assert not missing, f"trade {row['trade_id']} lacks {missing}"


_EXIT_FIELDS = {"status", "exit_price", "exit_time", "exit_fee", "pnl", "notes", "updated_at",
                "trailing_stop", "highest_price", "lowest_price"}
_REQUIRED_CLOSED = ["trade_id", "pair", "side", "status", "entry_price", "exit_price",
                    "quantity", "pnl", "notes", "created_at", "exit_time", "strategy"]


async def _has_more(dsn: str, count: int) -> bool:
    return len(await trades(dsn)) >= count


async def _async(value: bool) -> bool:
    return value


async def test_second_bot_on_the_same_identity_refuses_to_start(
        replay: ReplayServer, pg_dsn: str, tmp_path: Path) -> None:
    env = bot_env(pg_dsn)
    first = await start_bot(replay.url, tmp_path / "a", env, "first")
    try:
        # Both guards must be held before a second bot tries its luck.
        await eventually(lambda: _async("holding the database instance lock" in first.log()),
                         30, "first bot holding its locks", first)
        same_dir = await start_bot(replay.url, tmp_path / "a", env, "same-dir")
        assert await same_dir.wait() == 3
        assert "another NovaPulse instance is running" in same_dir.log()
        other_dir = await start_bot(replay.url, tmp_path / "b", env, "other-dir")
        assert await other_dir.wait() == 3
        assert "holds the database lock for identity 'default'" in other_dir.log()
        other_identity = await start_bot(replay.url, tmp_path / "c",
                                         {**env, "NOVAPULSE__INSTANCE__IDENTITY": "acct-2"},
                                         "other-identity")
        # Another account's bot gets its own lock and runs: it holds the lock, then trades on.
        await eventually(lambda: _async("holding the database instance lock for identity "
                                        "'acct-2'" in other_identity.log()),
                         30, "the other identity holding its own lock", other_identity)
        assert other_identity.proc.returncode is None, other_identity.log()[-2000:]
        assert await stop_bot(other_identity) == 0
    finally:
        await stop_bot(first)


async def test_feed_down_past_the_breaker_pauses_trading(
        replay: ReplayServer, pg_dsn: str, tmp_path: Path) -> None:
    env = bot_env(pg_dsn, NOVAPULSE__FEED__CIRCUIT_BREAKER_SECONDS="2",
                  NOVAPULSE__FEED__HEARTBEAT_TIMEOUT_SECONDS="1")
    bot = await start_bot(replay.url, tmp_path / "data", env, "breaker")
    try:
        await eventually(lambda: _has_more(pg_dsn, 1), 60, "a first trade", bot)
        replay.refuse_connections(8)
        replay.drop_connections()

        async def paused() -> bool:
            rows = await fetch(pg_dsn, "SELECT message FROM thoughts WHERE kind = 'pause'")
            return any("circuit_breaker" in r["message"] for r in rows)

        await eventually(paused, 20, "circuit-breaker pause in the thought log", bot)
        assert "WebSocket disconnected" in bot.log()
        rows = await fetch(pg_dsn, "SELECT message FROM thoughts WHERE kind = 'pause'")
        assert any("WebSocket disconnected for" in r["message"] for r in rows)
    finally:
        assert await stop_bot(bot) == 0
