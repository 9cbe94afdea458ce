"""One emulated Kraken spot account: balances, orders and the trades that fill them.

Pure state, no I/O. Market orders and limit orders that cross fill at once, in full, at the
pair's current price; a resting limit order fills at its limit price once the current price
reaches it (checked by `settle`, which the server runs before every private request). The fee
is charged in the quote currency. Funds held by open orders are not available to new ones.
"""

from __future__ import annotations

import secrets
import string
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from typing import Literal

from novapulse.emulators import kraken_errors as errors
from novapulse.emulators.kraken_errors import KrakenError
from novapulse.emulators.kraken_pairs import EmulatedPair, rest_code
from novapulse.emulators.kraken_requests import OrderRequest, Side

OrderStatus = Literal["open", "closed", "canceled"]
# "api": placed through AddOrder; "outside": placed by a test helper, as if by hand on the site.
OrderSource = Literal["api", "outside"]
PriceSource = Callable[[EmulatedPair], Decimal | None]

_ID_ALPHABET = string.ascii_uppercase + string.digits


@dataclass(slots=True)
class EmulatedTrade:
    trade_id: str
    txid: str
    pair: EmulatedPair
    side: Side
    ordertype: str
    price: Decimal
    volume: Decimal
    cost: Decimal
    fee: Decimal
    time: float
    maker: bool


@dataclass(slots=True)
class EmulatedOrder:
    txid: str
    pair: EmulatedPair
    side: Side
    ordertype: str
    volume: Decimal
    limit_price: Decimal | None
    opentm: float
    cl_ord_id: str | None
    userref: int | None
    source: OrderSource
    status: OrderStatus = "open"
    vol_exec: Decimal = Decimal(0)
    cost: Decimal = Decimal(0)
    fee: Decimal = Decimal(0)
    closetm: float | None = None
    reason: str | None = None
    trade_ids: list[str] = field(default_factory=list)

    @property
    def average_price(self) -> Decimal:
        return self.cost / self.vol_exec if self.vol_exec else Decimal(0)

    def matches(self, ref: str) -> bool:
        """Kraken finds an order by txid, by cl_ord_id, or (a number) by userref."""
        if ref in (self.txid, self.cl_ord_id):
            return True
        return self.userref is not None and ref.lstrip("-").isdigit() and int(ref) == self.userref

    def crosses(self, price: Decimal) -> bool:
        if self.limit_price is None:
            return True
        return price <= self.limit_price if self.side == "buy" else price >= self.limit_price


