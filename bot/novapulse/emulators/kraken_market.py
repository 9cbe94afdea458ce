"""The emulator's market: its clock over the replayed candles, and each pair's current price.

The current candle of a pair is the newest one that has opened by `now()` (the last row OHLC
serves); its close is the price orders fill at. Tests may fix the clock or a pair's price.
"""

from __future__ import annotations

import time
from bisect import bisect_right
from collections.abc import Callable
from decimal import Decimal

from novapulse.emulators.kraken_pairs import EmulatedPair
from novapulse.models import Candle


class ReplayedMarket:
    def __init__(self, pairs: dict[str, EmulatedPair],
                 now: Callable[[], float] | None = None) -> None:
        self.pairs = pairs
        self._now = now or time.time
        self._fixed_now: float | None = None
        self._fixed_prices: dict[str, Decimal] = {}

    def now(self) -> float:
        return self._fixed_now if self._fixed_now is not None else self._now()

    def set_now(self, ts: float | None) -> None:
        """Stop the clock at `ts` (None: follow the clock given at start again)."""
        self._fixed_now = ts

    def find_pair(self, name: str) -> EmulatedPair | None:
        return next((p for p in self.pairs.values() if p.named(name)), None)

    def pair(self, name: str) -> EmulatedPair:
        pair = self.find_pair(name)
        if pair is None:
            raise KeyError(f"unknown pair {name!r}; the emulator trades {', '.join(self.pairs)}")
        return pair

    def candles_until_now(self, pair: EmulatedPair) -> list[Candle]:
        end = bisect_right(pair.candles, self.now(), key=lambda c: c.ts)
        return pair.candles[:end]

    def current_candle(self, pair: EmulatedPair) -> Candle | None:
        end = bisect_right(pair.candles, self.now(), key=lambda c: c.ts)
        return pair.candles[end - 1] if end else None

    def price_of(self, pair: EmulatedPair) -> Decimal | None:
        fixed = self._fixed_prices.get(pair.wsname)
        if fixed is not None:
            return fixed
        candle = self.current_candle(pair)
        return Decimal(repr(candle.close)) if candle is not None else None

    def set_price(self, pair_name: str, price: Decimal | None) -> None:
        """Hold a pair at `price` whatever the candles say (None: follow the candles again)."""
        pair = self.pair(pair_name)
        if price is None:
            self._fixed_prices.pop(pair.wsname, None)
        elif price <= 0:
            raise ValueError(f"price must be positive, not {price}")
        else:
            self._fixed_prices[pair.wsname] = price

    def state(self) -> dict[str, object]:
        prices = {name: self.price_of(pair) for name, pair in self.pairs.items()}
        return {"now": self.now(),
                "prices": {name: None if p is None else str(p) for name, p in prices.items()}}
