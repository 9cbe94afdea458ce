"""An order's volume as the exchange will take it: rounded to the pair's lot precision, held to
its minimum volume and cost, and — in canary mode — an entry cut down to the notional cap.

Everything here happens before an order leaves, so a volume the exchange would refuse is
refused here with the pair, the volume and the precision named (runbook 4, InvalidOrder).
Volumes round down, never up: an exit must not sell more than the position holds, and an
entry must not spend more than it was sized for.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import ROUND_DOWN, Decimal

from novapulse.execution.venue import ErrorClass, OrderIntent, VenueError
from novapulse.models import OrderKind


@dataclass(frozen=True, slots=True)
class PairRules:
    """What the exchange demands of an order on one pair."""

    pair: str  # WS v2 spelling, ETH/BTC
    symbol: str  # the exchange library's symbol for it
    quote: str  # WS v2 spelling, BTC
    volume_step: Decimal  # the lot precision as a step, e.g. 0.00000001
    min_volume: Decimal  # Kraken's `ordermin`, in the base currency
    min_cost: Decimal  # Kraken's `costmin`, in the quote currency (0 when it has none)

    @property
    def volume_decimals(self) -> int:
        return max(0, -self.volume_step.normalize().as_tuple().exponent)  # type: ignore[operator]


@dataclass(frozen=True, slots=True)
class SizedOrder:
    volume: Decimal
    resized_from: float | None = None  # the intent's quantity when the canary cap cut it

    @property
    def note(self) -> str:
        if self.resized_from is None:
            return ""
        return f"canary cap: entry resized from {self.resized_from:g} to {self.volume}"


def round_volume(rules: PairRules, quantity: float) -> Decimal:
    """`quantity` rounded down to the pair's lot precision."""
    steps = (_decimal(quantity) / rules.volume_step).to_integral_value(rounding=ROUND_DOWN)
    return (steps * rules.volume_step).quantize(rules.volume_step)


def size_order(
    rules: PairRules, intent: OrderIntent, *, canary_max_notional: float | None = None
) -> SizedOrder:
    """The volume to send for `intent`, or `VenueError(INVALID_ORDER)` naming pair, volume and
    precision. With a canary cap, an entry whose notional exceeds it is cut down to the cap;
    exits are never resized (a position must be able to close whole)."""
    _check_finite(rules, intent)
    resized_from: float | None = None
    quantity = intent.quantity
    if (
        canary_max_notional is not None
        and intent.kind is OrderKind.ENTRY
        and intent.quantity * intent.price > canary_max_notional
    ):
        resized_from = intent.quantity
        quantity = canary_max_notional / intent.price
    volume = round_volume(rules, quantity)
    reason = _below_minimum(rules, volume, intent.price)
    if reason is not None:
        if resized_from is not None:
            reason = (f"{reason}; the canary cap {canary_max_notional:g} {rules.quote} "
                      f"allows no more than that (intent was {resized_from:g})")
        raise VenueError(ErrorClass.INVALID_ORDER, reason, retryable=False)
    return SizedOrder(volume, resized_from)


def _below_minimum(rules: PairRules, volume: Decimal, price: float) -> str | None:
    precision = f"volume precision {rules.volume_decimals} decimals"
    if volume <= 0 or volume < rules.min_volume:
        return (f"{rules.pair}: volume {volume} is below the minimum order "
                f"{rules.min_volume} ({precision})")
    cost = volume * _decimal(price)
    if cost < rules.min_cost:
        return (f"{rules.pair}: volume {volume} at {price:g} costs {cost.normalize():f} "
                f"{rules.quote}, below the minimum cost {rules.min_cost} {rules.quote} "
                f"({precision})")
    return None


def _check_finite(rules: PairRules, intent: OrderIntent) -> None:
    for name, value in (("quantity", intent.quantity), ("price", intent.price)):
        if not math.isfinite(value) or value <= 0:
            raise VenueError(
                ErrorClass.INVALID_ORDER,
                f"{rules.pair}: {name} must be a positive number, got {value!r} "
                f"(volume precision {rules.volume_decimals} decimals)",
                retryable=False,
            )


def _decimal(value: float) -> Decimal:
    # repr is the shortest string that reads back as the same float: 0.1 → Decimal("0.1")
    return Decimal(repr(value))
