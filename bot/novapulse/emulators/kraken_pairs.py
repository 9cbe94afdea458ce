"""The pairs the emulator trades: Kraken's asset and pair naming, trading rules, candles."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

from novapulse.models import Candle

# Kraken's legacy asset ids carry an X (crypto) or Z (fiat) prefix; newer assets do not.
_LEGACY_CRYPTO = {"XBT", "ETH", "LTC", "XMR", "XLM", "ETC", "XRP", "ZEC", "REP", "MLN", "XDG"}
_LEGACY_FIAT = {"USD", "EUR", "GBP", "CAD", "JPY"}
# Kraken's taker fee at the lowest volume tier, in percent; the emulator charges it on every fill.
DEFAULT_FEE_PCT = Decimal("0.26")
# The REST API still calls bitcoin XBT where WS v2 says BTC.
REST_CODES = {"BTC": "XBT"}


def asset_id(code: str) -> str:
    if code in _LEGACY_CRYPTO:
        return "X" + code
    if code in _LEGACY_FIAT:
        return "Z" + code
    return code


def rest_code(name: str) -> str:
    """BTC, XBT or XXBT -> XBT: the code the emulator keeps balances under."""
    upper = name.strip().upper()
    upper = REST_CODES.get(upper, upper)
    if len(upper) == 4 and upper[0] in "XZ" and upper[1:] in _LEGACY_CRYPTO | _LEGACY_FIAT:
        return upper[1:]
    return upper


@dataclass(frozen=True, slots=True)
class PairRules:
    """What AssetPairs publishes and AddOrder enforces."""

    pair_decimals: int = 8
    lot_decimals: int = 8
    cost_decimals: int = 8
    ordermin: Decimal = Decimal("0.0001")
    costmin: Decimal = Decimal("0.00002")

    @property
    def tick_size(self) -> Decimal:
        return Decimal(1).scaleb(-self.pair_decimals)


@dataclass(frozen=True, slots=True)
class EmulatedPair:
    wsname: str  # "ETH/XBT"
    base: str
    quote: str
    candles: list[Candle]
    rules: PairRules = field(default_factory=PairRules)

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

    def named(self, name: str) -> bool:
        return name in (self.pair_id, self.altname, self.wsname)
