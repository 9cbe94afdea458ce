"""Warm-up: the last `bars` closed candles per pair from Kraken's REST OHLC, through ccxt.

Kraken's REST OHLC serves only its newest 720 candles, the still-open one last, whatever
`since` asks for: older history cannot be paged, so one call per pair is all there is and at
most 719 closed candles arrive (`trading.warmup_bars` is bounded accordingly). A warm-up is a
nicety, not a precondition: when fewer bars than asked arrive, or on any network or exchange
error, we log a warning and the indicators fill up from the live feed instead.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import ccxt.async_support as ccxt_async
from ccxt.base.errors import BaseError

from novapulse.config import KRAKEN_OHLC_MAX_ROWS
from novapulse.models import Candle

log = logging.getLogger(__name__)


async def fetch_warmup(
    pairs: list[str],
    timeframe_minutes: int,
    bars: int,
    *,
    rest_url: str | None = None,
    timeout_s: float = 10,
    now: float | None = None,
    rate_limit: bool = True,
) -> dict[str, list[Candle]]:
    """Closed candles per pair (oldest first, at most `bars`). `now` defaults to the wall
    clock; the still-open candle (`ts + interval > now`) is never returned."""
    exchange = ccxt_async.kraken({"timeout": int(timeout_s * 1000), "enableRateLimit": rate_limit})
    if rest_url:
        base = rest_url.rstrip("/")
        exchange.urls["api"] = {**exchange.urls["api"], "public": base, "private": base}
    end = time.time() if now is None else now
    result: dict[str, list[Candle]] = {}
    try:
        for pair in pairs:
            try:
                candles = await _fetch_pair(exchange, pair, timeframe_minutes, bars, end)
            except (BaseError, OSError, TimeoutError) as exc:
                log.warning(
                    "warm-up unavailable for %s: %s: %s; continuing without",
                    pair,
                    type(exc).__name__,
                    exc,
                )
                candles = []
            else:
                if len(candles) < bars:
                    log.warning(
                        "warm-up for %s: only %d of %d bars arrived (Kraken's REST OHLC serves "
                        "only its newest %d candles); the indicators fill up from the live feed",
                        pair,
                        len(candles),
                        bars,
                        KRAKEN_OHLC_MAX_ROWS,
                    )
            result[pair] = candles
    finally:
        await exchange.close()
    return result


async def _fetch_pair(
    exchange: Any, pair: str, timeframe_minutes: int, bars: int, end: float
) -> list[Candle]:
    """The newest `bars` closed candles (or fewer: all Kraken has), from one OHLC call."""
    if bars <= 0:
        return []
    interval_s = timeframe_minutes * 60
    await exchange.load_markets()
    symbol = _ccxt_symbol(exchange, pair)
    since_s = int(end) - (bars + 1) * interval_s
    rows = await exchange.fetch_ohlcv(
        symbol, f"{timeframe_minutes}m", since=since_s * 1000, limit=KRAKEN_OHLC_MAX_ROWS
    )
    closed = [_candle(pair, row, interval_s) for row in rows
              if row[0] // 1000 + interval_s <= end]
    return closed[-bars:]


def _ccxt_symbol(exchange: Any, pair: str) -> str:
    """Kraken spellings (ETH/XBT) to ccxt's unified symbol (ETH/BTC)."""
    base, _, quote = pair.partition("/")
    return f"{exchange.safe_currency_code(base)}/{exchange.safe_currency_code(quote)}"


def _candle(pair: str, row: list[Any], interval_s: int) -> Candle:
    ts_ms, o, h, low, c, v = row[:6]
    return Candle(pair, int(ts_ms) // 1000, float(o), float(h), float(low), float(c),
                  float(v or 0.0), interval_s)
