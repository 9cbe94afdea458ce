"""The real bot process on the replay feed over a real socket, storing in real PostgreSQL.

Covers: trades land with every field; `kill -9` mid-run and restart loses and duplicates
nothing and restores open positions; a second bot on the same identity refuses to start, one
of another identity on the same database keeps to its own rows; the circuit breaker pauses
trading when the feed stays down; retention prunes thoughts and metrics; a position left open
by a bot that went down has its stops judged on the candles it missed."""

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

from novapulse.engine import trade_id_for
from novapulse.market.candle_files import load_candles
from novapulse.market.replay_server import ReplayServer
from novapulse.models import Order, OrderKind, OrderStatus, Side, Thought, Trade, TradeStatus
from novapulse.order_ids import client_order_id_for
from novapulse.store import MetricRow, Store
from support.bot_env import bot_environment, free_port
from support.store_rows import make_order, make_trade

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


async def _has_more(dsn: str, count: int, identity: str | None = None) -> bool:
    rows = await trades(dsn)
    return len([r for r in rows if identity in (None, r["bot_identity"])]) >= count


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
    finally:
        assert await stop_bot(first) == 0, first.log()[-3000:]


async def test_another_identity_on_the_same_database_keeps_to_its_own_rows(
        replay: ReplayServer, pg_dsn: str, tmp_path: Path) -> None:
    env = bot_env(pg_dsn)
    first = await start_bot(replay.url, tmp_path / "a", env, "first")
    try:
        await eventually(lambda: _has_open(pg_dsn, "default"), 60, "an open position", first)
        other = await start_bot(replay.url, tmp_path / "c",
                                {**env, "NOVAPULSE__INSTANCE__IDENTITY": "acct-2"}, "acct-2")
        try:
            # Another account's bot gets its own lock and runs beside the first.
            await eventually(lambda: _async("holding the database instance lock for identity "
                                            "'acct-2'" in other.log()),
                             30, "the other identity holding its own lock", other)
            await eventually(lambda: _has_checkpoint(pg_dsn, "acct-2"), 30,
                             "the other identity's checkpoint", other)
            await eventually(lambda: _has_more(pg_dsn, 1, "acct-2"), 60,
                             "a trade of the other identity", other)
        finally:
            assert await stop_bot(other) == 0, other.log()[-3000:]
        assert "restored" not in other.log(), "it took over the first bot's positions"
    finally:
        assert await stop_bot(first) == 0, first.log()[-3000:]
    checkpoints = await fetch(pg_dsn, "SELECT bot_identity, name FROM checkpoints")
    assert sorted((c["bot_identity"], c["name"]) for c in checkpoints) == [
        ("acct-2", "engine"), ("default", "engine")]
    rows = await trades(pg_dsn)
    for row in rows:
        assert row["trade_id"].startswith(f"{row['bot_identity']}:"), row["trade_id"]
    orders = await fetch(pg_dsn, "SELECT o.bot_identity AS o, t.bot_identity AS t FROM orders o "
                                 "JOIN trades t USING (trade_id)")
    assert all(o["o"] == o["t"] for o in orders)
    thoughts = await fetch(pg_dsn, "SELECT DISTINCT bot_identity FROM thoughts")
    assert {t["bot_identity"] for t in thoughts} == {"default", "acct-2"}


async def _has_open(dsn: str, identity: str) -> bool:
    return any(r["status"] == "open" and r["bot_identity"] == identity
               for r in await trades(dsn))


async def _has_checkpoint(dsn: str, identity: str) -> bool:
    try:
        rows = await fetch(dsn, "SELECT bot_identity FROM checkpoints")
    except asyncpg.UndefinedTableError:
        return False
    return any(r["bot_identity"] == identity for r in rows)


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


