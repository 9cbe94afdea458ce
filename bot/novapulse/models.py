"""Value types shared by the feed, the engine, execution and the store."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Candle:
    """One OHLCV candle. `ts` is the candle's open time in UTC epoch seconds."""

    pair: str
    ts: int
    open: float
    high: float
    low: float
    close: float
    volume: float
    interval_s: int = 300

    @property
    def close_ts(self) -> int:
        return self.ts + self.interval_s


class Side(enum.StrEnum):
    BUY = "buy"
    SELL = "sell"


class TradeStatus(enum.StrEnum):
    PENDING = "pending"  # entry order sent, not filled yet
    OPEN = "open"
    CLOSING = "closing"  # exit order working
    CLOSED = "closed"
    ERROR = "error"  # exit retries exhausted: may still be open on the exchange (runbook 4)
    REJECTED = "rejected"  # entry refused or cancelled with nothing filled


@dataclass(slots=True)
class Trade:
    """A position from entry to exit. `trade_id` doubles as the client order id stem,
    so replaying the same decision after a crash can never create a second trade."""

    trade_id: str
    pair: str
    side: Side
    entry_price: float
    quantity: float
    entry_time: float
    strategy: str
    stop_loss: float
    take_profit: float
    entry_fee: float = 0.0
    status: TradeStatus = TradeStatus.OPEN
    exit_price: float | None = None
    exit_time: float | None = None
    exit_fee: float = 0.0
    pnl: float | None = None
    trailing_stop: float | None = None
    highest_price: float = 0.0
    lowest_price: float = 0.0
    notes: str = ""
    mode: str = "paper"
    extra: dict[str, float] = field(default_factory=dict)

    @property
    def notional(self) -> float:
        return self.entry_price * self.quantity


class OrderKind(enum.StrEnum):
    ENTRY = "entry"
    EXIT = "exit"


class OrderStatus(enum.StrEnum):
    PENDING = "pending"  # recorded, not yet sent
    FILLED = "filled"
    REJECTED = "rejected"
    FAILED = "failed"
    OPEN = "open"
    CANCELED = "canceled"


@dataclass(slots=True)
class Order:
    """One order sent (or simulated) for a trade. `client_order_id` is unique: an order
    retried after a crash carries the same id, so the exchange and the store see it once."""

    client_order_id: str
    trade_id: str
    pair: str
    side: Side
    kind: OrderKind
    quantity: float
    price: float
    status: OrderStatus
    created_at: float
    fee: float = 0.0
    exchange_order_id: str | None = None
    error: str | None = None


@dataclass(frozen=True, slots=True)
class Thought:
    """One entry of the thought log: a decision or a block, with its reason."""

    ts: float
    kind: str
    message: str
    pair: str | None = None
    data: dict[str, float | str | int | bool | None] = field(default_factory=dict)
