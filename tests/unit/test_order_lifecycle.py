"""The order lifecycle in the engine, with a venue that answers later: positions follow fills."""

from __future__ import annotations

from dataclasses import replace

import pytest

from novapulse.config import Config
from novapulse.engine import MAX_EXIT_RETRIES, Engine
from novapulse.execution.venue import ErrorClass, OrderIntent, OrderReport, OrderState
from novapulse.models import OrderKind, OrderStatus, TradeStatus
from novapulse.thoughts import ThoughtLog
from support.engine_fixtures import ETH_CANDLES, AlwaysBullish

CANDLES = ETH_CANDLES
WARMUP = 150




def deferred_engine(config: Config | None = None) -> Engine:
    engine = Engine(config or Config(), None, ThoughtLog(500), strategies=[AlwaysBullish()])
    for candle in CANDLES[:WARMUP]:
        engine.warm_up(candle)
    return engine


def filled(intent: OrderIntent, price: float, quantity: float | None = None,
           fee: float = 0.0) -> OrderReport:
    return OrderReport(intent.client_order_id, OrderState.FILLED,
                       intent.quantity if quantity is None else quantity, price, fee, "OX1")


def rejected(intent: OrderIntent, error: ErrorClass, message: str) -> OrderReport:
    return OrderReport(intent.client_order_id, OrderState.REJECTED, error=error, message=message)


def enter(engine: Engine) -> OrderIntent:
    (recorded,) = engine.on_candle(CANDLES[WARMUP])
    assert recorded.order.status is OrderStatus.PENDING  # stored before it is sent
    assert recorded.trade.status is TradeStatus.PENDING
    (intent,) = engine.drain_outbox()
    assert recorded.order.client_order_id == intent.client_order_id
    assert intent.kind is OrderKind.ENTRY
    return intent


def test_an_entry_is_pending_until_it_fills_at_the_venues_price() -> None:
    engine = deferred_engine()
    start = engine.cash
    intent = enter(engine)
    trade = engine.positions["ETH/BTC"]
    assert trade.status is TradeStatus.PENDING
    assert engine.cash == start and engine.equity() == start  # nothing bought yet
    assert engine.drain_outbox() == []  # each intent leaves once
    fill_price = intent.price * 1.01
    (execution,) = engine.on_report(filled(intent, fill_price, fee=0.5), intent.ts)
    assert execution.order.status is OrderStatus.FILLED
    assert trade.status is TradeStatus.OPEN and trade.entry_price == fill_price
    assert trade.stop_loss == pytest.approx(fill_price * 0.98)  # stops follow the fill
    assert engine.cash == pytest.approx(start - fill_price * intent.quantity - 0.5)


def test_a_rejected_entry_leaves_no_position_and_says_why() -> None:
    engine = deferred_engine()
    start = engine.cash
    intent = enter(engine)
    (execution,) = engine.on_report(
        rejected(intent, ErrorClass.INSUFFICIENT_FUNDS, "EOrder:Insufficient funds"), intent.ts)
    assert execution.trade.status is TradeStatus.REJECTED
    assert execution.order.status is OrderStatus.REJECTED
    assert engine.positions == {} and engine.cash == start
    message = engine.thoughts.recent()[-1].message
    assert message.startswith("Order fill failed")
    assert "InsufficientFunds: EOrder:Insufficient funds" in message


def test_a_pending_entry_reserves_its_cash() -> None:
    engine = deferred_engine()
    intent = enter(engine)
    promised = intent.quantity * intent.price * (1 + 5 / 10_000) * (1 + 0.0026)
    assert engine.available_cash() == pytest.approx(engine.cash - promised)
    engine.on_report(filled(intent, intent.price), intent.ts)
    assert engine.available_cash() == engine.cash


def _open(engine: Engine) -> OrderIntent:
    intent = enter(engine)
    engine.on_report(filled(intent, intent.price), intent.ts)
    return intent


def _exit_now(engine: Engine) -> OrderIntent:
    trade = engine.positions["ETH/BTC"]
    nxt = replace(CANDLES[WARMUP + 1], low=trade.stop_loss * 0.99)
    (recorded,) = engine.on_candle(nxt)
    assert recorded.trade.status is TradeStatus.CLOSING
    (intent,) = engine.drain_outbox()
    assert intent.kind is OrderKind.EXIT and trade.status is TradeStatus.CLOSING
    return intent


def test_an_exit_that_keeps_failing_ends_in_error_and_alerts() -> None:
    engine = deferred_engine()
    _open(engine)
    trade = engine.positions["ETH/BTC"]
    exit_intent = _exit_now(engine)
    ids = {exit_intent.client_order_id}
    for attempt in range(MAX_EXIT_RETRIES + 1):
        engine.on_report(rejected(exit_intent, ErrorClass.OTHER, "EGeneral:Internal error"),
                         exit_intent.ts)
        if attempt < MAX_EXIT_RETRIES:
            (exit_intent,) = engine.drain_outbox()  # retried as a new order
            ids.add(exit_intent.client_order_id)
    assert len(ids) == MAX_EXIT_RETRIES + 1
    assert engine.drain_outbox() == []
    assert trade.status is TradeStatus.ERROR and engine.positions["ETH/BTC"] is trade
    alert = engine.thoughts.recent()[-1]
    assert alert.kind == "error" and "3 retries exhausted" in alert.message
    # Nothing closes it by itself: later candles leave it alone...
    for candle in CANDLES[WARMUP + 2: WARMUP + 20]:
        engine.on_candle(candle)
    assert engine.drain_outbox() == [] and trade.status is TradeStatus.ERROR
    # ...until an admin's close-all sends the exit again.
    engine.close_all(engine.market_now())
    (again,) = engine.drain_outbox()
    engine.on_report(filled(again, again.price), again.ts)
    assert trade.status is TradeStatus.CLOSED and "ETH/BTC" not in engine.positions


def test_a_partly_filled_exit_sells_the_rest_and_books_one_pnl() -> None:
    engine = deferred_engine()
    entry = _open(engine)
    start_cash = engine.cash + entry.price * entry.quantity  # before the entry (no fee here)
    exit_intent = _exit_now(engine)
    half = exit_intent.quantity / 2
    engine.on_report(filled(exit_intent, 100.0, half, fee=0.1), exit_intent.ts)
    trade = engine.positions["ETH/BTC"]
    assert trade.status is TradeStatus.CLOSING and trade.quantity == pytest.approx(half)
    (rest,) = engine.drain_outbox()
    assert rest.quantity == pytest.approx(half) and rest.client_order_id != \
        exit_intent.client_order_id
    engine.on_report(filled(rest, 110.0, fee=0.2), rest.ts)
    assert trade.status is TradeStatus.CLOSED
    assert trade.exit_price == pytest.approx(105.0)
    assert trade.pnl == pytest.approx(105.0 * entry.quantity - entry.price * entry.quantity - 0.3)
    assert engine.cash == pytest.approx(start_cash + trade.pnl)


def test_a_restart_reissues_an_order_the_checkpoint_missed_with_the_same_id() -> None:
    engine = deferred_engine()
    intent = enter(engine)
    pending = replace(engine.positions["ETH/BTC"])
    # Crash after the pending trade was stored, before a checkpoint knew of the order.
    checkpoint = engine.checkpoint()
    checkpoint["in_flight"] = []
    restarted = deferred_engine()
    restarted.restore([pending], checkpoint)
    (again,) = restarted.drain_outbox()
    assert again.client_order_id == intent.client_order_id  # looked up, never sent twice
    assert again.quantity == intent.quantity
