"""What the bot sends to OpenSearch: pure functions from its values to documents.

Every document goes to a date-suffixed index, `<prefix>-<kind>-YYYY.MM.DD`, by its own
timestamp (UTC). Candles and trades carry ids, so a candle or trade sent twice (a retry after
a timeout whose request did land) overwrites itself instead of counting twice; a trade's
document is its latest state.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from novapulse.models import Candle, Order, Thought, Trade

KINDS = ("candles", "trades", "thoughts", "metrics")

# The numeric and boolean status fields a metrics snapshot keeps (see `metrics_doc`).
METRIC_FIELDS = ("equity", "daily_pnl", "bankroll", "open_positions", "error_trades")
METRIC_FLAGS = ("paused", "ws_connected", "db_ok")


@dataclass(frozen=True, slots=True)
class Doc:
    kind: str
    ts: float  # epoch seconds: picks the day of the index
    body: dict[str, Any]
    doc_id: str | None = None


def index_name(prefix: str, kind: str, ts: float) -> str:
    day = time.strftime("%Y.%m.%d", time.gmtime(ts))
    return f"{prefix}-{kind}-{day}"


def _millis(ts: float) -> int:
    return round(ts * 1000)


def candle_doc(candle: Candle) -> Doc:
    return Doc("candles", candle.ts, {
        "@timestamp": _millis(candle.ts), "pair": candle.pair, "interval_s": candle.interval_s,
        "open": candle.open, "high": candle.high, "low": candle.low, "close": candle.close,
        "volume": candle.volume,
    }, f"{candle.pair}-{candle.ts}")


def trade_doc(trade: Trade, order: Order | None = None) -> Doc:
    body: dict[str, Any] = {
        "@timestamp": _millis(trade.entry_time), "trade_id": trade.trade_id, "pair": trade.pair,
        "side": str(trade.side), "status": str(trade.status), "strategy": trade.strategy,
        "mode": trade.mode, "entry_price": trade.entry_price, "quantity": trade.quantity,
        "entry_fee": trade.entry_fee, "exit_price": trade.exit_price,
        "exit_time": None if trade.exit_time is None else _millis(trade.exit_time),
        "exit_fee": trade.exit_fee, "pnl": trade.pnl, "stop_loss": trade.stop_loss,
        "take_profit": trade.take_profit, "notes": trade.notes,
    }
    if order is not None:
        body.update({"order_id": order.client_order_id, "order_kind": str(order.kind),
                     "order_status": str(order.status), "order_error": order.error})
    return Doc("trades", trade.entry_time, body, trade.trade_id)


def thought_doc(thought: Thought) -> Doc:
    return Doc("thoughts", thought.ts, {
        "@timestamp": _millis(thought.ts), "kind": thought.kind, "pair": thought.pair,
        "message": thought.message, "data": dict(thought.data),
    })


def metrics_doc(status: dict[str, Any], ts: float, extra: dict[str, float] | None = None) -> Doc:
    """A snapshot of the bot's status: its numbers and flags, plus `extra` (e.g. the analytics
    buffer itself)."""
    body: dict[str, Any] = {"@timestamp": _millis(ts), "mode": status.get("mode"),
                            "instance": status.get("instance")}
    for name in METRIC_FIELDS:
        value = status.get(name)
        body[name] = float(value) if isinstance(value, int | float) else None
    for name in METRIC_FLAGS:
        body[name] = bool(status.get(name))
    body.update(extra or {})
    return Doc("metrics", ts, body)