async def test_retention_prunes_old_thoughts_and_metrics_never_trades(
        replay: ReplayServer, pg_dsn: str, tmp_path: Path) -> None:
    now = time.time()
    store = await Store.connect(pg_dsn, identity="default")
    other = await Store.connect(pg_dsn, identity="acct-2")
    try:
        await store.migrate()
        await store.record_thoughts([Thought(now, "entry", "old thought"),
                                     Thought(now, "entry", "recent thought")])
        await store.record_metrics([MetricRow(now, "equity", 1.0), MetricRow(now, "equity", 2.0)])
        await other.record_thoughts([Thought(now, "entry", "another bot's thought")])
        old = make_trade("default:ETHBTC-1", status=TradeStatus.CLOSED, entry_time=now - 7200,
                         exit_time=now - 6900, exit_price=0.05, pnl=-0.001)
        await store.record_execution(old, make_order(old))
    finally:
        await store.close()
        await other.close()
    conn = await asyncpg.connect(pg_dsn)
    try:  # written two hours ago
        await conn.execute("UPDATE thoughts SET recorded_at = now() - interval '2 hours' "
                           "WHERE message <> 'recent thought'")
        await conn.execute("UPDATE metrics SET recorded_at = now() - interval '2 hours' "
                           "WHERE value = 1.0")
    finally:
        await conn.close()
    bot = await start_bot(replay.url, tmp_path / "data", bot_env(
        pg_dsn, NOVAPULSE__MONITORING__METRICS_RETENTION_HOURS="1"), "retention")

    async def pruned() -> bool:
        rows = await fetch(pg_dsn, "SELECT message FROM thoughts WHERE message = 'old thought'")
        return not rows

    try:
        await eventually(pruned, 30, "old thoughts pruned", bot)
    finally:
        assert await stop_bot(bot) == 0, bot.log()[-3000:]
    messages = {r["message"] for r in await fetch(pg_dsn, "SELECT message FROM thoughts")}
    assert {"recent thought", "another bot's thought"} <= messages
    assert [r["value"] for r in await fetch(pg_dsn, "SELECT value FROM metrics")] == [2.0]
    assert "default:ETHBTC-1" in {r["trade_id"] for r in await trades(pg_dsn)}
    assert len(await fetch(pg_dsn, "SELECT 1 FROM orders WHERE trade_id = 'default:ETHBTC-1'"))
    assert "retention: deleted 1 thought(s) and 1 metric row(s) older than 1h" in bot.log()


# --- a position left open by a bot that went down, and the market moved meanwhile ----------
NOW_INDEX = 600  # where the slow replay stands: the bot missed every candle up to here
ETH = load_candles(SAMPLES / "ETH_BTC-5m.csv.gz")
SLOW_ENV = {"NOVAPULSE__TRADING__PAIRS": "[ETH/BTC]", "NOVAPULSE__TRADING__SLIPPAGE_BPS": "0"}


@pytest.fixture
async def slow_replay() -> AsyncIterator[ReplayServer]:
    """Stands still for the test (a candle every 5 minutes), its snapshot the candles missed."""
    server = ReplayServer([(SAMPLES / "ETH_BTC-5m.csv.gz", None)], speed=1.0,
                          start_index=NOW_INDEX, snapshot_size=300, heartbeat_interval=0.5)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


async def seed_position_left_open(dsn: str, entry_index: int, stop_loss: float,
                                  take_profit: float) -> str:
    """What a bot that entered on candle `entry_index` and then died leaves in the store."""
    entry = ETH[entry_index]
    trade_id = trade_id_for("default", "ETH/BTC", entry.ts)
    trade = Trade(trade_id=trade_id, pair="ETH/BTC", side=Side.BUY, entry_price=entry.close,
                  quantity=1.0, entry_time=float(entry.close_ts), strategy="trend",
                  stop_loss=stop_loss, take_profit=take_profit, highest_price=entry.close,
                  lowest_price=entry.close)
    order = Order(client_order_id_for(trade_id, OrderKind.ENTRY), trade_id, "ETH/BTC", Side.BUY,
                  OrderKind.ENTRY, 1.0, entry.close, OrderStatus.FILLED, trade.entry_time)
    store = await Store.connect(dsn, identity="default")
    try:
        await store.migrate()
        await store.record_execution(trade, order)
        await store.save_checkpoint({"last_candle_ts": {"ETH/BTC": entry.ts}})
    finally:
        await store.close()
    return trade_id


async def trade_row(dsn: str, trade_id: str) -> dict[str, Any]:
    [row] = await fetch(dsn, f"SELECT * FROM trades WHERE trade_id = '{trade_id}'")
    return row


