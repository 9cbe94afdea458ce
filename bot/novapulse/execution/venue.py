"""One interface for every venue: paper (fills at once) and Kraken (through ccxt).

The engine never talks to a venue. It emits `OrderIntent`s and consumes `OrderReport`s; the
execution layer between them (`execution/worker.py` for asynchronous venues) sends intents,
retries what may be retried, and looks an order up by its client order id before it ever sends
it again. An order's life:

    intent → submitted → acknowledged → partially_filled → filled | rejected | cancelled | unknown

`unknown` is what a timeout leaves: the venue may or may not have the order. Only a lookup by the
client order id settles it.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Protocol

from novapulse.models import OrderKind, Side


class OrderState(enum.StrEnum):
    INTENT = "intent"
    SUBMITTED = "submitted"
    ACKNOWLEDGED = "acknowledged"
    PARTIALLY_FILLED = "partially_filled"
    FILLED = "filled"
    REJECTED = "rejected"
    CANCELLED = "cancelled"
    UNKNOWN = "unknown"

    @property
    def final(self) -> bool:
        return self in _FINAL


_FINAL = frozenset({OrderState.FILLED, OrderState.REJECTED, OrderState.CANCELLED})


class ErrorClass(enum.StrEnum):
    """Runbook 4's taxonomy; the values are the exchange-library class names operators grep."""

    AUTHENTICATION = "AuthenticationError"
    INSUFFICIENT_FUNDS = "InsufficientFunds"
    INVALID_ORDER = "InvalidOrder"
    RATE_LIMIT = "RateLimitExceeded"
    NETWORK = "NetworkError"
    UNAVAILABLE = "ExchangeNotAvailable"
    OTHER = "ExchangeError"


@dataclass(frozen=True, slots=True)
class OrderIntent:
    """What the engine wants: a market order for `quantity` of the pair's base currency.
    `price` is the reference price the decision was made at (fills are judged against it)."""

    client_order_id: str
    trade_id: str
    pair: str  # WS v2 spelling, e.g. ETH/BTC
    side: Side
    kind: OrderKind
    quantity: float
    price: float
    ts: float  # market time of the decision
    attempt: int = 0  # exits are retried; each attempt is its own order


@dataclass(frozen=True, slots=True)
class OrderReport:
    """What the venue says about one order. `filled_quantity`, `average_price` and `fee` (in
    the quote currency) are cumulative."""

    client_order_id: str
    state: OrderState
    filled_quantity: float = 0.0
    average_price: float | None = None
    fee: float = 0.0
    exchange_order_id: str | None = None
    error: ErrorClass | None = None
    message: str = ""
    pair: str | None = None  # WS v2 spelling; what reconciliation shows for an orphan order
    quantity: float | None = None  # as the venue took it (rounded, or cut by a canary cap)
    side: Side | None = None  # what the venue reports it as (reconciliation)
    closed_at: float | None = None  # epoch seconds of its last fill or its close


class VenueError(Exception):
    """An order the venue refused or could not be asked about. `retryable`: the same intent may
    be tried again (after a look-up by client order id when the outcome is unknown)."""

    def __init__(self, error: ErrorClass, message: str, *, retryable: bool) -> None:
        super().__init__(f"{error}: {message}")
        self.error = error
        self.message = message
        self.retryable = retryable


class ImmediateVenue(Protocol):
    """A venue that answers at once (paper): the engine fills through it inline, so backtests
    and paper runs keep their exact results and their speed."""

    mode: str

    def fill(self, intent: OrderIntent) -> OrderReport: ...


class Venue(Protocol):
    """An exchange that answers later, partly, with an error, or not at all."""

    name: str

    async def submit(self, intent: OrderIntent) -> OrderReport:
        """Send the order; raises `VenueError`. A timeout raises NETWORK, retryable: the caller
        must `lookup` before sending again."""
        ...

    async def lookup(self, intent: OrderIntent) -> OrderReport | None:
        """The order with the intent's client order id, open or closed; None if the venue has
        never seen it."""
        ...

    async def cancel(self, intent: OrderIntent) -> OrderReport | None: ...

    async def open_orders(self) -> list[OrderReport]: ...

    async def closed_orders(self, since: float) -> list[OrderReport]:
        """Orders closed since `since` (epoch seconds), the bot's and anyone else's."""
        ...

    async def balances(self) -> dict[str, float]:
        """Free balance per currency, in WS v2 spelling (BTC, not XBT)."""
        ...

    async def close(self) -> None: ...
