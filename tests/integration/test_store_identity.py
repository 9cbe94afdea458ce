"""Bots sharing one database: each store reads and writes only its own bot's rows, rows from
before the identity column belong to 'default', and the marks of open positions are saved
with the checkpoint."""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import AsyncIterator

import asyncpg
import pytest

from novapulse.models import OrderKind, Side, Thought, TradeStatus
from novapulse.store import ForeignRowError, MetricRow, Store
from novapulse.store.migrate import apply_migrations, load_migrations
from support.store_rows import T0, make_order, make_trade


@pytest.fixture
async def two_bots(pg_dsn: str) -> AsyncIterator[tuple[Store, Store]]:
    first = await Store.connect(pg_dsn, identity="acct-1", lock_timeout_s=5.0)
    second = await Store.connect(pg_dsn, identity="acct-2", lock_timeout_s=5.0)
    await first.migrate()
    try:
        yield first, second
    finally:
        await first.close()
        await second.close()


async def test_a_store_sees_only_its_own_bots_rows(two_bots: tuple[Store, Store]) -> None:
    first, second = two_bots
    trade = make_trade("acct-1:ETHXBT-1")
    await first.record_execution(trade, make_order(trade))
    await first.save_trade(make_trade("acct-1:ETHXBT-2", status=TradeStatus.ERROR))
    await first.record_thoughts([Thought(T0, "entry", "BUY ETH/XBT", "ETH/XBT")])
    await first.record_metrics([MetricRow(T0, "equity", 10_000.0)])
    await first.record_ml_features(trade.trade_id, {"rsi": 30.0}, label=1.0)
    await first.save_checkpoint({"owner": "acct-1"})

    assert await second.all_trades() == [] and await second.open_trades() == []
    assert await second.trades() == [] and await second.orders() == []
    assert await second.count_trades(TradeStatus.ERROR) == 0
    assert await second.recent_thoughts() == []
    assert await second.labelled_ml_features() == []
    assert await second.load_checkpoint() is None
    assert await second.prune(time.time() + 1) == {"thoughts": 0, "metrics": 0}

    await second.save_checkpoint({"owner": "acct-2"})
    assert await first.load_checkpoint() == {"owner": "acct-1"}  # not overwritten
    assert await second.load_checkpoint() == {"owner": "acct-2"}
    assert [t.trade_id for t in await first.open_trades()] == ["acct-1:ETHXBT-1"]
    assert await first.count_trades(TradeStatus.ERROR) == 1
    assert len(await first.recent_thoughts()) == 1
    assert await first.prune(time.time() + 1) == {"thoughts": 1, "metrics": 1}


async def test_a_trade_id_of_another_bot_is_refused_and_left_alone(
        two_bots: tuple[Store, Store]) -> None:
    first, second = two_bots
    trade = make_trade("shared-id")
    await first.record_execution(trade, make_order(trade))
    taken = dataclasses.replace(trade, quantity=99.0)
    with pytest.raises(ForeignRowError, match="belongs to another bot"):
        await second.record_execution(taken, make_order(taken, client_order_id="other"))
    await first.record_ml_features(trade.trade_id, {"rsi": 30.0}, label=1.0)
    with pytest.raises(ForeignRowError):
        await second.record_ml_features(trade.trade_id, {"rsi": 1.0}, label=0.0)
    assert await first.open_trades() == [trade]
    assert await first.labelled_ml_features() == [(trade.trade_id, {"rsi": 30.0}, 1.0)]
    assert await second.orders() == []


async def test_rows_from_before_the_migration_belong_to_default(pg_dsn: str) -> None:
    conn = await asyncpg.connect(pg_dsn)
    try:
        await apply_migrations(conn, load_migrations()[:1])  # a database of the old schema
        await conn.execute(
            "INSERT INTO trades (trade_id, pair, side, status, strategy, mode, entry_price, "
            "quantity, stop_loss, take_profit, created_at) VALUES ('ETHXBT-1', 'ETH/XBT', "
            "'buy', 'open', 'trend', 'paper', 0.05, 1, 0.049, 0.052, now())")
        await conn.execute(
            "INSERT INTO orders (client_order_id, trade_id, pair, side, kind, quantity, price, "
            "status, created_at) VALUES ('np-ETHXBT-1-entry', 'ETHXBT-1', 'ETH/XBT', 'buy', "
            "'entry', 1, 0.05, 'filled', now())")
        await conn.execute("INSERT INTO thoughts (ts, kind, message) VALUES (now(), 'entry', 'x')")
        await conn.execute("INSERT INTO checkpoints (name, data) VALUES ('engine', $1)",
                           json.dumps({"old": True}))
    finally:
        await conn.close()
    default = await Store.connect(pg_dsn, identity="default")
    other = await Store.connect(pg_dsn, identity="acct-2")
    try:
        assert await default.migrate() == ["0002_bot_identity"]
        assert [t.trade_id for t in await default.open_trades()] == ["ETHXBT-1"]
        assert [o.client_order_id for o in await default.orders()] == ["np-ETHXBT-1-entry"]
        assert len(await default.recent_thoughts()) == 1
        assert await default.load_checkpoint() == {"old": True}
        assert await other.open_trades() == [] and await other.load_checkpoint() is None
    finally:
        await default.close()
        await other.close()


async def test_open_positions_marks_are_saved_with_the_checkpoint(
        two_bots: tuple[Store, Store]) -> None:
    store, _ = two_bots
    trade = make_trade("acct-1:ETHXBT-1", highest_price=0.0525, lowest_price=0.0525)
    await store.record_execution(trade, make_order(trade))
    closed = make_trade("acct-1:ETHXBT-0", status=TradeStatus.CLOSED, exit_price=0.05,
                        exit_time=T0 + 1, pnl=-0.001, trailing_stop=None)
    await store.save_trade(closed)
    moved = dataclasses.replace(trade, trailing_stop=0.0533, highest_price=0.0541,
                                lowest_price=0.0519)
    stale = dataclasses.replace(closed, trailing_stop=0.06)  # a stale copy of a closed trade
    await store.save_checkpoint({"n": 1}, open_positions=[moved, stale])
    assert await store.open_trades() == [moved]
    [after] = await store.trades(status="closed")
    assert after.trailing_stop is None  # only open positions are touched
    exit_order = make_order(moved, OrderKind.EXIT, side=Side.SELL)
    assert await store.record_execution(dataclasses.replace(moved, status=TradeStatus.CLOSED),
                                        exit_order)


async def test_retention_counts_from_when_a_row_was_recorded_not_its_market_time(
        two_bots: tuple[Store, Store], pg_dsn: str) -> None:
    store, _ = two_bots
    replayed = Thought(T0 - 5 * 365 * 86_400, "entry", "decided on a candle of years ago")
    await store.record_thoughts([replayed])
    await store.record_metrics([MetricRow(T0, "equity", 1.0)])
    assert await store.prune(time.time() - 3600) == {"thoughts": 0, "metrics": 0}
    assert await store.recent_thoughts() == [replayed]
    conn = await asyncpg.connect(pg_dsn)
    try:
        await conn.execute("UPDATE thoughts SET recorded_at = now() - interval '2 hours'")
    finally:
        await conn.close()
    assert await store.prune(time.time() - 3600) == {"thoughts": 1, "metrics": 0}
