"""Trend following: EMA crossover confirmed by the MACD histogram."""

from __future__ import annotations

from dataclasses import dataclass

from novapulse.indicators import PairIndicators
from novapulse.models import Candle
from novapulse.strategies.base import BEARISH, BULLISH, Signal, clamp01


@dataclass(frozen=True, slots=True)
class EmaCrossTrend:
    name: str = "ema_cross"
    # Histogram (in ATRs) at which the confirmation counts as full strength.
    full_strength_hist_atr: float = 0.1

    def evaluate(self, ind: PairIndicators, candle: Candle) -> Signal | None:
        fast = ind.ema_fast
        slow = ind.ema_slow
        prev_fast = ind.prev_ema_fast
        prev_slow = ind.prev_ema_slow
        if fast > slow:
            if prev_fast <= prev_slow and ind.macd_hist > 0.0:
                return self._signal(ind, BULLISH, "above", ">")
        elif fast < slow and prev_fast >= prev_slow and ind.macd_hist < 0.0:
            return self._signal(ind, BEARISH, "below", "<")
        return None

    def _signal(self, ind: PairIndicators, direction: int, side: str, cmp: str) -> Signal:
        confirmation = abs(ind.macd_hist) / (self.full_strength_hist_atr * ind.atr)
        s = ind.settings
        return Signal(
            self.name, direction, 0.5 + 0.5 * clamp01(confirmation),
            f"EMA {s.ema_fast} crossed {side} EMA {s.ema_slow} with MACD histogram {cmp} 0",
        )
