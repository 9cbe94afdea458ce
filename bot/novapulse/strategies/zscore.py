"""Statistical reversion: close far from its longer rolling mean, once RSI turns back."""

from __future__ import annotations

from dataclasses import dataclass

from novapulse.indicators import PairIndicators
from novapulse.models import Candle
from novapulse.strategies.base import BEARISH, BULLISH, Signal, clamp01


@dataclass(frozen=True, slots=True)
class ZScoreReversion:
    name: str = "zscore_reversion"
    threshold: float = 2.5
    # z beyond threshold + this counts as full strength.
    full_strength_extra: float = 1.5

    def evaluate(self, ind: PairIndicators, candle: Candle) -> Signal | None:
        z = ind.zscore
        if z <= -self.threshold:
            # Waiting for RSI to turn up avoids buying the middle of a falling knife.
            if ind.rsi > ind.prev_rsi:
                return Signal(
                    self.name, BULLISH, self._strength(-z),
                    f"close is {-z:.1f} standard deviations below its "
                    f"{ind.settings.zscore}-candle mean and RSI turned up",
                )
        elif z >= self.threshold and ind.rsi < ind.prev_rsi:
            return Signal(
                self.name, BEARISH, self._strength(z),
                f"close is {z:.1f} standard deviations above its "
                f"{ind.settings.zscore}-candle mean and RSI turned down",
            )
        return None

    def _strength(self, distance: float) -> float:
        return 0.5 + 0.5 * clamp01((distance - self.threshold) / self.full_strength_extra)
