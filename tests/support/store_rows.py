"""Trades and orders to write in store tests."""

from __future__ import annotations

import dataclasses

from novapulse.models import Order, OrderKind, OrderStatus, Side, Trade

T0 = 1_700_000_000.25  # exact in microseconds, so times round-trip exactly


def make_trade(trade_id: str = "t-1", **changes: object) -> Trade:
    trade = Trade(
        trade_id=trade_id, pair="ETH/XBT", side=Side.BUY, entry_price=0.0525, quantity=1.5,
        entry_time=T0, strategy="trend", stop_loss=0.051, take_profit=0.056,
    )
    return dataclasses.replace(trade, **changes)  # type: ignore[arg-type]


def make_order(trade: Trade, kind: OrderKind = OrderKind.ENTRY, **changes: object) -> Order:
    order = Order(
        client_order_id=f"{trade.trade_id}-{kind.value}", trade_id=trade.trade_id,
        pair=trade.pair, side=trade.side, kind=kind, quantity=trade.quantity,
        price=trade.entry_price, status=OrderStatus.FILLED, created_at=trade.entry_time,
        fee=trade.entry_fee,
    )
    return dataclasses.replace(order, **changes)  # type: ignore[arg-type]
