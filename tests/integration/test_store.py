"""The store against a real PostgreSQL (one embedded server per session, a database per test)."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import urllib.parse
from collections.abc import AsyncIterator

import asyncpg
import pytest

from novapulse.models import OrderKind, Side, Thought, TradeStatus
from novapulse.store import LOCK_TIMEOUT_MESSAGE, MetricRow, MigrationError, Store, StoreTimeout
from novapulse.store.embedded import EmbeddedPostgres
from novapulse.store.migrate import Migration, apply_migrations, load_migrations
from support.store_rows import T0, make_order, make_trade

ME = "acct-1"  # the bot these stores read and write for


@pytest.fixture
async def store(pg_dsn: str) -> AsyncIterator[Store]:
    store = await Store.connect(pg_dsn, identity=ME, lock_timeout_s=5.0,
                                lock_check_interval_s=0.2)
    await store.migrate()
    yield store
    await store.close()


async def test_migrations_are_versioned_and_idempotent(pg_dsn: str) -> None:
    store = await Store.connect(pg_dsn, identity=ME)
    try:
        assert await store.migrate() == ["0001_initial", "0002_bot_identity"]
        assert await store.migrate() == []
        conn = await asyncpg.connect(pg_dsn)
        rows = await conn.fetch(
            "SELECT version, name, checksum FROM schema_migrations ORDER BY version")
        await conn.close()
        assert [(r["version"], r["name"]) for r in rows] == [("0001", "initial"),
                                                             ("0002", "bot_identity")]
        assert [r["checksum"] for r in rows] == [m.checksum for m in load_migrations()]
    finally:
        await store.close()


async def test_concurrent_migrations_apply_once(pg_dsn: str) -> None:
    stores = [await Store.connect(pg_dsn, identity=ME) for _ in range(3)]
    try:
        results = await asyncio.gather(*(s.migrate() for s in stores))
    finally:
        for s in stores:
            await s.close()
    assert sorted(results) == [[], [], ["0001_initial", "0002_bot_identity"]]


async def test_edited_applied_migration_is_refused(pg_dsn: str) -> None:
    conn = await asyncpg.connect(pg_dsn)
    try:
        first = Migration("0001", "x", "CREATE TABLE x (a int)")
        assert await apply_migrations(conn, [first]) == ["0001_x"]
        edited = Migration("0001", "x", "CREATE TABLE x (a bigint)")
        with pytest.raises(MigrationError, match="changed after it was applied"):
            await apply_migrations(conn, [edited])
        later = Migration("0002", "y", "ALTER TABLE x ADD COLUMN b int")
        assert await apply_migrations(conn, [first, later]) == ["0002_y"]
    finally:
        await conn.close()


async def test_record_execution_twice_is_one_trade_one_order(store: Store) -> None:
    trade = make_trade()
    order = make_order(trade)
    assert await store.record_execution(trade, order) is True
    assert await store.record_execution(trade, order) is False
    assert [t.trade_id for t in await store.trades()] == ["t-1"]
    assert await store.orders() == [order]


async def test_replayed_entry_does_not_roll_back_a_closed_trade(store: Store) -> None:
    trade = make_trade()
    entry = make_order(trade)
    await store.record_execution(trade, entry)
    closed = dataclasses.replace(trade, status=TradeStatus.CLOSED, exit_price=0.055,
                                 exit_time=T0 + 600, pnl=0.0037)
    exit_order = make_order(closed, OrderKind.EXIT, side=Side.SELL, price=0.055,
                            created_at=T0 + 600)
    assert await store.record_execution(closed, exit_order)
    assert not await store.record_execution(trade, entry)  # the replay after a crash
    [stored] = await store.trades()
    assert stored.status is TradeStatus.CLOSED
    assert [o.kind for o in await store.orders("t-1")] == [OrderKind.ENTRY, OrderKind.EXIT]
    assert await store.open_trades() == []


async def test_open_trades_restore_every_field(store: Store) -> None:
    trade = make_trade(
        "t-full", side=Side.SELL, entry_fee=0.0002, trailing_stop=0.0519,
        highest_price=0.0531, lowest_price=0.0517, notes="entry by ensemble 3/5",
        mode="canary", extra={"confidence": 0.71, "atr": 0.0004},
    )
    await store.save_trade(trade)
    await store.save_trade(make_trade("t-closed", status=TradeStatus.CLOSED, exit_price=0.05,
                                      exit_time=T0 + 1.5, exit_fee=0.0001, pnl=-0.003))
    assert await store.open_trades() == [trade]
    assert {t.trade_id for t in await store.all_trades()} == {"t-full", "t-closed"}
    [closed] = await store.trades(status="closed")
    assert closed.exit_time == T0 + 1.5 and closed.pnl == -0.003


async def test_error_trades_newest_first(store: Store) -> None:
    for i in range(3):
        await store.save_trade(make_trade(f"e-{i}", status=TradeStatus.ERROR,
                                          entry_time=T0 + i, notes="exit failed 3 times"))
    await store.save_trade(make_trade("ok"))
    assert [t.trade_id for t in await store.error_trades()] == ["e-2", "e-1", "e-0"]


async def test_thoughts_batch(store: Store) -> None:
    thoughts = [Thought(ts=T0 + i, kind="block", message=f"gate {i}",
                        pair="ETH/XBT" if i % 2 else None, data={"i": i, "ok": i % 3 == 0})
                for i in range(500)]
    await store.record_thoughts(thoughts)
    await store.record_thoughts([])
    recent = await store.recent_thoughts(3)
    assert recent == thoughts[:-4:-1]


async def test_metrics_features_checkpoint_ping(store: Store) -> None:
    assert await store.ping()
    await store.record_metrics([MetricRow(T0, "equity", 10_000.0, {"mode": "paper"}),
                                (T0 + 60, "equity", 10_010.0, {})])
    await store.record_ml_features("t-1", {"rsi": 31.5})
    await store.record_ml_features("t-2", {"rsi": 70.0}, label=0.0)
    await store.record_ml_features("t-1", {"rsi": 31.5}, label=1.0)
    await store.record_ml_features("t-1", {"rsi": 31.5})  # keeps the label
    assert await store.labelled_ml_features() == [("t-1", {"rsi": 31.5}, 1.0),
                                                  ("t-2", {"rsi": 70.0}, 0.0)]
    assert await store.load_checkpoint() is None
    await store.save_checkpoint({"risk": {"peak": 1.0}, "last": [1, 2]})
    assert await store.load_checkpoint() == {"risk": {"peak": 1.0}, "last": [1, 2]}


async def test_lock_wait_past_timeout_raises_store_timeout(
        pg_dsn: str, caplog: pytest.LogCaptureFixture) -> None:
    store = await Store.connect(pg_dsn, identity=ME, lock_timeout_s=0.3)
    await store.migrate()
    blocker = await asyncpg.connect(pg_dsn)
    try:
        tx = blocker.transaction()
        await tx.start()
        await blocker.execute("LOCK TABLE trades IN ACCESS EXCLUSIVE MODE")
        with caplog.at_level(logging.ERROR, "novapulse.store"), \
                pytest.raises(StoreTimeout) as caught:
            await store.save_trade(make_trade())
        assert str(caught.value).startswith(LOCK_TIMEOUT_MESSAGE)
        assert LOCK_TIMEOUT_MESSAGE in caplog.text
        await tx.rollback()
        await store.save_trade(make_trade())  # the pool recovered
    finally:
        await blocker.close()
        await store.close()


async def test_ping_recovers_from_killed_connections_and_fails_softly(
        pg_dsn: str, embedded_pg: EmbeddedPostgres) -> None:
    store = await Store.connect(pg_dsn, identity=ME, lock_timeout_s=1.0, min_size=1,
                                max_size=1)
    admin = await asyncpg.connect(embedded_pg.dsn)
    kill_all = ("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = $1 AND pid <> pg_backend_pid()")
    database = urllib.parse.urlsplit(pg_dsn).path.lstrip("/")
    try:
        assert await store.ping()
        assert await admin.fetchval(kill_all, database) == 1
        await asyncio.sleep(0.1)
        assert await store.ping()  # the pool replaced the dead connection
        await admin.execute(f'DROP DATABASE "{database}" WITH (FORCE)')
        assert await store.ping() is False
    finally:
        await admin.close()
        await store.close()


async def test_instance_lock_is_exclusive_per_identity(pg_dsn: str) -> None:
    first = await Store.connect(pg_dsn, identity="acct-1")
    second = await Store.connect(pg_dsn, identity="acct-2")
    try:
        assert await first.acquire_instance_lock("acct-1")
        assert await first.acquire_instance_lock("acct-1")  # idempotent for the holder
        assert not await second.acquire_instance_lock("acct-1")
        assert await second.acquire_instance_lock("acct-2")
        await second.release_instance_lock()
        await first.release_instance_lock()
        assert await second.acquire_instance_lock("acct-1")
        assert not second.instance_lock_lost.is_set()
    finally:
        await first.close()
        await second.close()


async def test_killed_lock_connection_sets_lock_lost(pg_dsn: str) -> None:
    reasons: list[str] = []
    holder = await Store.connect(pg_dsn, identity="acct-1", lock_check_interval_s=0.2)
    other = await Store.connect(pg_dsn, identity="acct-1")
    admin = await asyncpg.connect(pg_dsn)
    try:
        assert await holder.acquire_instance_lock("acct-1", on_lost=reasons.append)
        killed = await admin.fetchval(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE application_name = 'novapulse-instance-lock:acct-1'")
        assert killed == 1
        await asyncio.wait_for(holder.instance_lock_lost.wait(), 5.0)
        assert len(reasons) == 1
        assert not holder.holds_instance_lock
        assert await other.acquire_instance_lock("acct-1")  # the lock went with the session
    finally:
        await admin.close()
        await holder.close()
        await other.close()
