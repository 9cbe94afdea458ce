"""Prometheus metrics of one bot: counters fed by the runner as things happen, gauges set from
a status snapshot at scrape time. One registry per bot, so tests can run several.

Labels are pair names, gate names and order outcomes only: never a secret, never free text."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from novapulse.models import Order, Thought

__all__ = ["CONTENT_TYPE_LATEST", "BotMetrics"]

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class BotMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.feed_age = Gauge("novapulse_feed_age_seconds",
                              "Seconds since the last market data, per pair", ["pair"], registry=r)
        self.ws_connected = Gauge("novapulse_ws_connected", "1 when the market feed is connected",
                                  registry=r)
        self.paused = Gauge("novapulse_paused", "1 when trading is paused", registry=r)
        self.equity = Gauge("novapulse_equity", "Equity (quote currency)", registry=r)
        self.daily_pnl = Gauge("novapulse_daily_pnl", "Realised PnL since midnight UTC",
                               registry=r)
        self.open_positions = Gauge("novapulse_open_positions", "Open positions", registry=r)
        self.error_trades = Gauge("novapulse_error_trades", "Trades in status error", registry=r)
        self.main_loop_lag = Gauge("novapulse_main_loop_lag_seconds",
                                   "Seconds since the main loop last ticked", registry=r)
        self.orders = Counter("novapulse_orders", "Orders by outcome", ["outcome"], registry=r)
        self.gate_blocks = Counter("novapulse_gate_blocks", "Entries blocked, by risk gate",
                                   ["gate"], registry=r)
        self.store_errors = Counter("novapulse_store_errors", "Failed store writes", registry=r)
        self.decision_latency = Histogram(
            "novapulse_decision_latency_seconds",
            "Candle received to decision done (the main loop's latency)",
            buckets=LATENCY_BUCKETS, registry=r)
        self._pairs_with_age: set[str] = set()

    # --- hooks the runner calls -------------------------------------------------------------
    def watch_loop(self, last_tick: Callable[[], float]) -> None:
        """Report the main loop's lag from its heartbeat (a monotonic time), at scrape time."""
        self.main_loop_lag.set_function(lambda: max(0.0, time.monotonic() - last_tick()))

    def order_recorded(self, order: Order) -> None:
        self.orders.labels(outcome=str(order.status)).inc()

    def thought(self, thought: Thought) -> None:
        """A thought-log listener: counts blocks by gate."""
        gate = thought.data.get("gate") if thought.kind == "blocked" else None
        if gate is not None:
            self.gate_blocks.labels(gate=str(gate)).inc()

    def store_error(self) -> None:
        self.store_errors.inc()

    def decision(self, latency_s: float) -> None:
        self.decision_latency.observe(latency_s)

    # --- at scrape time ---------------------------------------------------------------------
    def set_status(self, status: Mapping[str, Any]) -> None:
        feed: Mapping[str, float | None] = status.get("feed") or {}
        for pair, age in feed.items():
            if age is not None:
                self.feed_age.labels(pair=pair).set(age)
                self._pairs_with_age.add(pair)
            elif pair in self._pairs_with_age:
                self.feed_age.remove(pair)  # no data (any more): no made-up age
                self._pairs_with_age.discard(pair)
        self.ws_connected.set(1 if status.get("ws_connected") else 0)
        self.paused.set(1 if status.get("paused") else 0)
        self.equity.set(float(status.get("equity") or 0.0))
        self.daily_pnl.set(float(status.get("daily_pnl") or 0.0))
        self.open_positions.set(int(status.get("open_positions") or 0))
        self.error_trades.set(int(status.get("error_trades") or 0))

    def render(self) -> bytes:
        return generate_latest(self.registry)
