"""Whole-array numpy versions of the incremental indicators, for backtest analysis and tests.

Same definitions as `novapulse.indicators` (see its docstring); values are NaN where the
incremental indicator has not enough history yet. The recursive averages (EMA, Wilder) are
computed block by block with a lower-triangular decay matrix, so no Python loop runs per
element and no power of the decay factor ever overflows.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from numpy.typing import ArrayLike, NDArray

Array = NDArray[np.float64]

_BLOCK = 64


def _as_array(values: ArrayLike) -> Array:
    return np.asarray(values, dtype=np.float64)


def _nan(n: int) -> Array:
    return np.full(n, np.nan)


def _smooth_from(seed: float, xs: Array, alpha: float) -> Array:
    """y_k = (1 - alpha) * y_{k-1} + alpha * xs[k], with y_{-1} = seed."""
    m = xs.size
    out = np.empty(m)
    if m == 0:
        return out
    decay = 1.0 - alpha
    lags = np.arange(_BLOCK)
    # kernel[k, j] = alpha * decay**(k - j) for j <= k: the block's response to its own inputs.
    diff = lags[:, None] - lags[None, :]
    kernel = np.where(diff >= 0, alpha * decay ** np.maximum(diff, 0), 0.0)
    carry_gain = decay ** (lags + 1.0)
    y_prev = seed
    for start in range(0, m, _BLOCK):
        block = xs[start : start + _BLOCK]
        size = block.size
        ys = kernel[:size, :size] @ block + carry_gain[:size] * y_prev
        out[start : start + size] = ys
        y_prev = float(ys[-1])
    return out


def ema(values: ArrayLike, period: int, alpha: float | None = None) -> Array:
    """EMA seeded with the mean of the first `period` values (alpha defaults to 2/(period+1))."""
    x = _as_array(values)
    a = 2.0 / (period + 1) if alpha is None else alpha
    out = _nan(x.size)
    if x.size < period:
        return out
    seed = float(x[:period].mean())
    out[period - 1] = seed
    out[period:] = _smooth_from(seed, x[period:], a)
    return out


def wilder(values: ArrayLike, period: int) -> Array:
    return ema(values, period, alpha=1.0 / period)


def _windows(x: Array, period: int) -> NDArray[np.float64]:
    return sliding_window_view(x, period)


def sma(values: ArrayLike, period: int) -> Array:
    x = _as_array(values)
    out = _nan(x.size)
    if x.size >= period:
        out[period - 1 :] = _windows(x, period).mean(axis=1)
    return out


def rolling_mean_std(values: ArrayLike, period: int) -> tuple[Array, Array]:
    """Rolling mean and population std (two-pass per window); std is 0 for a flat window."""
    x = _as_array(values)
    mean, std = _nan(x.size), _nan(x.size)
    if x.size >= period:
        win = _windows(x, period)
        mean[period - 1 :] = win.mean(axis=1)
        std[period - 1 :] = _centered(win).std(axis=1)
        std[period - 1 :][win.max(axis=1) == win.min(axis=1)] = 0.0
    return mean, std


def _centered(win: NDArray[np.float64]) -> NDArray[np.float64]:
    # Deviations from each window's newest value: exact enough that the mean of the
    # deviations carries no rounding from the (much larger) price level.
    return win - win[:, -1:]


def zscore(values: ArrayLike, period: int) -> Array:
    x = _as_array(values)
    out = _nan(x.size)
    if x.size >= period:
        dev = _centered(_windows(x, period))
        std = dev.std(axis=1)
        # The newest value's deviation from its own window's mean is minus the mean deviation.
        with np.errstate(divide="ignore", invalid="ignore"):
            z = np.where(std > 0.0, -dev.mean(axis=1) / std, 0.0)
        win = _windows(x, period)
        z[win.max(axis=1) == win.min(axis=1)] = 0.0
        out[period - 1 :] = z
    return out


def bollinger(values: ArrayLike, period: int = 20, k: float = 2.0) -> tuple[
    Array, Array, Array, Array
]:
    """(middle, upper, lower, std)."""
    mid, std = rolling_mean_std(values, period)
    return mid, mid + k * std, mid - k * std, std


def rsi(close: ArrayLike, period: int = 14) -> Array:
    c = _as_array(close)
    out = _nan(c.size)
    if c.size <= period:
        return out
    change = np.diff(c)
    avg_gain = wilder(np.where(change > 0.0, change, 0.0), period)
    avg_loss = wilder(np.where(change < 0.0, -change, 0.0), period)
    total = avg_gain + avg_loss
    with np.errstate(divide="ignore", invalid="ignore"):
        value = np.where(total > 0.0, 100.0 * avg_gain / total, 50.0)
    value[np.isnan(total)] = np.nan
    out[1:] = value
    return out


def true_range(high: ArrayLike, low: ArrayLike, close: ArrayLike) -> Array:
    h, lo, c = _as_array(high), _as_array(low), _as_array(close)
    tr = h - lo
    if c.size > 1:
        prev = c[:-1]
        tr[1:] = np.maximum.reduce([tr[1:], h[1:] - prev, prev - lo[1:]])
    return tr


def atr(high: ArrayLike, low: ArrayLike, close: ArrayLike, period: int = 14) -> Array:
    return wilder(true_range(high, low, close), period)


def macd(close: ArrayLike, fast: int = 12, slow: int = 26, signal: int = 9) -> tuple[
    Array, Array, Array
]:
    """(macd line, signal line, histogram); the line starts when the slow EMA does."""
    c = _as_array(close)
    line = ema(c, fast) - ema(c, slow)
    signal_line = _nan(c.size)
    start = slow - 1
    if c.size > start:
        signal_line[start:] = ema(line[start:], signal)
    return line, signal_line, line - signal_line


def donchian(high: ArrayLike, low: ArrayLike, period: int = 20) -> tuple[Array, Array]:
    """(highest high, lowest low) of the last `period` candles, current one included."""
    h, lo = _as_array(high), _as_array(low)
    upper, lower = _nan(h.size), _nan(lo.size)
    if h.size >= period:
        upper[period - 1 :] = _windows(h, period).max(axis=1)
        lower[period - 1 :] = _windows(lo, period).min(axis=1)
    return upper, lower


def roc(close: ArrayLike, period: int = 10) -> Array:
    c = _as_array(close)
    out = _nan(c.size)
    if c.size > period:
        then = c[:-period]
        out[period:] = 100.0 * (c[period:] - then) / then
    return out
