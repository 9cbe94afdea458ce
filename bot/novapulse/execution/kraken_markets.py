"""Kraken's markets as ccxt loads them → the rules an order must meet, keyed by WS v2 pair names.

Three spellings of one pair: Kraken's REST API says `XETHXXBT` (id) and `ETH/XBT` (its
`wsname`), ccxt says `ETH/BTC` (it maps XBT to BTC), and WS v2 — the bot's spelling — says
`ETH/BTC`. We key by the WS v2 name derived from Kraken's own `wsname`, so the mapping holds
even where ccxt's renaming of a currency differs from WS v2's.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from novapulse.execution.precision import PairRules

# Where Kraken's REST codes differ from WS v2's.
_WS_V2_CODES = {"XBT": "BTC", "XDG": "DOGE"}


def ws_v2_code(code: str) -> str:
    return _WS_V2_CODES.get(code, code)


def ws_v2_pair(rest_wsname: str) -> str:
    base, _, quote = rest_wsname.partition("/")
    return f"{ws_v2_code(base)}/{ws_v2_code(quote)}"


def pair_rules(markets: Mapping[str, Mapping[str, Any]]) -> dict[str, PairRules]:
    """Rules per WS v2 pair for every spot market ccxt loaded."""
    rules: dict[str, PairRules] = {}
    for symbol, market in markets.items():
        if not market.get("spot", True):
            continue
        wsname = market.get("wsId") or symbol
        pair = ws_v2_pair(str(wsname))
        limits = market.get("limits") or {}
        step = (market.get("precision") or {}).get("amount")
        if step is None:
            continue  # a market without a lot precision cannot be traded safely
        rules[pair] = PairRules(
            pair=pair,
            symbol=symbol,
            quote=pair.partition("/")[2],
            volume_step=_decimal(step),
            min_volume=_decimal((limits.get("amount") or {}).get("min") or 0),
            min_cost=_decimal((limits.get("cost") or {}).get("min") or 0),
        )
    return rules


def _decimal(value: Any) -> Decimal:
    return Decimal(repr(value)) if isinstance(value, float) else Decimal(str(value))
