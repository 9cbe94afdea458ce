"""Mean reversion: close outside a Bollinger band while RSI is stretched the same way."""

from __future__ import annotations

from dataclasses import dataclass

from novapulse.indicators import PairIndicators
from novapulse.models import Candle
from novapulse.strategies.base import BEARISH, BULLISH, Signal, clamp01


@dataclass(frozen=True, slots=True)
class BollingerRsiReversion:
    name: str = "bollinger_rsi"
    oversold: float = 30.0
    overbought: float = 70.0

    def evaluate(self, ind: PairIndicators, candle: Candle) -> Signal | None:
        close = ind.close
        rsi = ind.rsi
        if close < ind.bb_lower and rsi < self.oversold:
            depth = (ind.bb_lower - close) / ind.bb_std
            strength = 0.5 + 0.25 * clamp01((self.oversold - rsi) / 15.0) + 0.25 * clamp01(depth)
            return Signal(
                self.name, BULLISH, strength,
                f"close below the lower Bollinger band with RSI {rsi:.1f} < {self.oversold:g}",
            )
        if close > ind.bb_upper and rsi > self.overbought:
            depth = (close - ind.bb_upper) / ind.bb_std
            strength = 0.5 + 0.25 * clamp01((rsi - self.overbought) / 15.0) + 0.25 * clamp01(depth)
            return Signal(
                self.name, BEARISH, strength,
                f"close above the upper Bollinger band with RSI {rsi:.1f} > {self.overbought:g}",
            )
        return None
