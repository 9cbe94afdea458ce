"""Features of one entry decision: indicator state, the strategies' votes, the ensemble's
confidence, volatility and time of day. Every value is scale-free (ratios to the price or to
ATR), so one model serves every pair. A decision whose features are not all finite yields
None: NaN and Inf never reach the store or the model."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import numpy.typing as npt

from novapulse.indicators import PairIndicators
from novapulse.models import Candle
from novapulse.strategies.ensemble import Decision

FEATURE_VERSION = 1
# Built-in strategies get one signed-strength feature each; other strategies count only in
# the vote totals.
VOTE_STRATEGIES = ("ema_cross", "bollinger_rsi", "donchian_breakout", "roc_momentum",
                   "zscore_reversion")
FEATURE_NAMES: tuple[str, ...] = (
    "confidence", "bull_votes", "bear_votes", "bull_strength",
    *(f"vote_{name}" for name in VOTE_STRATEGIES),
    "rsi", "macd_hist_atr", "ema_gap_atr", "close_ema_slow_atr", "close_trend_atr",
    "atr_pct", "bb_position", "bb_width_atr", "zscore", "roc", "donchian_position",
    "volume_ratio", "range_atr", "body_atr", "hour_sin", "hour_cos",
)
N_FEATURES = len(FEATURE_NAMES)
FloatArray = npt.NDArray[np.float64]


def _ratio(num: float, den: float, default: float = 0.0) -> float:
    return num / den if den > 0.0 and math.isfinite(den) else default


def extract(decision: Decision, ind: PairIndicators, candle: Candle) -> dict[str, float] | None:
    """The features of an entry decision, or None when any is not finite."""
    bull = [v for v in decision.votes if v.direction > 0]
    bear = [v for v in decision.votes if v.direction < 0]
    votes = dict.fromkeys(VOTE_STRATEGIES, 0.0)
    for v in decision.votes:
        if v.strategy in votes:
            votes[v.strategy] = v.direction * v.strength
    close, atr = ind.close, ind.atr
    band = ind.bb_upper - ind.bb_lower
    channel = ind.donchian_high - ind.donchian_low
    hour = (candle.close_ts % 86_400) / 3_600.0
    values = (
        decision.confidence, float(len(bull)), float(len(bear)),
        sum(v.strength for v in bull) / len(bull) if bull else 0.0,
        *votes.values(),
        ind.rsi / 100.0,
        _ratio(ind.macd_hist, atr),
        _ratio(ind.ema_fast - ind.ema_slow, atr),
        _ratio(close - ind.ema_slow, atr),
        _ratio(close - ind.sma_trend, atr),
        _ratio(atr, close) * 100.0,
        _ratio(close - ind.bb_lower, band, 0.5),
        _ratio(band, atr),
        ind.zscore,
        ind.roc,
        _ratio(close - ind.donchian_low, channel, 0.5),
        _ratio(ind.volume, ind.volume_sma, 1.0),
        _ratio(candle.high - candle.low, atr),
        _ratio(candle.close - candle.open, atr),
        math.sin(2.0 * math.pi * hour / 24.0),
        math.cos(2.0 * math.pi * hour / 24.0),
    )
    if not all(math.isfinite(x) for x in values):
        return None
    return dict(zip(FEATURE_NAMES, values, strict=True))


def vector(features: Mapping[str, float], names: Sequence[str] = FEATURE_NAMES) -> FloatArray:
    """The features in model order; ValueError when one is missing or not finite."""
    try:
        row = np.array([float(features[name]) for name in names], dtype=np.float64)
    except KeyError as exc:
        raise ValueError(f"feature {exc.args[0]!r} missing") from None
    except (TypeError, ValueError) as exc:
        raise ValueError(f"feature not a number: {exc}") from None
    if not np.all(np.isfinite(row)):
        bad = [n for n, x in zip(names, row, strict=True) if not math.isfinite(x)]
        raise ValueError(f"features not finite: {', '.join(bad)}")
    return row


def is_clean(features: Mapping[str, float], label: float | None = None) -> bool:
    """True when every feature of the model (and the label, if any) is a finite number."""
    try:
        vector(features)
    except ValueError:
        return False
    return label is None or (isinstance(label, int | float) and math.isfinite(label))
