"""Breakout: close beyond the previous Donchian channel, by a margin of ATR, on volume."""

from __future__ import annotations

from dataclasses import dataclass

from novapulse.indicators import PairIndicators
from novapulse.models import Candle
from novapulse.strategies.base import BEARISH, BULLISH, Signal, clamp01


@dataclass(frozen=True, slots=True)
class DonchianBreakout:
    name: str = "donchian_breakout"
    # A close must clear the channel by this many ATRs: hairline breaks mostly fail.
    margin_atr: float = 0.1
    # Entries need volume this many times its average; exits do not wait for volume.
    volume_factor: float = 1.5

    def evaluate(self, ind: PairIndicators, candle: Candle) -> Signal | None:
        close = ind.close
        atr = ind.atr
        margin = self.margin_atr * atr
        channel_high = ind.prev_donchian_high
        if close > channel_high + margin:
            volume_ratio = ind.volume / ind.volume_sma if ind.volume_sma > 0.0 else 0.0
            if volume_ratio < self.volume_factor:
                return None
            strength = (0.5 + 0.25 * clamp01((close - channel_high) / atr)
                        + 0.25 * clamp01(volume_ratio / self.volume_factor - 1.0))
            return Signal(
                self.name, BULLISH, strength,
                f"close broke above the {ind.settings.donchian}-candle high "
                f"on {volume_ratio:.1f}x average volume",
            )
        channel_low = ind.prev_donchian_low
        if close < channel_low - margin:
            return Signal(
                self.name, BEARISH, 0.5 + 0.5 * clamp01((channel_low - close) / atr),
                f"close broke below the {ind.settings.donchian}-candle low",
            )
        return None
