"""Trading strategies, their ensemble vote and their runtime performance book."""

from __future__ import annotations

from novapulse.strategies.base import BEARISH, BULLISH, NEUTRAL, Signal, Strategy
from novapulse.strategies.breakout import DonchianBreakout
from novapulse.strategies.ensemble import NO_SIGNAL, Decision, Ensemble
from novapulse.strategies.mean_reversion import BollingerRsiReversion
from novapulse.strategies.momentum import RocMomentum
from novapulse.strategies.performance import (
    DISABLED_MESSAGE,
    REENABLED_MESSAGE,
    GuardrailEvent,
    StrategyBook,
    StrategyStats,
)
from novapulse.strategies.trend import EmaCrossTrend
from novapulse.strategies.zscore import ZScoreReversion


def default_strategies() -> list[Strategy]:
    """One of each kind, with defaults for 5-minute BTC-quoted candles."""
    return [
        EmaCrossTrend(),
        BollingerRsiReversion(),
        DonchianBreakout(),
        RocMomentum(),
        ZScoreReversion(),
    ]


__all__ = [
    "BEARISH",
    "BULLISH",
    "DISABLED_MESSAGE",
    "NEUTRAL",
    "NO_SIGNAL",
    "REENABLED_MESSAGE",
    "BollingerRsiReversion",
    "Decision",
    "DonchianBreakout",
    "EmaCrossTrend",
    "Ensemble",
    "GuardrailEvent",
    "RocMomentum",
    "Signal",
    "Strategy",
    "StrategyBook",
    "StrategyStats",
    "ZScoreReversion",
    "default_strategies",
]
