"""Kraken as a `Venue`, through ccxt's async client.

Orders are market orders carrying the intent's client order id as Kraken's `cl_ord_id` (ccxt
maps its `clientOrderId` parameter to exactly that field of AddOrder; `userref` is a 32-bit
integer and could not hold our UUIDs). Before an order leaves, its volume is rounded down to the
pair's lot precision and held to the pair's minimum volume and cost (`execution/precision.py`),
and in canary mode an entry above the notional cap is cut down to it.

`submit` never sends twice. On a timeout or a connection lost mid-request it raises
`VenueError(NETWORK, retryable=True)` and leaves the decision to the caller, who must `lookup`
first: Kraken enforces `cl_ord_id` uniqueness only among *open* orders, so once a market order
has filled, sending the same id again would be accepted as a second order.

An order whose `cl_ord_id` an open order already carries is refused by Kraken as a duplicate;
`submit` then answers with that open order (it is the one the intent placed).

`lookup` asks OpenOrders, then ClosedOrders, both filtered by `cl_ord_id` (QueryOrders takes
only Kraken's txids or a `userref`). Open first: an order that closes between the two calls
is then still found in the second.

Fees are requested in the quote currency (`oflags=fciq`; Kraken's default for sells is the
base currency), and a fee reported in the base currency anyway is converted at the fill price.

Rate limiting is ours (`execution/rate_limit.py`), and ccxt's own `enableRateLimit` is off:
ccxt's limiter models neither the configured rate nor Kraken's per-pair matching-engine
counter, charges AddOrder nothing, and cannot be driven by a test clock; two limiters would
only add their delays.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
import math
import re
import time
from collections.abc import Awaitable, Callable

import ccxt.async_support as ccxt_async
from ccxt.base import errors as ccxt_errors

from novapulse.execution.kraken_errors import DUPLICATE_ORDER, venue_error
from novapulse.execution.kraken_markets import pair_rules, ws_v2_code
from novapulse.execution.kraken_reports import order_report
from novapulse.execution.precision import PairRules, SizedOrder, size_order
from novapulse.execution.rate_limit import KrakenRateLimiter, KrakenTier
from novapulse.execution.venue import (
    ErrorClass,
    OrderIntent,
    OrderReport,
    OrderState,
    VenueError,
)

log = logging.getLogger(__name__)

# Fee in the quote currency: Kraken's default only for buys.
_ORDER_FLAGS = "fciq"


class _RedactAuthHeaders(logging.Filter):
    """ccxt logs every request's headers at DEBUG, API-Key among them: never let one out."""

    _HEADER = re.compile(r"""(['"]?API-(?:Key|Sign)['"]?\s*[:=]\s*)(['"]?)[^'",}\s]*""",
                         re.IGNORECASE)

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "api-" in message.lower():
            record.msg = self._HEADER.sub(r"\1\2***", message)
            record.args = None
        return True


_http_log = logging.getLogger(f"{__name__}.http")
_http_log.addFilter(_RedactAuthHeaders())


