"""Canary and live execution: the Kraken venue, the worker that sends intents, and the
periodic reconciliation — wired to the runner through two callbacks (store a step; pause or
lift a pause), so the runner stays the one place that orders persistence."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping

from novapulse.config import Config
from novapulse.engine import Engine, Execution
from novapulse.execution.reconcile import BALANCE_TOLERANCE, Reconciliation, reconcile
from novapulse.execution.venue import ErrorClass, OrderIntent, OrderReport, Venue, VenueError
from novapulse.execution.worker import ExecutionWorker
from novapulse.models import OrderKind, Side
from novapulse.order_ids import client_order_id_for
from novapulse.risk import PausedBy

log = logging.getLogger("novapulse.execution")

AUTH_PAUSE = "Exchange authentication failed"
UNAVAILABLE_PAUSE = "Exchange unavailable"

Commit = Callable[[list[Execution]], Awaitable[None]]


def build_kraken_venue(config: Config, environ: Mapping[str, str]) -> Venue:
    from novapulse.execution.kraken import KrakenVenue

    exchange = config.exchange
    return KrakenVenue(
        environ["KRAKEN_API_KEY"], environ["KRAKEN_API_SECRET"], rest_url=exchange.rest_url,
        rate_limit_per_second=exchange.rate_limit_per_second,
        canary_max_notional=(exchange.canary_max_notional
                             if config.trading.mode == "canary" else None),
        account_currency=config.trading.account_currency)


class LiveExecution:
    def __init__(self, engine: Engine, venue: Venue, commit: Commit, config: Config) -> None:
        self.engine = engine
        self.venue = venue
        self.commit = commit
        self.config = config
        self.worker = ExecutionWorker(venue, self._on_report,
                                      on_venue_health=self._venue_health)
        self.reconciliation: Reconciliation | None = None
        self.venue_error: str | None = None

    async def check_account(self) -> bool:
        """Ask the exchange once before trading. A refused key pauses trading with a clear
        reason (the pod stays up: a crash loop would not fix a key); returns whether it
        answered."""
        try:
            await self.venue.balances()
        except VenueError as exc:
            if exc.error is ErrorClass.AUTHENTICATION:
                self._auth_failed(exc.message)
            else:
                log.error("exchange did not answer at start (%s); orders wait until it does", exc)
                self.venue_error = str(exc)
            return False
        except Exception as exc:  # e.g. a secret that is not base64: the venue cannot sign
            log.critical("cannot use the exchange account: %s", type(exc).__name__)
            self._auth_failed(f"the venue refused the credentials ({type(exc).__name__})")
            return False
        log.info("exchange account reachable: trading %s on %s", self.config.trading.mode,
                 self.venue.name)
        return True

    def resume_in_flight(self) -> None:
        """Orders restored from the checkpoint may have reached the exchange before the
        restart: each is looked up by its client order id before it could be sent again."""
        pending = {i.client_order_id for i in self.engine.drain_outbox()}
        for intent in self.engine.in_flight.values():
            self.worker.send(intent, maybe_sent=True)
            pending.discard(intent.client_order_id)
        if pending:
            log.warning("%d re-issued order(s) not in flight: %s", len(pending), pending)

    def dispatch(self, intents: list[OrderIntent]) -> None:
        """Send intents the runner has stored."""
        for intent in intents:
            self.worker.send(intent)

    async def _on_report(self, report: OrderReport) -> None:
        engine = self.engine
        executions = engine.on_report(report, engine.market_now())
        intents = engine.drain_outbox()  # an exit retried after a failure
        await self.commit(executions)
        self.dispatch(intents)
        if report.error is ErrorClass.AUTHENTICATION:
            self._auth_failed(report.message)

    def _auth_failed(self, message: str) -> None:
        self.venue_error = f"{ErrorClass.AUTHENTICATION}: {message}"
        log.critical("%s: %s — no new entries until the API key and secret are fixed "
                     "(runbook 4)", AUTH_PAUSE, message)
        self.engine.pause(f"{AUTH_PAUSE}: {message} (check KRAKEN_API_KEY / KRAKEN_API_SECRET "
                          "and their trading permissions)", PausedBy.RISK_RULE, time.time())

    def _venue_health(self, error: ErrorClass | None, message: str) -> None:
        breaker = self.engine.risk.pauses
        if error is ErrorClass.UNAVAILABLE:
            self.venue_error = f"{error}: {message}"
            self.engine.pause(f"{UNAVAILABLE_PAUSE}: {message}", PausedBy.CIRCUIT_BREAKER,
                              time.time())
            return
        self.venue_error = None
        held = next((h for h in breaker.holds if h.by is PausedBy.CIRCUIT_BREAKER), None)
        if held is not None and held.reason.startswith(UNAVAILABLE_PAUSE):
            self.engine.resume(time.time(), PausedBy.CIRCUIT_BREAKER)

    async def _record_outside_exits(self, ghosts: tuple[str, ...]) -> None:
        """A ghost whose coins the exchange shows sold by someone else (a sell of the whole
        position on its pair, filled after the entry, not one of the bot's orders) is recorded
        closed at that real exit; any other ghost is only reported."""
        engine = self.engine
        trades = {t.trade_id: t for t in engine.positions.values() if t.trade_id in ghosts}
        since = min(t.entry_time for t in trades.values()) if trades else time.time()
        closed = await self.venue.closed_orders(since - 60)
        ours = {i.client_order_id for i in engine.in_flight.values()}
        used: set[str] = set()
        for trade in trades.values():
            exits = {client_order_id_for(trade.trade_id, OrderKind.EXIT, a)
                     for a in range(engine.exits.attempt.get(trade.trade_id, 0) + 1)}
            sale = next((o for o in closed if o.side is Side.SELL and o.pair == trade.pair
                         and o.average_price is not None
                         and o.filled_quantity >= trade.quantity * (1 - BALANCE_TOLERANCE)
                         and (o.closed_at or 0.0) >= trade.entry_time - 60
                         and o.client_order_id not in ours | exits
                         and (o.exchange_order_id or "") not in used), None)
            if sale is None or sale.average_price is None:
                continue
            used.add(sale.exchange_order_id or "")
            fee = sale.fee * trade.quantity / sale.filled_quantity
            log.warning("%s was sold outside the bot (order %s at %.8g): recorded as closed",
                        trade.trade_id, sale.exchange_order_id, sale.average_price)
            await self.commit(engine.closed_outside(trade.trade_id, sale.average_price, fee,
                                                    time.time()))

    async def reconcile_forever(self) -> None:
        interval = self.config.exchange.reconcile_interval_seconds
        while True:
            await asyncio.sleep(interval)
            try:
                await self.reconcile_once()
            except VenueError as exc:
                log.warning("reconciliation skipped: the exchange did not answer (%s)", exc)
            except Exception:  # a report, never a reason to stop trading
                log.exception("reconciliation failed")

    async def reconcile_once(self) -> Reconciliation:
        open_orders = await self.venue.open_orders()
        balances = await self.venue.balances()
        engine = self.engine
        held = [t for t in engine.positions.values() if t.status.value in
                ("open", "closing", "error")]
        result = reconcile(time.time(), held, set(engine.in_flight), open_orders, balances)
        for trade_id in result.ghosts:
            log.warning("Potential ghost position: %s (store open, exchange balance short)",
                        trade_id)
        if result.ghosts:
            await self._record_outside_exits(result.ghosts)
        for order_id in result.orphans:
            log.warning("Potential orphan order: %s (open on the exchange, unknown to the bot)",
                        order_id)
        self.reconciliation = result
        return result
