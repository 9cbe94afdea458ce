"""Every incremental indicator against the whole-array numpy reference.

Tolerance: |incremental - reference| <= 1e-9 x level, where level is 1 for unitless values
(RSI 0..100, ROC in %, z-score) and the median |value| of the input series for price- and
volume-valued ones. For BTC-quoted prices (1e-5..1e-1) that is stricter than an absolute
1e-9; for volumes (up to ~1e6) it is 1e-9 relative.
"""

from __future__ import annotations

import math
from functools import cache
from pathlib import Path
from typing import Protocol

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.typing import NDArray

from novapulse import indicators as inc
from novapulse import indicators_reference as ref
from novapulse.indicators import IndicatorSettings, PairIndicators
from novapulse.market.candle_files import load_candles
from novapulse.models import Candle

SAMPLES = sorted((Path(__file__).parents[2] / "data" / "sample").glob("*.csv.gz"))
TOLERANCE = 1e-9

Array = NDArray[np.float64]


@cache
def sample(name: str) -> tuple[Candle, ...]:
    return tuple(load_candles(next(p for p in SAMPLES if p.name == name)))


def columns(candles: tuple[Candle, ...] | list[Candle]) -> dict[str, Array]:
    return {
        field: np.array([getattr(c, field) for c in candles])
        for field in ("high", "low", "close", "volume")
    }


def assert_matches(got: list[float] | Array, want: Array, level: float, what: str) -> None:
    got_arr = np.asarray(got, dtype=np.float64)
    assert got_arr.shape == want.shape, what
    nan_got, nan_want = np.isnan(got_arr), np.isnan(want)
    assert (nan_got == nan_want).all(), (
        f"{what}: defined from index {np.argmin(nan_got)} vs reference {np.argmin(nan_want)}"
    )
    if (~nan_want).any():
        worst = float(np.max(np.abs(got_arr[~nan_want] - want[~nan_want])))
        assert worst <= TOLERANCE * level, f"{what}: off by {worst:.3g} (level {level:.3g})"


def level_of(values: Array) -> float:
    return float(np.median(np.abs(values)))


class ScalarIndicator(Protocol):
    def update(self, x: float, /) -> float: ...


def run_scalar(indicator: ScalarIndicator, values: Array) -> list[float]:
    return [indicator.update(float(v)) for v in values]


@pytest.mark.parametrize("name", [p.name for p in SAMPLES])
def test_component_indicators_match_reference(name: str) -> None:
    col = columns(sample(name))
    close, high, low, volume = col["close"], col["high"], col["low"], col["volume"]
    price = level_of(close)
    for period in (1, 5, 20, 100):
        assert_matches(run_scalar(inc.SMA(period), close), ref.sma(close, period), price,
                       f"SMA {period}")
    assert_matches(run_scalar(inc.SMA(20), volume), ref.sma(volume, 20), level_of(volume),
                   "volume SMA 20")
    for period in (2, 12, 26):
        assert_matches(run_scalar(inc.EMA(period), close), ref.ema(close, period), price,
                       f"EMA {period}")
    assert_matches(run_scalar(inc.wilder(14), close), ref.wilder(close, 14), price, "Wilder 14")
    assert_matches(run_scalar(inc.RSI(14), close), ref.rsi(close, 14), 1.0, "RSI 14")
    assert_matches(run_scalar(inc.ROC(10), close), ref.roc(close, 10), 1.0, "ROC 10")
    for period in (20, 50):
        assert_matches(run_scalar(inc.ZScore(period), close), ref.zscore(close, period), 1.0,
                       f"z-score {period}")

    atr = inc.ATR(14)
    assert_matches([atr.update(h, lo, c) for h, lo, c in zip(high, low, close, strict=True)],
                   ref.atr(high, low, close, 14), price, "ATR 14")

    bands = inc.Bollinger(20, 2.0)
    got: dict[str, list[float]] = {"mid": [], "upper": [], "lower": [], "std": []}
    for c in close:
        got["mid"].append(bands.update(float(c)))
        got["upper"].append(bands.upper)
        got["lower"].append(bands.lower)
        got["std"].append(bands.std)
    for key, want in zip(("mid", "upper", "lower", "std"), ref.bollinger(close, 20, 2.0),
                         strict=True):
        assert_matches(got[key], want, price, f"Bollinger {key}")

    macd = inc.MACD(12, 26, 9)
    hist = [macd.update(float(c)) for c in close]
    assert_matches(hist, ref.macd(close, 12, 26, 9)[2], price, "MACD histogram")

    channel = inc.Donchian(20)
    upper = [channel.update(h, lo) for h, lo in zip(high, low, strict=True)]
    want_upper, _ = ref.donchian(high, low, 20)
    assert_matches(upper, want_upper, price, "Donchian high")


def pair_series(candles: list[Candle] | tuple[Candle, ...],
                indicator_settings: IndicatorSettings) -> dict[str, list[float]]:
    ind = PairIndicators("TEST/XBT", indicator_settings)
    names = ("ema_fast", "ema_slow", "macd", "macd_signal", "macd_hist", "rsi", "atr", "bb_mid",
             "bb_upper", "bb_lower", "bb_std", "donchian_high", "donchian_low", "roc", "zscore",
             "volume_sma", "sma_trend", "prev_donchian_high", "prev_ema_fast", "prev_rsi")
    out: dict[str, list[float]] = {n: [] for n in names}
    for candle in candles:
        ind.update(candle)
        for n in names:
            out[n].append(getattr(ind, n))
    return out


