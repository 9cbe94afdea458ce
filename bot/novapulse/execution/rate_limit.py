"""Client-side rate limiting for Kraken's REST API: pure bookkeeping on an injected clock.

Three limits apply to every call, and a call waits for the slowest of them:

- a token bucket at the configured `rate_limit_per_second` (our own politeness, every call);
- Kraken's REST call counter, one per API key: queries add 1, ledger and trade-history calls
  add 2, AddOrder and CancelOrder add nothing (they have their own limiter below). The counter
  decays continuously; over its maximum Kraken answers `EAPI:Rate limit exceeded`;
- Kraken's matching-engine counter, one per pair: AddOrder adds 1, a cancel adds up to 8 (the
  penalty for cancelling an order younger than 5 s; we do not track order ages and charge
  the worst case).

The model is conservative: it defaults to the Starter tier's limits (the lowest), and a rate
limit the exchange reports anyway (`penalize`) fills the REST counter to its maximum, so the
next call waits for a full decay rather than hammering a limit we misjudged.

Each limiter reserves a slot rather than only checking one: `reserve` returns how long the
caller must wait and books the call at that future instant, so concurrent callers queue up
in order without a lock. It is one queue: a call never overtakes one booked before it (a
throttled pair delays the calls behind it by its own wait, never by more).
"""

from __future__ import annotations

import asyncio
import enum
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass


class KrakenTier(enum.Enum):
    """Kraken's verification tiers: (REST counter max, its decay per second, matching-engine
    threshold per pair, its decay per second), from Kraken's published rate limits."""

    STARTER = (15.0, 0.33, 60.0, 1.0)
    INTERMEDIATE = (20.0, 0.5, 125.0, 2.34)
    PRO = (20.0, 1.0, 180.0, 3.75)

    @property
    def rest_max(self) -> float:
        return self.value[0]

    @property
    def rest_decay_per_s(self) -> float:
        return self.value[1]

    @property
    def engine_max(self) -> float:
        return self.value[2]

    @property
    def engine_decay_per_s(self) -> float:
        return self.value[3]


# REST counter cost per private endpoint (Kraken: ledger/trade history 2, AddOrder and
# CancelOrder 0, every other call 1). Public endpoints are limited per IP, not by this counter.
_REST_COST = {
    "AddOrder": 0.0,
    "CancelOrder": 0.0,
    "TradesHistory": 2.0,
    "QueryTrades": 2.0,
    "Ledgers": 2.0,
    "QueryLedgers": 2.0,
}
# Matching-engine cost per pair; cancels charged at the youngest-order penalty.
_ENGINE_COST = {"AddOrder": 1.0, "CancelOrder": 8.0}
_PUBLIC = frozenset({"Time", "Assets", "AssetPairs", "OHLC", "Ticker", "Depth", "SystemStatus"})


def rest_cost(endpoint: str) -> float:
    if endpoint in _PUBLIC:
        return 0.0
    return _REST_COST.get(endpoint, 1.0)


def engine_cost(endpoint: str) -> float:
    return _ENGINE_COST.get(endpoint, 0.0)


@dataclass(slots=True)
class TokenBucket:
    """`rate` tokens per second, holding at most `capacity` (the burst)."""

    rate: float
    capacity: float
    tokens: float
    at: float  # the instant `tokens` was true of (may lie in the future after a reservation)

    @classmethod
    def full(cls, rate: float, now: float, capacity: float | None = None) -> TokenBucket:
        if rate <= 0:
            raise ValueError(f"rate must be positive, got {rate}")
        size = max(1.0, rate) if capacity is None else capacity
        return cls(rate, size, size, now)

    def earliest(self, cost: float, now: float) -> float:
        """The first instant ≥ now at which `cost` tokens are available."""
        start = max(now, self.at)
        tokens = min(self.capacity, self.tokens + (start - self.at) * self.rate)
        if tokens >= cost:
            return start
        return start + (cost - tokens) / self.rate

    def commit(self, cost: float, at: float) -> None:
        """Take `cost` tokens at `at` (an instant no earlier than `earliest` returned)."""
        tokens = min(self.capacity, self.tokens + (at - self.at) * self.rate)
        self.tokens = tokens - cost
        self.at = at


@dataclass(slots=True)
class DecayingCounter:
    """Kraken's counter model: each call adds its cost, the total decays linearly at
    `decay_per_s` down to zero, and a call that would take it above `maximum` is refused."""

    maximum: float
    decay_per_s: float
    value: float = 0.0
    at: float = 0.0

    def level(self, at: float) -> float:
        return max(0.0, self.value - (at - self.at) * self.decay_per_s)

    def earliest(self, cost: float, now: float) -> float:
        start = max(now, self.at)
        excess = self.level(start) + cost - self.maximum
        if excess <= 0:
            return start
        return start + excess / self.decay_per_s

    def commit(self, cost: float, at: float) -> None:
        self.value = self.level(at) + cost
        self.at = at

    def fill(self, at: float) -> None:
        """As if the counter had reached its maximum at `at` (or at its latest booking)."""
        at = max(at, self.at)
        self.value = max(self.level(at), self.maximum)
        self.at = at


class KrakenRateLimiter:
    """The three limits above. `reserve` is pure bookkeeping on `clock`; `acquire` sleeps."""

    def __init__(
        self,
        rate_limit_per_second: float,
        *,
        tier: KrakenTier = KrakenTier.STARTER,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if rate_limit_per_second <= 0:
            raise ValueError(
                f"rate_limit_per_second must be positive, got {rate_limit_per_second}")
        self._clock = clock
        self._sleep = sleep
        now = clock()
        self.bucket = TokenBucket.full(rate_limit_per_second, now)
        self.rest = DecayingCounter(tier.rest_max, tier.rest_decay_per_s, 0.0, now)
        self._tier = tier
        self.engine: dict[str, DecayingCounter] = {}

    def _engine_counter(self, pair: str) -> DecayingCounter:
        counter = self.engine.get(pair)
        if counter is None:
            counter = DecayingCounter(
                self._tier.engine_max, self._tier.engine_decay_per_s, 0.0, self._clock())
            self.engine[pair] = counter
        return counter

    def reserve(self, endpoint: str, pair: str | None = None) -> float:
        """Book one call to `endpoint` (Kraken's name, e.g. "AddOrder"); returns the seconds
        to wait before making it."""
        now = self._clock()
        limits: list[tuple[TokenBucket | DecayingCounter, float]] = [(self.bucket, 1.0)]
        if (cost := rest_cost(endpoint)) > 0:
            limits.append((self.rest, cost))
        if pair is not None and (cost := engine_cost(endpoint)) > 0:
            limits.append((self._engine_counter(pair), cost))
        at = max(limit.earliest(cost, now) for limit, cost in limits)
        for limit, cost in limits:
            limit.commit(cost, at)
        return at - now

    def penalize(self, pair: str | None = None) -> None:
        """The exchange said we were over a limit: treat its counters (the REST counter, and
        the pair's matching-engine counter when a pair is named) as full, so the next calls
        wait for them to decay instead of hitting the limit again."""
        now = self._clock()
        self.rest.fill(now)
        if pair is not None:
            self._engine_counter(pair).fill(now)

    async def acquire(self, endpoint: str, pair: str | None = None) -> None:
        wait = self.reserve(endpoint, pair)
        if wait > 0:
            await self._sleep(wait)
