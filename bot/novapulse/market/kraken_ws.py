"""Kraken WebSocket v2 candle feed: connect, subscribe, watch the heartbeat, reconnect.

The client hands each CLOSED candle to `on_candle` exactly once per (pair, ts), in time
order. Kraken streams repeated updates for the candle in progress; a candle is closed when
an update with a later `interval_begin` arrives for its pair. After a reconnect, Kraken
does not restore subscriptions (we subscribe again) and its snapshot may repeat candles
already emitted (dropped by ts) or contain ones missed during the outage (emitted in order).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from novapulse.config import FeedConfig
from novapulse.market import kraken_protocol as kp
from novapulse.market.backoff import TRY_AGAIN_LATER, ReconnectPolicy
from novapulse.models import Candle

log = logging.getLogger(__name__)

ABNORMAL_CLOSURE = 1006


@dataclass
class FeedHealth:
    """What the circuit breaker, the status API and the operator read about the feed.
    Times are wall-clock epoch seconds. `disconnected_since` starts at process start, so a
    feed that never connected counts as down."""

    ws_connected: bool = False
    connected_since: float | None = None
    disconnected_since: float | None = field(default_factory=time.time)
    last_message_at: float | None = None
    last_update: dict[str, float] = field(default_factory=dict)
    connects: int = 0
    reconnects: int = 0
    malformed_messages: int = 0
    gaps: int = 0
    candles_emitted: int = 0
    subscribe_errors: int = 0
    last_close_code: int | None = None
    last_error: str | None = None

    def data_age(self, pair: str, now: float) -> float | None:
        last = self.last_update.get(pair)
        return None if last is None else max(0.0, now - last)

    def up_for(self, now: float) -> float:
        if not self.ws_connected or self.connected_since is None:
            return 0.0
        return max(0.0, now - self.connected_since)

    def down_for(self, now: float) -> float:
        if self.ws_connected or self.disconnected_since is None:
            return 0.0
        return max(0.0, now - self.disconnected_since)


class CandleCloser:
    """Turns Kraken's stream of (repeated, possibly replayed) candle updates for one pair
    into closed candles, each once, in time order."""

    def __init__(self, pair: str) -> None:
        self.pair = pair
        self.last_emitted_ts: int | None = None
        self.in_progress: Candle | None = None

    def feed(self, candle: Candle) -> list[Candle]:
        """Closed candles made final by this update (usually none or one)."""
        if self.last_emitted_ts is not None and candle.ts <= self.last_emitted_ts:
            return []
        current = self.in_progress
        if current is None or candle.ts == current.ts:
            self.in_progress = candle
            return []
        if candle.ts > current.ts:
            self.in_progress = candle
            return [current]
        # Older than the candle in progress yet never emitted: a later one exists, so it is
        # closed, and it still precedes everything not yet emitted.
        return [candle]

    def mark_emitted(self, candle: Candle) -> None:
        self.last_emitted_ts = candle.ts


class KrakenWsClient:
    def __init__(
        self,
        url: str,
        pairs: list[str],
        interval_minutes: int,
        on_candle: Callable[[Candle], None],
        config: FeedConfig,
        *,
        clock: Callable[[], float] = time.time,
        rng: Callable[[], float] = random.random,
        healthy_after_seconds: float = 60.0,
    ) -> None:
        if not pairs:
            raise ValueError("KrakenWsClient needs at least one pair")
        self.url = url
        self.pairs = list(dict.fromkeys(pairs))
        self.interval_minutes = interval_minutes
        self._on_candle = on_candle
        self._config = config
        self._clock = clock
        self._policy = ReconnectPolicy(
            config.reconnect_initial_seconds,
            config.reconnect_max_seconds,
            config.backoff_1013_seconds,
            healthy_after=healthy_after_seconds,
            rng=rng,
        )
        self.health = FeedHealth(disconnected_since=clock())
        self._closers = {pair: CandleCloser(pair) for pair in self.pairs}
        self._newest_ts: dict[str, int] = {}
        self._feed_time: dict[str, float] = {}
        self._stop = asyncio.Event()
        self._ws: ClientConnection | None = None
        self._req_id = 0
        self._closing: asyncio.Task[None] | None = None

    # --- lifecycle --------------------------------------------------------------------

    async def run(self) -> None:
        """Keep the feed up until `stop()`. Network failures are logged, never raised."""
        while not self._stop.is_set():
            close_code: int | None = None
            try:
                close_code = await self._session()
            except asyncio.CancelledError:
                self._mark_disconnected(None)
                raise
            except Exception as exc:
                self.health.last_error = f"{type(exc).__name__}: {exc}"
                log.warning(
                    "WebSocket connection to %s failed: %s", self.url, self.health.last_error
                )
            self._mark_disconnected(close_code)
            if self._stop.is_set():
                break
            delay = self._policy.next_delay(close_code)
            if close_code == TRY_AGAIN_LATER:
                log.warning(
                    "Kraken WS 1013 (market data unavailable): reconnecting in %.2fs",
                    delay,
                )
            else:
                log.warning(
                    "WebSocket disconnected (close code %s); reconnecting in %.2fs",
                    close_code,
                    delay,
                )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), timeout=delay)
        log.info("Kraken feed stopped")

    def is_history(self, candle: Candle) -> bool:
        """Whether a closed candle is more than one interval behind the newest candle the feed
        has shown for its pair: true of the backlog a snapshot replays after a (re)connect,
        false of a candle that has just closed."""
        newest = self._newest_ts.get(candle.pair)
        return newest is not None and newest - candle.ts > candle.interval_s

    def market_lag(self, candle: Candle) -> float:
        """How long after its close the candle was known closed, on the exchange's clock: the
        time stamp of the update that closed it minus its close time. A quiet pair's candle is
        closed only by its next trade, late; a stalled feed's, later still. Exchange time, so
        it means the same on Kraken and on a replay at any speed."""
        sent = self._feed_time.get(candle.pair)
        return 0.0 if sent is None else max(0.0, sent - candle.close_ts)

    def stop(self) -> None:
        self._stop.set()
        ws = self._ws
        if ws is None:
            return
        # Closing makes the pending recv() return, so run() sees the stop at once.
        try:
            self._closing = asyncio.get_running_loop().create_task(ws.close())
        except RuntimeError:  # called from outside the event loop
            ws.transport.abort()

    # --- one connection ---------------------------------------------------------------

    async def _session(self) -> int | None:
        """One connection from open to close; returns the close code (None if never open)."""
        async with connect(
            self.url,
            open_timeout=max(self._config.heartbeat_timeout_seconds, 1.0),
            close_timeout=1.0,
            ping_interval=None,
            max_size=2**24,
        ) as ws:
            self._ws = ws
            try:
                self._mark_connected()
                await self._subscribe(ws)
                await self._read_until_closed(ws)
            finally:
                self._ws = None
            return int(ws.close_code) if ws.close_code is not None else ABNORMAL_CLOSURE

    async def _subscribe(self, ws: ClientConnection) -> None:
        self._req_id += 1
        await ws.send(kp.subscribe_message(self.pairs, self.interval_minutes, self._req_id))

    async def _read_until_closed(self, ws: ClientConnection) -> None:
        timeout = self._config.heartbeat_timeout_seconds
        while not self._stop.is_set():
            try:
                frame = await asyncio.wait_for(ws.recv(), timeout=timeout)
            except TimeoutError:
                self.health.last_error = f"no message for {timeout:g}s (heartbeat watchdog)"
                log.warning("WebSocket silent for %.1fs: treating the connection as dead", timeout)
                ws.transport.abort()
                return
            except ConnectionClosed:
                return
            self.health.last_message_at = self._clock()
            self._handle_frame(frame)

    # --- messages ---------------------------------------------------------------------

    def _handle_frame(self, frame: str | bytes) -> None:
        try:
            event = kp.parse_message(frame)
        except kp.MalformedMessage as exc:
            self.health.malformed_messages += 1
            preview = frame[:200] if isinstance(frame, str) else repr(frame[:200])
            log.warning("Skipping malformed Kraken WS message (%s): %s", exc, preview)
            return
        if isinstance(event, kp.OhlcUpdate):
            self._handle_candles(event)
        elif isinstance(event, kp.SubscribeAck) and not event.success:
            self.health.subscribe_errors += 1
            log.error("Kraken WS %s failed for %s: %s", event.method, event.symbol, event.error)
        elif isinstance(event, kp.Status):
            log.info("Kraken WS status: %s (api %s)", event.system, event.api_version)

    def _handle_candles(self, update: kp.OhlcUpdate) -> None:
        now = self._clock()
        newest = self._newest_ts
        feed_time = self._feed_time
        for candle in update.candles:
            if candle.ts > newest.get(candle.pair, -1):
                newest[candle.pair] = candle.ts
            # The exchange's clock when it sent this (at least the candle's own begin).
            sent = max(float(candle.ts), update.sent_at or 0.0)
            if sent > feed_time.get(candle.pair, 0.0):
                feed_time[candle.pair] = sent
        for candle in sorted(update.candles, key=lambda c: (c.pair, c.ts)):
            closer = self._closers.get(candle.pair)
            if closer is None:
                continue
            self.health.last_update[candle.pair] = now
            for closed in closer.feed(candle):
                self._emit(closer, closed)

    def _emit(self, closer: CandleCloser, candle: Candle) -> None:
        previous = closer.last_emitted_ts
        if previous is not None and candle.ts - previous > candle.interval_s:
            missing = (candle.ts - previous) // candle.interval_s - 1
            self.health.gaps += 1
            log.warning(
                "Gap in %s candles: %d missing between ts %d and %d",
                candle.pair,
                missing,
                previous,
                candle.ts,
            )
        closer.mark_emitted(candle)
        self.health.candles_emitted += 1
        try:
            self._on_candle(candle)
        except Exception:
            log.exception("on_candle failed for %s at ts %d", candle.pair, candle.ts)

    # --- health -----------------------------------------------------------------------

    def _mark_connected(self) -> None:
        now = self._clock()
        health = self.health
        if health.connects:
            health.reconnects += 1
        health.connects += 1
        health.ws_connected = True
        health.connected_since = now
        health.disconnected_since = None
        self._policy.connection_opened(now)
        log.info("WebSocket connected to %s", self.url)

    def _mark_disconnected(self, close_code: int | None) -> None:
        if close_code is not None:
            self.health.last_close_code = close_code
        if not self.health.ws_connected:
            return
        now = self._clock()
        self.health.ws_connected = False
        self.health.connected_since = None
        self.health.disconnected_since = now
        self._policy.connection_closed(now)
