"""A small local Kraken REST API: the public market-data endpoints ccxt needs, from candle files.

Serves `/0/public/Time`, `/0/public/Assets`, `/0/public/AssetPairs` and `/0/public/OHLC`
in Kraken's response shapes, so `ccxt.kraken` pointed at it (`urls['api']['public']`)
loads markets and fetches OHLC as against the real API. Like Kraken, OHLC serves only the
newest 720 candles up to now, the still-open one last and always, whatever `since` asks:
older history cannot be paged. `fail_requests()` makes every
request answer HTTP 503 `EService:Unavailable`. Endpoints are registered in `_routes`, so
private ones (AddOrder, ...) and per-endpoint error injection can be added next to them.
"""

from __future__ import annotations

import time
from bisect import bisect_right
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web

from novapulse.market.candle_files import describe_file, load_candles
from novapulse.models import Candle

OHLC_MAX_ROWS = 720
# Kraken's legacy asset ids carry an X (crypto) or Z (fiat) prefix; newer assets do not.
_LEGACY_CRYPTO = {"XBT", "ETH", "LTC", "XMR", "XLM", "ETC", "XRP", "ZEC", "REP", "MLN", "XDG"}
_LEGACY_FIAT = {"USD", "EUR", "GBP", "CAD", "JPY"}
# The REST API still calls bitcoin XBT where WS v2 says BTC.
_REST_CODES = {"BTC": "XBT"}

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def asset_id(code: str) -> str:
    if code in _LEGACY_CRYPTO:
        return "X" + code
    if code in _LEGACY_FIAT:
        return "Z" + code
    return code


@dataclass(frozen=True, slots=True)
class EmulatedPair:
    wsname: str  # "ETH/XBT"
    base: str
    quote: str
    candles: list[Candle]

    @property
    def altname(self) -> str:
        return self.base + self.quote

    @property
    def pair_id(self) -> str:
        base_id, quote_id = asset_id(self.base), asset_id(self.quote)
        if base_id != self.base and quote_id != self.quote:
            return base_id + quote_id
        return self.altname

    @property
    def interval_minutes(self) -> int:
        return self.candles[0].interval_s // 60


