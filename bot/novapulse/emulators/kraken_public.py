"""Kraken's public market-data endpoints ccxt needs, from the replayed candles.

Time, Assets, AssetPairs and OHLC in Kraken's response shapes. Like Kraken, OHLC serves only
the newest 720 candles up to now, the still-open one last and always, whatever `since` asks:
older history cannot be paged.
"""

from __future__ import annotations

import time
from decimal import Decimal
from typing import Any

from aiohttp import web

from novapulse.emulators.kraken_market import ReplayedMarket
from novapulse.emulators.kraken_pairs import EmulatedPair, asset_id
from novapulse.emulators.kraken_serving import Handler, kraken_error, kraken_result
from novapulse.models import Candle

OHLC_MAX_ROWS = 720
PUBLIC_ENDPOINTS = ("Time", "Assets", "AssetPairs", "OHLC")


class PublicApi:
    def __init__(self, market: ReplayedMarket, fee_pct: Decimal) -> None:
        self.market = market
        self.fee_pct = fee_pct

    def routes(self) -> list[tuple[str, str, Handler]]:
        return [
            ("GET", "/0/public/Time", self._time),
            ("GET", "/0/public/Assets", self._assets),
            ("GET", "/0/public/AssetPairs", self._asset_pairs),
            ("GET", "/0/public/OHLC", self._ohlc),
        ]

    async def _time(self, request: web.Request) -> web.Response:
        now = int(self.market.now())
        rfc1123 = time.strftime("%a, %d %b %y %H:%M:%S +0000", time.gmtime(now))
        return kraken_result({"unixtime": now, "rfc1123": rfc1123})

    async def _assets(self, request: web.Request) -> web.Response:
        pairs = self.market.pairs.values()
        codes = sorted({c for p in pairs for c in (p.base, p.quote)})
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
        return kraken_result(result)

    async def _asset_pairs(self, request: web.Request) -> web.Response:
        pairs = self.market.pairs.values()
        return kraken_result({p.pair_id: asset_pair_info(p, self.fee_pct) for p in pairs})

    async def _ohlc(self, request: web.Request) -> web.Response:
        pair = self.market.find_pair(request.query.get("pair", ""))
        if pair is None:
            return kraken_error("EQuery:Unknown asset pair")
        interval = request.query.get("interval", "1")
        if not interval.isdigit() or int(interval) != pair.interval_minutes:
            served = pair.interval_minutes
            return kraken_error(f"EGeneral:Invalid arguments:interval (emulator serves {served})")
        try:
            since = float(request.query.get("since", "0"))
        except ValueError:
            return kraken_error("EGeneral:Invalid arguments:since")
        now = self.market.now()
        window = self.market.candles_until_now(pair)[-OHLC_MAX_ROWS:]
        rows = [c for c in window[:-1] if c.ts > since] + window[-1:]
        committed = [c for c in rows if c.ts + c.interval_s <= now]
        body: dict[str, Any] = {pair.pair_id: [_ohlc_row(c) for c in rows]}
        # `last` is the `since` that polls for newer committed candles.
        body["last"] = committed[-1].ts if committed else int(since)
        return kraken_result(body)


def asset_pair_info(pair: EmulatedPair, fee_pct: Decimal) -> dict[str, Any]:
    rules = pair.rules
    return {
        "altname": pair.altname,
        "wsname": pair.wsname,
        "aclass_base": "currency",
        "base": asset_id(pair.base),
        "aclass_quote": "currency",
        "quote": asset_id(pair.quote),
        "lot": "unit",
        "cost_decimals": rules.cost_decimals,
        "pair_decimals": rules.pair_decimals,
        "lot_decimals": rules.lot_decimals,
        "lot_multiplier": 1,
        "leverage_buy": [],
        "leverage_sell": [],
        # The emulator charges one fee, maker or taker.
        "fees": [[0, float(fee_pct)]],
        "fees_maker": [[0, float(fee_pct)]],
        "fee_volume_currency": "ZUSD",
        "margin_call": 80,
        "margin_stop": 40,
        "ordermin": str(rules.ordermin),
        "costmin": str(rules.costmin),
        "tick_size": f"{rules.tick_size:f}",
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
