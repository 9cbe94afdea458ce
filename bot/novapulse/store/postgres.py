"""The store: trades, orders, thoughts, features and metrics in PostgreSQL via asyncpg.

A store belongs to one bot (`identity`, the config's `instance.identity`): every row it writes
carries that identity and every read is filtered by it, so bots sharing a database never see,
restore or overwrite each other's trades, checkpoint or logs.

Every call is bounded: the server enforces `statement_timeout` and `lock_timeout` and the
client caps the whole call, so a stuck database surfaces as `StoreTimeout` (runbook 7)
instead of a hung bot. The store also holds the single-instance advisory lock on a
connection of its own, outside the pool, for the life of the process.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from typing import Any, NamedTuple

import asyncpg

from novapulse.models import (
    Order,
    OrderKind,
    OrderStatus,
    Side,
    Thought,
    Trade,
    TradeStatus,
)
from novapulse.store._util import (
    advisory_key,
    from_dt,
    from_dt_opt,
    redact_dsn,
    to_dt,
    to_dt_opt,
)
from novapulse.store.migrate import apply_migrations, load_migrations

log = logging.getLogger("novapulse.store")

LOCK_TIMEOUT_MESSAGE = "Database lock acquisition timed out - possible deadlock"
# Grace on top of the server-side timeouts, so the server's own error (which leaves the
# connection clean) normally wins the race against the client-side cap.
_CLIENT_GRACE_S = 1.0
_TIMEOUT_ERRORS = (
    TimeoutError,
    asyncpg.QueryCanceledError,
    asyncpg.LockNotAvailableError,
    asyncpg.DeadlockDetectedError,
)


class StoreTimeout(Exception):
    """A query or lock wait ran past the store's timeout. The message starts with the
    runbook 7 log line, which operators grep for."""

    def __init__(self, operation: str, timeout_s: float, cause: BaseException) -> None:
        self.operation = operation
        self.timeout_s = timeout_s
        super().__init__(
            f"{LOCK_TIMEOUT_MESSAGE} ({operation}: {type(cause).__name__} "
            f"after {timeout_s:g}s limit)")


class ForeignRowError(RuntimeError):
    """A write would have changed a row that belongs to another bot (same id, other
    identity): refused, and the transaction rolled back."""


class MetricRow(NamedTuple):
    ts: float
    name: str
    value: float
    labels: Mapping[str, str] = {}


_TRADE_COLUMNS = (
    "bot_identity", "trade_id", "pair", "side", "status", "strategy", "mode", "entry_price",
    "exit_price", "quantity", "stop_loss", "take_profit", "trailing_stop", "highest_price",
    "lowest_price", "entry_fee", "exit_fee", "pnl", "notes", "extra", "created_at", "exit_time",
)
_UPSERT_TRADE = (
    f"INSERT INTO trades ({', '.join(_TRADE_COLUMNS)}) "
    f"VALUES ({', '.join(f'${i}' for i in range(1, len(_TRADE_COLUMNS) + 1))}) "
    "ON CONFLICT (trade_id) DO UPDATE SET "
    + ", ".join(f"{c} = EXCLUDED.{c}" for c in _TRADE_COLUMNS[2:])
    + ", updated_at = now() WHERE trades.bot_identity = EXCLUDED.bot_identity RETURNING true"
)
_SELECT_TRADES = f"SELECT {', '.join(_TRADE_COLUMNS)} FROM trades WHERE bot_identity = $1"
# The marks that move while a position is open, saved with every checkpoint.
_UPDATE_OPEN_MARKS = (
    "UPDATE trades SET stop_loss = $3, take_profit = $4, trailing_stop = $5, "
    "highest_price = $6, lowest_price = $7, updated_at = now() "
    "WHERE bot_identity = $1 AND trade_id = $2 AND status = 'open'"
)
_ORDER_COLUMNS = (
    "bot_identity", "client_order_id", "trade_id", "pair", "side", "kind", "quantity", "price",
    "fee", "status", "exchange_order_id", "error", "created_at",
)
_INSERT_ORDER = (
    f"INSERT INTO orders ({', '.join(_ORDER_COLUMNS)}) "
    f"VALUES ({', '.join(f'${i}' for i in range(1, len(_ORDER_COLUMNS) + 1))}) "
    "ON CONFLICT (client_order_id) DO NOTHING RETURNING true"
)
# An order's state moves forward (pending → open → filled | rejected | canceled); a final
# state is never overwritten, so a report replayed after a crash changes nothing.
_FINAL_ORDER_STATES = "('filled', 'rejected', 'canceled')"
_UPSERT_ORDER = (
    f"INSERT INTO orders ({', '.join(_ORDER_COLUMNS)}) "
    f"VALUES ({', '.join(f'${i}' for i in range(1, len(_ORDER_COLUMNS) + 1))}) "
    "ON CONFLICT (client_order_id) DO UPDATE SET quantity = EXCLUDED.quantity, "
    "price = EXCLUDED.price, fee = EXCLUDED.fee, status = EXCLUDED.status, "
    "exchange_order_id = COALESCE(EXCLUDED.exchange_order_id, orders.exchange_order_id), "
    "error = EXCLUDED.error "
    f"WHERE orders.bot_identity = EXCLUDED.bot_identity "
    f"AND orders.status NOT IN {_FINAL_ORDER_STATES} RETURNING true"
)


def _trade_args(identity: str, t: Trade) -> tuple[Any, ...]:
    return (
        identity, t.trade_id, t.pair, t.side.value, t.status.value, t.strategy, t.mode,
        t.entry_price, t.exit_price, t.quantity, t.stop_loss, t.take_profit, t.trailing_stop,
        t.highest_price, t.lowest_price, t.entry_fee, t.exit_fee, t.pnl, t.notes, dict(t.extra),
        to_dt(t.entry_time), to_dt_opt(t.exit_time),
    )


def _trade_from_row(r: Mapping[str, Any]) -> Trade:
    return Trade(
        trade_id=r["trade_id"], pair=r["pair"], side=Side(r["side"]),
        entry_price=r["entry_price"], quantity=r["quantity"],
        entry_time=from_dt(r["created_at"]), strategy=r["strategy"],
        stop_loss=r["stop_loss"], take_profit=r["take_profit"], entry_fee=r["entry_fee"],
        status=TradeStatus(r["status"]), exit_price=r["exit_price"],
        exit_time=from_dt_opt(r["exit_time"]), exit_fee=r["exit_fee"], pnl=r["pnl"],
        trailing_stop=r["trailing_stop"], highest_price=r["highest_price"],
        lowest_price=r["lowest_price"], notes=r["notes"], mode=r["mode"],
        extra=dict(r["extra"]),
    )


def _order_args(identity: str, o: Order) -> tuple[Any, ...]:
    return (
        identity, o.client_order_id, o.trade_id, o.pair, o.side.value, o.kind.value, o.quantity,
        o.price, o.fee, o.status.value, o.exchange_order_id, o.error, to_dt(o.created_at),
    )


def _order_from_row(r: Mapping[str, Any]) -> Order:
    return Order(
        client_order_id=r["client_order_id"], trade_id=r["trade_id"], pair=r["pair"],
        side=Side(r["side"]), kind=OrderKind(r["kind"]), quantity=r["quantity"],
        price=r["price"], status=OrderStatus(r["status"]),
        created_at=from_dt(r["created_at"]), fee=r["fee"],
        exchange_order_id=r["exchange_order_id"], error=r["error"],
    )


class _AlreadyRecorded(Exception):
    """Raised inside record_execution's transaction to roll the trade upsert back."""


