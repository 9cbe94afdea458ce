"""Trend following: EMA crossover confirmed by the MACD histogram."""

from __future__ import annotations

from dataclasses import dataclass

from novapulse.indicators import PairIndicators
from novapulse.models import Candle
from novapulse.strategies.base import BEARISH, BULLISH, Signal, clamp01


@dataclass(frozen=True, slots=True)
class EmaCrossTrend:
    name: str = "ema_cross"
    # The histogram must be at least this many ATRs the crossing's way: in sideways chop
    # the EMAs cross every swing with a histogram of a few hundredths of an ATR.
    min_hist_atr: float = 0.1
    # Histogram (in ATRs) at which the confirmation counts as full strength.
    full_hist_atr: float = 0.3

    def evaluate(self, ind: PairIndicators, candle: Candle) -> Signal | None:
        fast = ind.ema_fast
        slow = ind.ema_slow
        if fast > slow:
            if ind.prev_ema_fast <= ind.prev_ema_slow:
                return self._confirmed(ind, BULLISH)
        elif fast < slow and ind.prev_ema_fast >= ind.prev_ema_slow:
            return self._confirmed(ind, BEARISH)
        return None

    def _confirmed(self, ind: PairIndicators, direction: int) -> Signal | None:
        atr = ind.atr
        if atr <= 0.0:
            return None
        hist_atr = direction * ind.macd_hist / atr
        if hist_atr < self.min_hist_atr:
            return None
        s = ind.settings
        side, cmp = ("above", ">") if direction == BULLISH else ("below", "<")
        span = self.full_hist_atr - self.min_hist_atr
        return Signal(
            self.name, direction, 0.5 + 0.5 * clamp01((hist_atr - self.min_hist_atr) / span),
            f"EMA {s.ema_fast} crossed {side} EMA {s.ema_slow} with MACD histogram {cmp} 0 "
            f"({hist_atr:.2f} ATR)",
        )