def shifted(values: Array) -> Array:
    return np.concatenate([[np.nan], values[:-1]])


def assert_pair_matches_reference(candles: list[Candle] | tuple[Candle, ...],
                                  s: IndicatorSettings) -> None:
    got = pair_series(candles, s)
    col = columns(candles)
    close, high, low, volume = col["close"], col["high"], col["low"], col["volume"]
    price = max(level_of(close), 1e-300)
    ema_fast, ema_slow = ref.ema(close, s.ema_fast), ref.ema(close, s.ema_slow)
    macd, signal, hist = ref.macd(close, s.ema_fast, s.ema_slow, s.macd_signal)
    mid, upper, lower, std = ref.bollinger(close, s.bollinger, s.bollinger_k)
    don_high, don_low = ref.donchian(high, low, s.donchian)
    rsi = ref.rsi(close, s.rsi)
    want = {
        "ema_fast": (ema_fast, price), "ema_slow": (ema_slow, price), "macd": (macd, price),
        "macd_signal": (signal, price), "macd_hist": (hist, price), "rsi": (rsi, 1.0),
        "atr": (ref.atr(high, low, close, s.atr), price), "bb_mid": (mid, price),
        "bb_upper": (upper, price), "bb_lower": (lower, price), "bb_std": (std, price),
        "donchian_high": (don_high, price), "donchian_low": (don_low, price),
        "roc": (ref.roc(close, s.roc), 1.0), "zscore": (ref.zscore(close, s.zscore), 1.0),
        "volume_sma": (ref.sma(volume, s.volume), max(level_of(volume), 1.0)),
        "sma_trend": (ref.sma(close, s.trend), price),
        "prev_donchian_high": (shifted(don_high), price),
        "prev_ema_fast": (shifted(ema_fast), price), "prev_rsi": (shifted(rsi), 1.0),
    }
    for name, (expected, level) in want.items():
        assert_matches(got[name], expected, level, name)


@pytest.mark.parametrize("name", [p.name for p in SAMPLES])
def test_pair_indicators_match_reference(name: str) -> None:
    assert_pair_matches_reference(sample(name), IndicatorSettings())


def test_pair_indicators_with_other_periods_match_reference() -> None:
    s = IndicatorSettings(ema_fast=5, ema_slow=9, macd_signal=4, rsi=7, atr=5, bollinger=10,
                          bollinger_k=2.5, donchian=7, roc=3, zscore=30, volume=12, trend=40)
    assert_pair_matches_reference(sample("ETH_BTC-5m.csv.gz")[:3000], s)


def test_ready_exactly_at_warmup_with_every_value_defined() -> None:
    candles = sample("LTC_BTC-5m.csv.gz")
    ind = PairIndicators("LTC/XBT")
    for k, candle in enumerate(candles[: ind.warmup_bars], start=1):
        ind.update(candle)
        assert ind.ready == (k == ind.warmup_bars)
    values = [getattr(ind, n) for n in PairIndicators.__slots__ if not n.startswith("_")
              and isinstance(getattr(ind, n), float)]
    assert all(math.isfinite(v) for v in values)


def test_flat_window_has_zero_std_and_zscore() -> None:
    stats, z = inc.RollingStats(5), inc.ZScore(5)
    for price in [3.1e-5, 3.3e-5, 3.2e-5] + [3.17e-5] * 5:
        stats.update(price)
        z.update(price)
    assert stats.std == 0.0
    assert z.value == 0.0
    assert stats.mean == pytest.approx(3.17e-5, rel=1e-12)


def test_donchian_window_excludes_expired_extremes() -> None:
    channel = inc.Donchian(3)
    for high, low in [(10, 1), (5, 4), (6, 3), (7, 5)]:
        channel.update(high, low)
    assert (channel.high, channel.low) == (7, 3)


ticks = st.lists(st.integers(min_value=-3, max_value=3), min_size=1, max_size=400)


@settings(max_examples=40, deadline=None)
@given(moves=ticks, price=st.sampled_from([4e-5, 2.6e-3, 0.09, 1.0, 30_000.0]),
       volume_ticks=st.lists(st.integers(0, 5), min_size=1, max_size=7))
def test_pair_indicators_match_reference_on_random_walks(
    moves: list[int], price: float, volume_ticks: list[int]
) -> None:
    """Random walks on a price grid: plenty of flat runs, repeated highs and ring wraps."""
    tick = price * 1e-4
    candles, level = [], price
    for k, move in enumerate(moves):
        opened, level = level, max(level + move * tick, tick)
        volume = float(volume_ticks[k % len(volume_ticks)] * 10)
        candles.append(Candle("X/XBT", k * 60, opened, max(opened, level) + tick * (k % 2),
                              min(opened, level), level, volume, 60))
    s = IndicatorSettings(ema_fast=3, ema_slow=6, macd_signal=3, rsi=4, atr=3, bollinger=5,
                          donchian=4, roc=2, zscore=8, volume=3, trend=12)
    assert_pair_matches_reference(candles, s)
