"""Real candles and a strategy that always wants in, for engine tests: the gates decide."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from novapulse.indicators import PairIndicators
from novapulse.market.candle_files import load_candles
from novapulse.models import Candle
from novapulse.strategies import BULLISH, Signal

SAMPLES = Path(__file__).resolve().parents[2] / "data" / "sample"
ETH_CANDLES = load_candles(SAMPLES / "ETH_BTC-5m.csv.gz")


@dataclass
class AlwaysBullish:
    """A real strategy that wants in on every candle: the gates alone decide."""

    name: str = "always_bullish"

    def evaluate(self, ind: PairIndicators, candle: Candle) -> Signal | None:
        return Signal(self.name, BULLISH, 1.0, "test strategy always buys")
