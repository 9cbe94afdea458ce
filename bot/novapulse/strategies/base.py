"""What a strategy is and what it says."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from novapulse.indicators import PairIndicators
from novapulse.models import Candle

BULLISH = 1
BEARISH = -1
NEUTRAL = 0


@dataclass(frozen=True, slots=True)
class Signal:
    """One strategy's vote on one candle. Spot, long only: +1 = buy / enter,
    -1 = sell / exit, 0 = neutral. `strength` is in 0..1."""

    strategy: str
    direction: int
    strength: float
    reason: str


class Strategy(Protocol):
    """Reads the pair's indicators after `candle` was added; returns a vote or None.

    Strategies keep no per-pair state (anything they need from the past is a `prev_*`
    indicator), so one instance serves every pair. They are only asked once `ind.ready`."""

    @property
    def name(self) -> str: ...

    def evaluate(self, ind: PairIndicators, candle: Candle) -> Signal | None: ...


def clamp01(value: float) -> float:
    return 0.0 if value < 0.0 else 1.0 if value > 1.0 else value