async def _init_connection(conn: Any) -> None:
    for name in ("json", "jsonb"):
        await conn.set_type_codec(name, encoder=json.dumps, decoder=json.loads,
                                  schema="pg_catalog")


class Store:
    """Use `await Store.connect(dsn)`; the constructor is internal."""

    def __init__(self, pool: Any, dsn: str, identity: str, lock_timeout_s: float,
                 lock_check_interval_s: float) -> None:
        self._pool = pool
        self.identity = identity
        self._dsn = dsn
        self.lock_timeout_s = lock_timeout_s
        self._lock_check_interval_s = lock_check_interval_s
        self.instance_lock_lost = asyncio.Event()
        self._lock_conn: Any = None
        self._lock_identity: str | None = None
        self._lock_watch: asyncio.Task[None] | None = None
        self._lock_io = asyncio.Lock()
        self._on_lock_lost: Callable[[str], None] | None = None
        self._releasing = False

    @classmethod
    async def connect(cls, dsn: str, *, identity: str, lock_timeout_s: float = 30.0,
                      min_size: int = 1, max_size: int = 4,
                      lock_check_interval_s: float = 2.0) -> Store:
        """`identity`: the bot this store reads and writes for (`instance.identity`)."""
        if not identity:
            raise ValueError("a store needs the bot's identity (instance.identity)")
        settings = _timeout_settings(lock_timeout_s)
        settings["application_name"] = "novapulse"
        try:
            pool = await asyncpg.create_pool(
                dsn, min_size=min_size, max_size=max_size, timeout=lock_timeout_s,
                command_timeout=lock_timeout_s + _CLIENT_GRACE_S, server_settings=settings,
                init=_init_connection)
        except Exception as exc:
            log.error("cannot connect to PostgreSQL at %s: %s", redact_dsn(dsn), exc)
            raise
        log.info("connected to PostgreSQL at %s", redact_dsn(dsn))
        return cls(pool, dsn, identity, lock_timeout_s, lock_check_interval_s)

    # --- plumbing ---------------------------------------------------------------------------
    @contextlib.asynccontextmanager
    async def _conn(self, operation: str) -> AsyncIterator[Any]:
        try:
            async with asyncio.timeout(self.lock_timeout_s + _CLIENT_GRACE_S):
                async with self._pool.acquire() as conn:
                    yield conn
        except _TIMEOUT_ERRORS as exc:
            error = StoreTimeout(operation, self.lock_timeout_s, exc)
            log.error("%s", error)
            raise error from exc

    async def _fetch(self, operation: str, sql: str, *args: Any) -> list[Any]:
        async with self._conn(operation) as conn:
            rows: list[Any] = await conn.fetch(sql, *args)
            return rows

    async def migrate(self) -> list[str]:
        """Apply pending migrations; returns the ones applied (empty when up to date)."""
        async with self._conn("migrate") as conn:
            return await apply_migrations(conn, load_migrations())

    async def ping(self) -> bool:
        try:
            async with self._conn("ping") as conn:
                return bool(await conn.fetchval("SELECT true"))
        except Exception as exc:
            log.warning("database ping failed: %s", exc)
            return False

    async def close(self) -> None:
        await self.release_instance_lock()
        try:
            await asyncio.wait_for(self._pool.close(), self.lock_timeout_s)
        except TimeoutError:
            self._pool.terminate()

    # --- trades and orders ------------------------------------------------------------------
    async def record_execution(self, trade: Trade, order: Order) -> bool:
        """Upsert the trade and insert its order in one transaction. Recording the same
        `client_order_id` again changes nothing (returns False): a decision replayed after a
        crash never duplicates an order nor rolls its trade back to an older state."""
        async with self._conn("record_execution") as conn:
            try:
                async with conn.transaction():
                    await self._upsert_trade(conn, trade)
                    if not await conn.fetchval(_INSERT_ORDER, *_order_args(self.identity, order)):
                        raise _AlreadyRecorded
            except _AlreadyRecorded:
                log.info("order %s already recorded: replay ignored", order.client_order_id)
                return False
        return True

    async def commit_step(self, executions: Sequence[tuple[Trade, Order]],
                          checkpoint: Mapping[str, Any], open_positions: Sequence[Trade] = (),
                          name: str = "engine") -> int:
        """Everything one engine step changed, in ONE transaction: each order's new state with
        its trade, the checkpoint (risk counters, orders in flight, last candle decided) and
        the open positions' marks. A crash leaves the store either before the step or after
        it, never between — a restart resumes exactly. An order already in a final state is
        left as it is, with its trade (a replayed report); returns how many orders changed."""
        changed = 0
        async with self._conn("commit_step") as conn, conn.transaction():
            for trade, order in executions:
                async with conn.transaction():  # a savepoint: a replay rolls back only itself
                    try:
                        await self._upsert_trade(conn, trade)
                        if not await conn.fetchval(_UPSERT_ORDER,
                                                   *_order_args(self.identity, order)):
                            raise _AlreadyRecorded
                        changed += 1
                    except _AlreadyRecorded:
                        log.info("order %s already final: replay ignored", order.client_order_id)
            await self._write_checkpoint(conn, name, checkpoint, open_positions)
        return changed

    async def _write_checkpoint(self, conn: Any, name: str, data: Mapping[str, Any],
                                open_positions: Sequence[Trade]) -> None:
        await conn.execute(
            "INSERT INTO checkpoints (bot_identity, name, data) VALUES ($1, $2, $3) "
            "ON CONFLICT (bot_identity, name) DO UPDATE SET data = EXCLUDED.data, "
            "updated_at = now()", self.identity, name, dict(data))
        marks = [(self.identity, t.trade_id, t.stop_loss, t.take_profit, t.trailing_stop,
                  t.highest_price, t.lowest_price) for t in open_positions]
        if marks:
            await conn.executemany(_UPDATE_OPEN_MARKS, marks)

    async def _upsert_trade(self, conn: Any, trade: Trade) -> None:
        if not await conn.fetchval(_UPSERT_TRADE, *_trade_args(self.identity, trade)):
            raise ForeignRowError(f"trade id {trade.trade_id!r} belongs to another bot; "
                                  f"not written for identity {self.identity!r}")

    async def save_trade(self, trade: Trade) -> None:
        async with self._conn("save_trade") as conn:
            await self._upsert_trade(conn, trade)

    async def open_trades(self) -> list[Trade]:
        """This bot's open positions, oldest first, to restore after a restart."""
        rows = await self._fetch("open_trades",
                                 f"{_SELECT_TRADES} AND status = $2 ORDER BY created_at",
                                 self.identity, TradeStatus.OPEN.value)
        return [_trade_from_row(r) for r in rows]

    async def all_trades(self) -> list[Trade]:
        """This bot's trades, oldest first (the engine rebuilds its cash from them)."""
        rows = await self._fetch("all_trades", f"{_SELECT_TRADES} ORDER BY created_at",
                                 self.identity)
        return [_trade_from_row(r) for r in rows]

    async def count_trades(self, status: TradeStatus | str) -> int:
        async with self._conn("count_trades") as conn:
            count: int = await conn.fetchval(
                "SELECT count(*) FROM trades WHERE bot_identity = $1 AND status = $2",
                self.identity, TradeStatus(status).value)
        return count

    async def trades(self, limit: int = 100, status: TradeStatus | str | None = None
                     ) -> list[Trade]:
        """Newest first."""
        if status is None:
            rows = await self._fetch(
                "trades", f"{_SELECT_TRADES} ORDER BY created_at DESC LIMIT $2", self.identity,
                limit)
        else:
            rows = await self._fetch(
                "trades", f"{_SELECT_TRADES} AND status = $2 ORDER BY created_at DESC LIMIT $3",
                self.identity, TradeStatus(status).value, limit)
        return [_trade_from_row(r) for r in rows]

    async def error_trades(self, limit: int = 100) -> list[Trade]:
        """Trades in `error` (runbook 4: an exit failed; manual intervention), newest first."""
        return await self.trades(limit, TradeStatus.ERROR)

    async def orders(self, trade_id: str | None = None, limit: int = 1000) -> list[Order]:
        """Oldest first."""
        select = f"SELECT {', '.join(_ORDER_COLUMNS)} FROM orders WHERE bot_identity = $1"
        if trade_id is None:
            rows = await self._fetch(
                "orders", f"{select} ORDER BY created_at LIMIT $2", self.identity, limit)
        else:
            rows = await self._fetch(
                "orders", f"{select} AND trade_id = $2 ORDER BY created_at LIMIT $3",
                self.identity, trade_id, limit)
        return [_order_from_row(r) for r in rows]

    # --- thoughts, features, metrics, checkpoints -------------------------------------------
    async def record_thoughts(self, thoughts: Sequence[Thought]) -> None:
        if not thoughts:
            return
        rows = [(self.identity, to_dt(t.ts), t.kind, t.pair, t.message, dict(t.data))
                for t in thoughts]
        async with self._conn("record_thoughts") as conn:
            await conn.executemany(
                "INSERT INTO thoughts (bot_identity, ts, kind, pair, message, data) "
                "VALUES ($1, $2, $3, $4, $5, $6)", rows)

    async def recent_thoughts(self, limit: int = 200) -> list[Thought]:
        """Newest first."""
        rows = await self._fetch(
            "recent_thoughts",
            "SELECT ts, kind, pair, message, data FROM thoughts WHERE bot_identity = $1 "
            "ORDER BY ts DESC, id DESC LIMIT $2", self.identity, limit)
        return [Thought(ts=from_dt(r["ts"]), kind=r["kind"], message=r["message"],
                        pair=r["pair"], data=dict(r["data"])) for r in rows]

    async def record_metrics(self, rows: Iterable[tuple[float, str, float, Mapping[str, str]]]
                             ) -> None:
        args = [(self.identity, to_dt(ts), name, value, dict(labels))
                for ts, name, value, labels in rows]
        if not args:
            return
        async with self._conn("record_metrics") as conn:
            await conn.executemany(
                "INSERT INTO metrics (bot_identity, ts, name, value, labels) "
                "VALUES ($1, $2, $3, $4, $5)", args)

    async def record_ml_features(self, trade_id: str, features: Mapping[str, float],
                                 label: float | None = None) -> None:
        """Upsert by trade: features at entry, the label once the trade closes. A later call
        without a label keeps the one already stored."""
        async with self._conn("record_ml_features") as conn:
            written = await conn.fetchval(
                "INSERT INTO ml_features (bot_identity, trade_id, features, label) "
                "VALUES ($1, $2, $3, $4) "
                "ON CONFLICT (trade_id) DO UPDATE SET features = EXCLUDED.features, "
                "label = COALESCE(EXCLUDED.label, ml_features.label), updated_at = now() "
                "WHERE ml_features.bot_identity = EXCLUDED.bot_identity RETURNING true",
                self.identity, trade_id, dict(features), label)
        if not written:
            raise ForeignRowError(f"features of trade {trade_id!r} belong to another bot; "
                                  f"not written for identity {self.identity!r}")

    async def labelled_ml_features(self, limit: int = 10_000
                                   ) -> list[tuple[str, dict[str, float], float]]:
        """(trade_id, features, label) for training, oldest first."""
        rows = await self._fetch(
            "labelled_ml_features",
            "SELECT trade_id, features, label FROM ml_features "
            "WHERE bot_identity = $1 AND label IS NOT NULL ORDER BY created_at LIMIT $2",
            self.identity, limit)
        return [(r["trade_id"], dict(r["features"]), r["label"]) for r in rows]

    async def save_checkpoint(self, data: Mapping[str, Any], name: str = "engine",
                              open_positions: Sequence[Trade] = ()) -> None:
        """Save the engine's checkpoint and, in the same transaction, the marks of the open
        positions that move between fills (stops, trailing stop, highest and lowest price),
        so a restart resumes with both as they were at the same moment."""
        async with self._conn("save_checkpoint") as conn, conn.transaction():
            await self._write_checkpoint(conn, name, data, open_positions)

    async def load_checkpoint(self, name: str = "engine") -> dict[str, Any] | None:
        async with self._conn("load_checkpoint") as conn:
            data = await conn.fetchval(
                "SELECT data FROM checkpoints WHERE bot_identity = $1 AND name = $2",
                self.identity, name)
        return None if data is None else dict(data)

    async def prune(self, before_ts: float) -> dict[str, int]:
        """Delete this bot's thoughts and metrics written before `before_ts` (retention,
        runbook 6): judged by when they were recorded, not by their market time. Trades and
        orders are the books: never pruned."""
        counts: dict[str, int] = {}
        async with self._conn("prune") as conn:
            for table in ("thoughts", "metrics"):
                status = await conn.execute(
                    f"DELETE FROM {table} WHERE bot_identity = $1 AND recorded_at < $2",
                    self.identity, to_dt(before_ts))
                counts[table] = int(status.split()[-1])
        return counts

    # --- the single-instance advisory lock --------------------------------------------------
    @property
    def holds_instance_lock(self) -> bool:
        return self._lock_conn is not None and not self.instance_lock_lost.is_set()

    async def acquire_instance_lock(self, identity: str, *,
                                    on_lost: Callable[[str], None] | None = None) -> bool:
        """Take the session advisory lock for `identity` on a dedicated connection. False
        when another session holds it. If that connection dies, `instance_lock_lost` is set
        and `on_lost(reason)` called: the caller must stop trading at once."""
        if self._lock_conn is not None:
            if not self.instance_lock_lost.is_set():
                return True
            await self.release_instance_lock()  # lost earlier: start over on a new session
        settings = {
            "application_name": f"novapulse-instance-lock:{identity}"[:63],
            # the server notices a vanished client (and frees the lock) within ~30 s
            "tcp_keepalives_idle": "10", "tcp_keepalives_interval": "5",
            "tcp_keepalives_count": "3",
        }
        try:
            conn = await asyncpg.connect(self._dsn, timeout=self.lock_timeout_s,
                                         server_settings=settings)
        except TimeoutError as exc:
            raise StoreTimeout("acquire_instance_lock", self.lock_timeout_s, exc) from exc
        try:
            got = await conn.fetchval("SELECT pg_try_advisory_lock($1)",
                                      advisory_key(f"novapulse:{identity}"),
                                      timeout=self.lock_timeout_s)
        except BaseException:
            conn.terminate()
            raise
        if not got:
            await conn.close()
            log.error("instance lock for identity %r is held by another session", identity)
            return False
        self._lock_conn = conn
        self._lock_identity = identity
        self._on_lock_lost = on_lost
        self._releasing = False
        self.instance_lock_lost.clear()
        conn.add_termination_listener(self._on_lock_conn_closed)
        self._lock_watch = asyncio.create_task(self._watch_lock(conn), name="instance-lock-watch")
        log.info("holding the database instance lock for identity %r", identity)
        return True

    async def release_instance_lock(self) -> None:
        conn, self._lock_conn = self._lock_conn, None
        if conn is None:
            return
        self._releasing = True
        watch, self._lock_watch = self._lock_watch, None
        if watch is not None and watch is not asyncio.current_task():
            watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watch
        if conn.is_closed():
            return
        try:
            async with self._lock_io:
                await conn.fetchval("SELECT pg_advisory_unlock($1)",
                                    advisory_key(f"novapulse:{self._lock_identity}"),
                                    timeout=self.lock_timeout_s)
                await conn.close(timeout=self.lock_timeout_s)
        except Exception as exc:  # closing the session frees the lock anyway
            log.warning("instance lock release: %s", exc)
            conn.terminate()
        log.info("released the database instance lock for identity %r", self._lock_identity)

    async def _watch_lock(self, conn: Any) -> None:
        probe_timeout = min(self.lock_timeout_s, max(2 * self._lock_check_interval_s, 1.0))
        while True:
            await asyncio.sleep(self._lock_check_interval_s)
            try:
                async with self._lock_io:
                    await conn.fetchval("SELECT 1", timeout=probe_timeout)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._lose(f"lock connection check failed: {type(exc).__name__}: {exc}")
                return

    def _on_lock_conn_closed(self, conn: Any) -> None:
        self._lose("lock connection closed")

    def _lose(self, reason: str) -> None:
        if self._releasing or self.instance_lock_lost.is_set():
            return
        log.critical("instance lock lost (%s): stop trading now", reason)
        self.instance_lock_lost.set()
        conn = self._lock_conn
        if conn is not None and not conn.is_closed():
            conn.terminate()
        watch = self._lock_watch
        if watch is not None and watch is not asyncio.current_task():
            watch.cancel()
        if self._on_lock_lost is not None:
            try:
                self._on_lock_lost(reason)
            except Exception:
                log.exception("instance lock lost callback failed")


def _timeout_settings(timeout_s: float) -> dict[str, str]:
    ms = str(max(1, int(timeout_s * 1000)))
    return {"statement_timeout": ms, "lock_timeout": ms,
            "idle_in_transaction_session_timeout": str(max(1, int(timeout_s * 4000)))}
