"""Momentum: a large rate of change, measured in ATRs, with RSI moving the same way."""

from __future__ import annotations

from dataclasses import dataclass

from novapulse.indicators import PairIndicators
from novapulse.models import Candle
from novapulse.strategies.base import BEARISH, BULLISH, Signal, clamp01


@dataclass(frozen=True, slots=True)
class RocMomentum:
    name: str = "roc_momentum"
    # Move over the ROC period, in ATRs: scales the threshold to each pair's volatility.
    min_move_atr: float = 3.0
    # Above this RSI the move is more likely exhausted than starting.
    max_entry_rsi: float = 75.0

    def evaluate(self, ind: PairIndicators, candle: Candle) -> Signal | None:
        roc = ind.roc
        atr_pct = 100.0 * ind.atr / ind.close
        if atr_pct <= 0.0:
            return None
        move = roc / atr_pct
        rsi = ind.rsi
        if move >= self.min_move_atr:
            if 50.0 < rsi <= self.max_entry_rsi and rsi > ind.prev_rsi:
                return Signal(
                    self.name, BULLISH, 0.5 + 0.5 * clamp01(move / self.min_move_atr - 1.0),
                    f"price rose {roc:.2f}% ({move:.1f} ATR) over {ind.settings.roc} candles "
                    f"with RSI {rsi:.1f} rising",
                )
        elif move <= -self.min_move_atr and rsi < 50.0 and rsi < ind.prev_rsi:
            return Signal(
                self.name, BEARISH, 0.5 + 0.5 * clamp01(-move / self.min_move_atr - 1.0),
                f"price fell {-roc:.2f}% ({-move:.1f} ATR) over {ind.settings.roc} candles "
                f"with RSI {rsi:.1f} falling",
            )
        return None
