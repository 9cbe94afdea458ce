"""The execution layer for a venue that answers later: intents in, final reports out.

One intent at a time, in order. Runbook 4's taxonomy decides what happens on an error:
- not retryable (authentication, insufficient funds, invalid order, anything unknown): the
  order is reported rejected with the class and the exchange's message — the engine says
  "Order fill failed" and the runner alerts;
- rate limit: back off and try again;
- network error or timeout: the order may exist;
- exchange unavailable: back off, tell the runner (it pauses new entries until the venue
  answers again), and try again.
Every try after a failure first looks the order up by its client order id, and sends again
only if the venue has never seen it.
An intent restored after a restart may have been sent before the crash: it is always looked
up first. Kraken keeps a client order id unique only among OPEN orders, so a filled order
would not stop a second one — looking up is the only guard.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence

from novapulse.execution.venue import (
    ErrorClass,
    OrderIntent,
    OrderReport,
    OrderState,
    Venue,
    VenueError,
)

log = logging.getLogger("novapulse.execution")

BACKOFF_SECONDS = (0.5, 1.0, 2.0, 5.0, 10.0, 30.0)

ReportSink = Callable[[OrderReport], Awaitable[None]]
VenueHealth = Callable[[ErrorClass | None, str], None]


class ExecutionWorker:
    def __init__(self, venue: Venue, on_report: ReportSink, *,
                 on_venue_health: VenueHealth | None = None, poll_seconds: float = 1.0,
                 backoff: Sequence[float] = BACKOFF_SECONDS) -> None:
        """`on_venue_health(error, message)`: called with UNAVAILABLE while the venue does not
        answer, and with None once it answers again."""
        self.venue = venue
        self.on_report = on_report
        self.on_venue_health = on_venue_health
        self.poll_seconds = poll_seconds
        self.backoff = tuple(backoff)
        self._queue: asyncio.Queue[tuple[OrderIntent, bool]] = asyncio.Queue()
        self._unavailable = False
        self.sent = 0
        self.looked_up = 0

    def send(self, intent: OrderIntent, *, maybe_sent: bool = False) -> None:
        """Queue an intent (already stored). `maybe_sent`: it may have reached the venue before
        a restart — look it up before sending."""
        self._queue.put_nowait((intent, maybe_sent))

    @property
    def pending(self) -> int:
        return self._queue.qsize()

    async def run(self) -> None:
        while True:
            intent, maybe_sent = await self._queue.get()
            report = await self.execute(intent, maybe_sent=maybe_sent)
            await self.on_report(report)

    async def execute(self, intent: OrderIntent, *, maybe_sent: bool = False) -> OrderReport:
        """Until the order is final: filled, rejected or cancelled."""
        failures = 0
        while True:
            try:
                report = None
                if maybe_sent:
                    self.looked_up += 1
                    report = await self.venue.lookup(intent)
                if report is None:
                    self.sent += 1
                    report = await self.venue.submit(intent)
                self._answered()
                return await self._until_final(intent, report)
            except VenueError as exc:
                if not exc.retryable:
                    self._answered()
                    log.error("order %s (%s %s %s qty=%.8g) refused: %s", intent.client_order_id,
                              intent.kind, intent.side, intent.pair, intent.quantity, exc)
                    return OrderReport(intent.client_order_id, OrderState.REJECTED,
                                       error=exc.error, message=exc.message)
                # Whatever went wrong, the order may have arrived: never send blind again.
                maybe_sent = True
                if exc.error is ErrorClass.UNAVAILABLE:
                    self._not_answering(exc.message)
                delay = self.backoff[min(failures, len(self.backoff) - 1)]
                failures += 1
                log.warning("order %s: %s; trying again in %.1fs", intent.client_order_id, exc,
                            delay)
                await asyncio.sleep(delay)

    async def _until_final(self, intent: OrderIntent, report: OrderReport) -> OrderReport:
        failures = 0
        while not report.state.final:
            await asyncio.sleep(self.poll_seconds)
            try:
                found = await self.venue.lookup(intent)
            except VenueError as exc:
                if not exc.retryable:
                    raise
                failures += 1
                await asyncio.sleep(self.backoff[min(failures, len(self.backoff) - 1)])
                continue
            if found is not None:
                report = found
        return report

    def _not_answering(self, message: str) -> None:
        # Said on every failure (the pause is idempotent): a pause lifted meanwhile comes back.
        if self.on_venue_health is not None:
            self.on_venue_health(ErrorClass.UNAVAILABLE, message)
        self._unavailable = True

    def _answered(self) -> None:
        if self._unavailable and self.on_venue_health is not None:
            self.on_venue_health(None, "")
        self._unavailable = False