class KrakenVenue:
    """Kraken spot through ccxt. Construct, `await load_markets()` (or let the first order do
    it), then `submit`/`lookup`/`cancel`; `open_orders` and `balances` for reconciliation;
    `close` at the end."""

    name = "kraken"

    def __init__(
        self,
        api_key: str,
        api_secret: str,
        *,
        rest_url: str | None = None,
        rate_limit_per_second: float = 1.0,
        canary_max_notional: float | None = None,
        account_currency: str = "BTC",
        timeout_s: float = 10.0,
        tier: KrakenTier = KrakenTier.STARTER,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        _check_credentials(api_key, api_secret)
        if canary_max_notional is not None and not (
                math.isfinite(canary_max_notional) and canary_max_notional > 0):
            raise ValueError(
                f"canary_max_notional must be a positive number, got {canary_max_notional!r}")
        if not (math.isfinite(timeout_s) and timeout_s > 0):
            raise ValueError(f"timeout_s must be a positive number, got {timeout_s!r}")
        self.canary_max_notional = canary_max_notional
        self.account_currency = account_currency
        self._secrets = (api_key, api_secret)
        self._limiter = KrakenRateLimiter(rate_limit_per_second, tier=tier, clock=clock,
                                          sleep=sleep)
        self._exchange = ccxt_async.kraken({
            "apiKey": api_key,
            "secret": api_secret,
            "timeout": int(timeout_s * 1000),
            "enableRateLimit": False,
        })
        self._exchange.logger = _http_log
        self.rest_url = _rest_base(rest_url) if rest_url else None
        if self.rest_url:
            self._exchange.urls["api"] = {
                **self._exchange.urls["api"], "public": self.rest_url, "private": self.rest_url}
        self._rules: dict[str, PairRules] = {}
        self._pair_by_symbol: dict[str, str] = {}
        self._markets_lock = asyncio.Lock()

    def __repr__(self) -> str:
        return f"KrakenVenue(rest_url={self.rest_url!r})"

    # --- markets ------------------------------------------------------------------------

    async def load_markets(self, *, reload: bool = False) -> None:
        """Precision and minimums of every pair; loaded once, again only with `reload`."""
        async with self._markets_lock:
            if self._rules and not reload:
                return
            # ccxt loads markets with two public calls: Assets, then AssetPairs
            await self._limiter.acquire("Assets")
            await self._limiter.acquire("AssetPairs")
            try:
                markets = await self._exchange.load_markets(reload=reload)
            except Exception as exc:
                raise self._venue_error(exc) from None
            self._rules = pair_rules(markets)
            self._pair_by_symbol = {r.symbol: r.pair for r in self._rules.values()}

    def rules(self, pair: str) -> PairRules:
        """The rules of a pair (WS v2 spelling); markets must be loaded."""
        rules = self._rules.get(pair)
        if rules is None:
            raise VenueError(
                ErrorClass.INVALID_ORDER,
                f"{pair}: Kraken lists no such pair"
                + ("" if self._rules else " (markets not loaded)"),
                retryable=False)
        return rules

    def size(self, intent: OrderIntent) -> SizedOrder:
        """The volume `submit` would send for `intent`, or the `VenueError` it would raise."""
        rules = self.rules(intent.pair)
        if rules.quote != self.account_currency:
            raise VenueError(
                ErrorClass.INVALID_ORDER,
                f"{intent.pair}: quoted in {rules.quote}, not the account currency "
                f"{self.account_currency}",
                retryable=False)
        return size_order(rules, intent, canary_max_notional=self.canary_max_notional)

    # --- orders -------------------------------------------------------------------------

    async def submit(self, intent: OrderIntent) -> OrderReport:
        await self.load_markets()
        rules = self.rules(intent.pair)
        sized = self.size(intent)
        if sized.resized_from is not None:
            log.info("%s %s: %s", intent.pair, intent.client_order_id, sized.note)
        await self._limiter.acquire("AddOrder", intent.pair)
        try:
            order = await self._exchange.create_order(
                rules.symbol, "market", intent.side.value, float(sized.volume), None,
                {"clientOrderId": intent.client_order_id, "oflags": _ORDER_FLAGS})
        except Exception as exc:
            if DUPLICATE_ORDER.search(str(exc)):
                existing = await self.lookup(intent)
                if existing is not None:
                    return existing
            raise self._venue_error(exc, pair=intent.pair) from None
        return OrderReport(
            client_order_id=intent.client_order_id,
            state=OrderState.ACKNOWLEDGED,
            exchange_order_id=order.get("id"),
            message=sized.note,
            pair=intent.pair,
            quantity=float(sized.volume),
        )

    async def lookup(self, intent: OrderIntent) -> OrderReport | None:
        await self.load_markets()
        cid = intent.client_order_id
        for endpoint, fetch in (("OpenOrders", self._exchange.fetch_open_orders),
                                ("ClosedOrders", self._exchange.fetch_closed_orders)):
            await self._limiter.acquire(endpoint)
            try:
                orders = await fetch(params={"clientOrderId": cid})
            except Exception as exc:
                raise self._venue_error(exc) from None
            # the filter is the exchange's; checking it again costs nothing and means a
            # server that ignored it can never make us report someone else's order
            matches = [o for o in orders if o.get("clientOrderId") == cid]
            if len(matches) > 1:
                log.warning("%d orders on Kraken carry client order id %s: %s", len(matches),
                            cid, ", ".join(str(o.get("id")) for o in matches))
            if matches:
                return order_report(matches[0], self._pair_by_symbol)
        return None

    async def cancel(self, intent: OrderIntent) -> OrderReport | None:
        """Cancel the order by client order id; the order as it stands afterwards (it may
        have filled first), or None if Kraken never saw it."""
        await self.load_markets()
        await self._limiter.acquire("CancelOrder", intent.pair)
        try:
            await self._exchange.cancel_order(
                "", None, {"clientOrderId": intent.client_order_id})
        except ccxt_errors.OrderNotFound:
            pass  # closed already, or never placed: the look-up below says which
        except Exception as exc:
            raise self._venue_error(exc, pair=intent.pair) from None
        return await self.lookup(intent)

    async def open_orders(self) -> list[OrderReport]:
        await self.load_markets()
        await self._limiter.acquire("OpenOrders")
        try:
            orders = await self._exchange.fetch_open_orders()
        except Exception as exc:
            raise self._venue_error(exc) from None
        return [order_report(o, self._pair_by_symbol) for o in orders]

    async def closed_orders(self, since: float) -> list[OrderReport]:
        await self.load_markets()
        await self._limiter.acquire("ClosedOrders")
        try:
            orders = await self._exchange.fetch_closed_orders(since=int(since * 1000))
        except Exception as exc:
            raise self._venue_error(exc) from None
        return [order_report(o, self._pair_by_symbol) for o in orders]

    async def balances(self) -> dict[str, float]:
        """Free balance per currency, WS v2 spelling (BTC, not XBT)."""
        await self.load_markets()
        await self._limiter.acquire("BalanceEx")
        try:
            balance = await self._exchange.fetch_balance()
        except Exception as exc:
            raise self._venue_error(exc) from None
        free = balance.get("free") or {}
        return {ws_v2_code(str(code)): float(amount)
                for code, amount in free.items() if amount is not None}

    async def close(self) -> None:
        await self._exchange.close()

    # --- helpers ------------------------------------------------------------------------

    def _venue_error(self, exc: BaseException, *, pair: str | None = None) -> VenueError:
        error = venue_error(exc, secrets=self._secrets)
        if error.error is ErrorClass.RATE_LIMIT:
            self._limiter.penalize(pair)
        return error


def _rest_base(url: str) -> str:
    if not re.match(r"^https?://[^/\s]+", url):
        raise ValueError(f"rest_url must be an http(s) URL, got {url!r}")
    return url.rstrip("/")


def _check_credentials(api_key: str, api_secret: str) -> None:
    """Clear errors for unusable credentials, naming neither value."""
    if not isinstance(api_key, str) or not api_key.strip():
        raise ValueError("the Kraken API key is empty")
    if not isinstance(api_secret, str) or not api_secret.strip():
        raise ValueError("the Kraken API secret is empty")
    try:
        base64.b64decode(api_secret, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("the Kraken API secret is not base64, as Kraken issues it") from None