class EmulatedAccount:
    def __init__(
        self, price_of: PriceSource, now: Callable[[], float], fee_rate: Decimal,
        balances: Mapping[str, Decimal] | None = None,
    ) -> None:
        if not Decimal(0) <= fee_rate < Decimal(1):
            raise ValueError(f"fee rate must be in [0, 1), not {fee_rate}")
        self._price_of = price_of
        self._now = now
        self.fee_rate = fee_rate
        self.balances: dict[str, Decimal] = {}
        for asset, amount in (balances or {}).items():
            self.set_balance(asset, amount)
        self.orders: dict[str, EmulatedOrder] = {}
        self.trades: dict[str, EmulatedTrade] = {}

    # --- balances ---------------------------------------------------------------------

    def set_balance(self, asset: str, amount: Decimal) -> None:
        if amount < 0:
            raise ValueError(f"balance of {asset} must not be negative: {amount}")
        self.balances[rest_code(asset)] = amount

    def balance(self, asset: str) -> Decimal:
        return self.balances.get(rest_code(asset), Decimal(0))

    def held(self, asset: str) -> Decimal:
        """What open orders reserve of `asset`: a buy its cost and fee, a sell its volume."""
        code = rest_code(asset)
        total = Decimal(0)
        for order in self.open_orders():
            remaining = order.volume - order.vol_exec
            if order.side == "buy" and order.pair.quote == code and order.limit_price:
                total += remaining * order.limit_price * (1 + self.fee_rate)
            elif order.side == "sell" and order.pair.base == code:
                total += remaining
        return total

    def available(self, asset: str) -> Decimal:
        return self.balance(asset) - self.held(asset)

    # --- orders -----------------------------------------------------------------------

    def add_order(self, request: OrderRequest, source: OrderSource = "api") -> EmulatedOrder | None:
        """Check an order as Kraken does; place it unless `validate` (then None)."""
        pair = request.pair
        market_price = self._price_of(pair)
        if market_price is None:
            raise KrakenError(errors.CANCEL_ONLY)
        reference_price = request.price if request.price is not None else market_price
        if request.volume < pair.rules.ordermin:
            raise KrakenError(errors.ORDER_MINIMUM)
        if request.volume * reference_price < pair.rules.costmin:
            raise KrakenError(errors.COST_MINIMUM)
        if request.cl_ord_id is not None and any(
            o.cl_ord_id == request.cl_ord_id for o in self.open_orders()
        ):
            raise KrakenError(errors.DUPLICATE_ORDER)
        if request.side == "buy":
            needed, asset = request.volume * reference_price * (1 + self.fee_rate), pair.quote
        else:
            needed, asset = request.volume, pair.base
        if needed > self.available(asset):
            raise KrakenError(errors.INSUFFICIENT_FUNDS)
        if request.validate:
            return None
        order = EmulatedOrder(
            txid=self._new_id("O", self.orders), pair=pair, side=request.side,
            ordertype=request.ordertype, volume=request.volume, limit_price=request.price,
            opentm=self._now(), cl_ord_id=request.cl_ord_id, userref=request.userref,
            source=source,
        )
        self.orders[order.txid] = order
        if order.crosses(market_price):
            self._fill(order, market_price, maker=False)
        return order

    def settle(self) -> list[EmulatedOrder]:
        """Fill the resting limit orders the current price has reached; those filled."""
        filled = []
        for order in self.open_orders():
            price = self._price_of(order.pair)
            if price is not None and order.crosses(price):
                assert order.limit_price is not None  # market orders never rest
                self._fill(order, order.limit_price, maker=True)
                filled.append(order)
        return filled

    def cancel(self, targets: Iterable[EmulatedOrder]) -> int:
        """Cancel the open ones among `targets`; how many (none open: Kraken's Unknown order)."""
        open_targets = [o for o in targets if o.status == "open"]
        if not open_targets:
            raise KrakenError(errors.UNKNOWN_ORDER)
        for order in open_targets:
            self._close(order, "canceled", "User requested")
        return len(open_targets)

    def by_txid_or_userref(self, ref: str) -> list[EmulatedOrder]:
        """What CancelOrder's `txid` names: an order id, or every order of a userref."""
        if ref.lstrip("-").isdigit():
            return [o for o in self.orders.values() if o.userref == int(ref)]
        order = self.orders.get(ref)
        return [order] if order is not None else []

    def by_cl_ord_id(self, cl_ord_id: str) -> list[EmulatedOrder]:
        return [o for o in self.orders.values() if o.cl_ord_id == cl_ord_id]

    def find(self, ref: str) -> list[EmulatedOrder]:
        """Orders named by any of their ids: txid, cl_ord_id or userref."""
        return [o for o in self.orders.values() if o.matches(ref)]

    def open_orders(self) -> list[EmulatedOrder]:
        return [o for o in self.orders.values() if o.status == "open"]

    def closed_orders(self) -> list[EmulatedOrder]:
        return [o for o in self.orders.values() if o.status != "open"]

    def trades_of(self, order: EmulatedOrder) -> list[EmulatedTrade]:
        return [self.trades[t] for t in order.trade_ids if t in self.trades]

    # --- what happens outside the bot (reconciliation tests) ---------------------------

    def fill_outside(self, ref: str, price: Decimal | None = None) -> list[EmulatedOrder]:
        """Fill open orders now, as the market would: at `price`, or the limit / current price."""
        targets = [o for o in self.find(ref) if o.status == "open"]
        if not targets:
            raise KeyError(f"no open order {ref!r}")
        for order in targets:
            fill_price = price if price is not None else order.limit_price
            if fill_price is None:
                fill_price = self._price_of(order.pair)
            if fill_price is None:
                raise ValueError(f"{order.pair.wsname} has no price yet")
            self._fill(order, fill_price, maker=order.limit_price is not None)
        return targets

    def forget(self, ref: str) -> list[EmulatedOrder]:
        """Make orders vanish from the exchange (and their trades): balances stay as they are."""
        targets = self.find(ref)
        if not targets:
            raise KeyError(f"no order {ref!r}")
        for order in targets:
            del self.orders[order.txid]
            for trade_id in order.trade_ids:
                self.trades.pop(trade_id, None)
        return targets

    # --- internals --------------------------------------------------------------------

    def _fill(self, order: EmulatedOrder, price: Decimal, *, maker: bool) -> None:
        rules = order.pair.rules
        volume = order.volume - order.vol_exec
        cost = _round(volume * price, rules.cost_decimals)
        fee = _round(cost * self.fee_rate, rules.cost_decimals)
        base, quote = order.pair.base, order.pair.quote
        if order.side == "buy":
            self._move(base, volume)
            self._move(quote, -(cost + fee))
        else:
            self._move(base, -volume)
            self._move(quote, cost - fee)
        now = self._now()
        trade = EmulatedTrade(self._new_id("T", self.trades), order.txid, order.pair, order.side,
                              order.ordertype, price, volume, cost, fee, now, maker)
        self.trades[trade.trade_id] = trade
        order.trade_ids.append(trade.trade_id)
        order.vol_exec += volume
        order.cost += cost
        order.fee += fee
        self._close(order, "closed", None)

    def _close(self, order: EmulatedOrder, status: OrderStatus, reason: str | None) -> None:
        order.status = status
        order.reason = reason
        order.closetm = self._now()

    def _move(self, asset: str, amount: Decimal) -> None:
        # Outside fills may take a balance below zero; Kraken's own checks never do.
        self.balances[asset] = self.balances.get(asset, Decimal(0)) + amount

    @staticmethod
    def _new_id(prefix: str, taken: Iterable[str]) -> str:
        existing = set(taken)
        while True:
            parts = (5, 5, 6)
            text = "-".join("".join(secrets.choice(_ID_ALPHABET) for _ in range(n)) for n in parts)
            candidate = prefix + text
            if candidate not in existing:
                return candidate


def _round(value: Decimal, decimals: int) -> Decimal:
    return value.quantize(Decimal(1).scaleb(-decimals), rounding=ROUND_HALF_UP)