async def test_a_stop_crossed_while_down_exits_at_the_stop_on_restart(
        slow_replay: ReplayServer, pg_dsn: str, tmp_path: Path) -> None:
    # A stop just above the lowest low of the 30 candles after entry: crossed while down.
    entry_index = next(i for i in range(NOW_INDEX - 250, NOW_INDEX - 40)
                       if min(c.low for c in ETH[i + 1:i + 31]) < ETH[i].close * 0.995)
    stop = min(c.low for c in ETH[entry_index + 1:entry_index + 31]) * 1.0001
    crossing = next(c for c in ETH[entry_index + 1:] if c.low <= stop)
    trade_id = await seed_position_left_open(pg_dsn, entry_index, stop, ETH[entry_index].close * 10)
    bot = await start_bot(slow_replay.url, tmp_path / "data", bot_env(
        pg_dsn, NOVAPULSE__RISK__TRAILING_STOP_PCT="0", **SLOW_ENV), "restart")
    try:
        await eventually(lambda: _closed(pg_dsn, trade_id), 60, "the stop honoured", bot)
        await eventually(lambda: _thought_about(pg_dsn, trade_id), 10, "its thought", bot)
    finally:
        assert await stop_bot(bot) == 0, bot.log()[-3000:]
    row = await trade_row(pg_dsn, trade_id)
    assert row["exit_price"] == pytest.approx(min(stop, crossing.open), rel=1e-12)
    assert row["exit_time"].timestamp() == crossing.close_ts
    assert "stop loss crossed while the bot was down" in row["notes"]
    [thought] = await _thought_about(pg_dsn, trade_id)
    assert "stop loss crossed while the bot was down" in thought["message"]


async def test_trailing_stop_moved_by_missed_candles_is_stored_while_open(
        slow_replay: ReplayServer, pg_dsn: str, tmp_path: Path) -> None:
    trail_pct = 3.0  # wide enough for the sample data to trail a while without exiting

    def trail_after(entry_index: int) -> tuple[float, float] | None:
        """(highest, trailing stop) after the candles up to the live one, judging each candle
        on the stop in force at its open; None unless the trail is active and never hit."""
        entry = ETH[entry_index].close
        highest, trail = entry, None
        for candle in ETH[entry_index + 1:NOW_INDEX]:
            if trail is not None and candle.low <= trail:
                return None
            highest = max(highest, candle.high)
            if highest >= entry * (1 + trail_pct / 100):
                trail = highest * (1 - trail_pct / 100)
        live = ETH[NOW_INDEX - 1]  # decided live: must neither move nor hit the trail
        if trail is None or live.high >= highest or live.low <= trail:
            return None
        return highest, trail

    entry_index = next((i for i in range(NOW_INDEX - 250, NOW_INDEX - 20) if trail_after(i)),
                       None)
    assert entry_index is not None, "no stretch of the sample data trails without exiting"
    expected = trail_after(entry_index)
    assert expected is not None
    trade_id = await seed_position_left_open(pg_dsn, entry_index, ETH[entry_index].close * 0.5,
                                             ETH[entry_index].close * 10)
    bot = await start_bot(slow_replay.url, tmp_path / "data", bot_env(
        pg_dsn, NOVAPULSE__RISK__TRAILING_STOP_PCT=str(trail_pct), **SLOW_ENV), "trailing")

    async def marks_stored() -> bool:
        row = await trade_row(pg_dsn, trade_id)
        return row["trailing_stop"] is not None and row["highest_price"] == expected[0]

    try:
        await eventually(marks_stored, 60, "the moved trailing stop in the store", bot)
    finally:
        assert await stop_bot(bot) == 0, bot.log()[-3000:]
    row = await trade_row(pg_dsn, trade_id)
    assert row["status"] == "open"
    assert row["trailing_stop"] == pytest.approx(expected[1], rel=1e-12)


async def _closed(dsn: str, trade_id: str) -> bool:
    return (await trade_row(dsn, trade_id))["status"] == "closed"


async def _thought_about(dsn: str, trade_id: str) -> list[dict[str, Any]]:
    return await fetch(dsn, "SELECT message FROM thoughts WHERE kind = 'exit' AND "
                            f"data->>'trade_id' = '{trade_id}'")
