"""When to try the WebSocket again: exponential backoff with decorrelated jitter.

Decorrelated jitter (each wait drawn between `initial` and three times the previous wait,
capped at `maximum`) spreads many clients apart without the long synchronised pauses of a
plain doubling. Close code 1013 ("try again later": Kraken's "Market data unavailable")
means the server asked us to stay away, so those waits start at `backoff_1013` and double
on each consecutive 1013. A connection that stayed up for `healthy_after` seconds resets
the policy, so one blip after a day of uptime does not inherit yesterday's long waits.
"""

from __future__ import annotations

import random
from collections.abc import Callable

TRY_AGAIN_LATER = 1013


class ReconnectPolicy:
    def __init__(
        self,
        initial: float,
        maximum: float,
        backoff_1013: float,
        *,
        healthy_after: float = 60.0,
        rng: Callable[[], float] = random.random,
    ) -> None:
        if initial <= 0 or maximum <= 0 or backoff_1013 <= 0:
            raise ValueError("backoff durations must be positive")
        self.initial = initial
        self.maximum = max(maximum, initial)
        self.backoff_1013 = backoff_1013
        self.healthy_after = healthy_after
        self._rng = rng
        self._previous: float | None = None
        self._consecutive_1013 = 0
        self._connected_at: float | None = None
        self.attempts = 0

    def next_delay(self, close_code: int | None = None) -> float:
        """Seconds to wait before the next connection attempt."""
        self.attempts += 1
        previous = self._previous if self._previous is not None else self.initial
        upper = max(self.initial, min(self.maximum, previous * 3))
        delay = self.initial + self._rng() * (upper - self.initial)
        if self._previous is None:
            delay = min(delay, self.initial * 2)
        if close_code == TRY_AGAIN_LATER:
            self._consecutive_1013 += 1
            ceiling = max(self.maximum, self.backoff_1013)
            floor = min(ceiling, self.backoff_1013 * 2 ** (self._consecutive_1013 - 1))
            delay = max(delay, floor)
        else:
            self._consecutive_1013 = 0
        self._previous = delay
        return delay

    def connection_opened(self, now: float) -> None:
        self._connected_at = now

    def connection_closed(self, now: float) -> None:
        """Call when a connection ends; forgets past failures if it had been healthy."""
        if self._connected_at is not None and now - self._connected_at >= self.healthy_after:
            self.reset()
        self._connected_at = None

    def reset(self) -> None:
        self._previous = None
        self._consecutive_1013 = 0
        self.attempts = 0
