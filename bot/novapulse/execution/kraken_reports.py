"""A Kraken order as ccxt parses it → the `OrderReport` the engine consumes.

Kraken's statuses: `pending`/`open` (ccxt: open) → acknowledged, or partially filled once some
volume executed; `closed` → filled; `canceled`/`expired` → cancelled, keeping whatever filled
before. Quantities and the fee are cumulative; the fee is in the quote currency, converted at
the average fill price when Kraken charged it in the base currency (`fcib`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from novapulse.execution.venue import OrderReport, OrderState
from novapulse.models import Side

_STATES = {
    "closed": OrderState.FILLED,
    "canceled": OrderState.CANCELLED,
    "cancelled": OrderState.CANCELLED,
    "expired": OrderState.CANCELLED,
    "rejected": OrderState.REJECTED,
}


def order_report(order: Mapping[str, Any], pairs_by_symbol: Mapping[str, str]) -> OrderReport:
    """`pairs_by_symbol`: ccxt symbol → WS v2 pair, for the pairs the venue knows."""
    filled = _number(order.get("filled")) or 0.0
    average = _number(order.get("average")) if filled > 0 else None
    symbol = order.get("symbol")
    return OrderReport(
        client_order_id=str(order.get("clientOrderId") or ""),
        state=_state(str(order.get("status") or ""), filled),
        filled_quantity=filled,
        average_price=average,
        fee=_quote_fee(order, average),
        exchange_order_id=order.get("id"),
        pair=pairs_by_symbol.get(str(symbol)) if symbol else None,
        quantity=_number(order.get("amount")),
        side=Side(order["side"]) if order.get("side") in ("buy", "sell") else None,
        closed_at=_seconds(order.get("lastTradeTimestamp") or order.get("timestamp")),
    )


def _seconds(milliseconds: Any) -> float | None:
    value = _number(milliseconds)
    return None if value is None else value / 1000.0


def _state(status: str, filled: float) -> OrderState:
    if status in _STATES:
        return _STATES[status]
    if status == "open":
        return OrderState.PARTIALLY_FILLED if filled > 0 else OrderState.ACKNOWLEDGED
    return OrderState.UNKNOWN


def _quote_fee(order: Mapping[str, Any], average: float | None) -> float:
    fee = order.get("fee") or {}
    cost = _number(fee.get("cost")) or 0.0
    currency = fee.get("currency")
    symbol = str(order.get("symbol") or "")
    base = symbol.partition("/")[0]
    if cost and currency is not None and currency == base and average is not None:
        return cost * average
    return cost


def _number(value: Any) -> float | None:
    if value is None or value == "":
        return None
    return float(value)