class KrakenRestEmulator:
    def __init__(
        self,
        sources: list[tuple[Path, str | None]],
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        now: Callable[[], float] | None = None,
    ) -> None:
        self.host = host
        self._requested_port = port
        self._now = now
        self.pairs: dict[str, EmulatedPair] = {}
        for path, alias in sources:
            wsname = alias or describe_file(path)[0]
            base, _, quote = (_REST_CODES.get(code, code) for code in wsname.partition("/"))
            self.pairs[wsname] = EmulatedPair(wsname, base, quote, load_candles(path, wsname))
        self.requests: list[str] = []
        self._failure: tuple[int, str] | None = None
        self._runner: web.AppRunner | None = None
        self._port: int | None = None

    # --- lifecycle --------------------------------------------------------------------

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("emulator is not started")
        return self._port

    @property
    def url(self) -> str:
        """Base URL to use as ccxt's `urls['api']['public']`."""
        return f"http://{self.host}:{self.port}"

    async def start(self) -> None:
        app = web.Application(middlewares=[self._record_and_fail])
        for method, path, handler in self._routes():
            app.router.add_route(method, path, handler)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self._requested_port)
        await site.start()
        self._port = int(self._runner.addresses[0][1])

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def _routes(self) -> list[tuple[str, str, Handler]]:
        return [
            ("GET", "/0/public/Time", self._time),
            ("GET", "/0/public/Assets", self._assets),
            ("GET", "/0/public/AssetPairs", self._asset_pairs),
            ("GET", "/0/public/OHLC", self._ohlc),
        ]

    # --- error injection --------------------------------------------------------------

    def fail_requests(self, status: int = 503, error: str = "EService:Unavailable") -> None:
        self._failure = (status, error)

    def recover(self) -> None:
        self._failure = None

    @web.middleware
    async def _record_and_fail(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        self.requests.append(request.path_qs)
        if self._failure is not None:
            status, error = self._failure
            return web.json_response({"error": [error]}, status=status)
        return await handler(request)

    # --- public endpoints -------------------------------------------------------------

    def _now_ts(self) -> float:
        return self._now() if self._now is not None else time.time()

    async def _time(self, request: web.Request) -> web.Response:
        now = int(self._now_ts())
        rfc1123 = time.strftime("%a, %d %b %y %H:%M:%S +0000", time.gmtime(now))
        return _ok({"unixtime": now, "rfc1123": rfc1123})

    async def _assets(self, request: web.Request) -> web.Response:
        codes = sorted({c for p in self.pairs.values() for c in (p.base, p.quote)})
        result = {
            asset_id(code): {
                "aclass": "currency",
                "altname": code,
                "decimals": 10,
                "display_decimals": 5,
                "status": "enabled",
            }
            for code in codes
        }
        return _ok(result)

    async def _asset_pairs(self, request: web.Request) -> web.Response:
        result = {p.pair_id: _asset_pair_info(p) for p in self.pairs.values()}
        return _ok(result)

    async def _ohlc(self, request: web.Request) -> web.Response:
        pair = self._find_pair(request.query.get("pair", ""))
        if pair is None:
            return _error("EQuery:Unknown asset pair")
        interval = request.query.get("interval", "1")
        if not interval.isdigit() or int(interval) != pair.interval_minutes:
            served = pair.interval_minutes
            return _error(f"EGeneral:Invalid arguments:interval (emulator serves {served})")
        try:
            since = float(request.query.get("since", "0"))
        except ValueError:
            return _error("EGeneral:Invalid arguments:since")
        now = self._now_ts()
        end = bisect_right(pair.candles, now, key=lambda c: c.ts)
        window = pair.candles[max(0, end - OHLC_MAX_ROWS) : end]
        rows = [c for c in window[:-1] if c.ts > since] + window[-1:]
        committed = [c for c in rows if c.ts + c.interval_s <= now]
        body: dict[str, Any] = {pair.pair_id: [_ohlc_row(c) for c in rows]}
        # `last` is the `since` that polls for newer committed candles.
        body["last"] = committed[-1].ts if committed else int(since)
        return _ok(body)

    def _find_pair(self, name: str) -> EmulatedPair | None:
        for pair in self.pairs.values():
            if name in (pair.pair_id, pair.altname, pair.wsname):
                return pair
        return None


def _asset_pair_info(pair: EmulatedPair) -> dict[str, Any]:
    return {
        "altname": pair.altname,
        "wsname": pair.wsname,
        "aclass_base": "currency",
        "base": asset_id(pair.base),
        "aclass_quote": "currency",
        "quote": asset_id(pair.quote),
        "lot": "unit",
        "cost_decimals": 8,
        "pair_decimals": 8,
        "lot_decimals": 8,
        "lot_multiplier": 1,
        "leverage_buy": [],
        "leverage_sell": [],
        "fees": [[0, 0.26]],
        "fees_maker": [[0, 0.16]],
        "fee_volume_currency": "ZUSD",
        "margin_call": 80,
        "margin_stop": 40,
        "ordermin": "0.0001",
        "costmin": "0.00002",
        "tick_size": "0.00000001",
        "status": "online",
    }


def _ohlc_row(candle: Candle) -> list[Any]:
    vwap = (candle.high + candle.low + candle.close) / 3
    return [
        candle.ts,
        f"{candle.open:.10f}",
        f"{candle.high:.10f}",
        f"{candle.low:.10f}",
        f"{candle.close:.10f}",
        f"{vwap:.10f}",
        f"{candle.volume:.8f}",
        1,
    ]


def _ok(result: dict[str, Any]) -> web.Response:
    return web.json_response({"error": [], "result": result})


def _error(message: str) -> web.Response:
    return web.json_response({"error": [message]})
