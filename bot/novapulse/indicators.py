"""Incremental indicators: O(1) work per new candle, plain Python floats throughout.

Each indicator's `update` returns its main value, NaN until it has enough history.
`PairIndicators` owns one set per pair and is what the strategies read.

Definitions (shared with `indicators_reference`, which must agree to 1e-9):

- EMA seeds with the SMA of its first `period` inputs, then `y += alpha * (x - y)`,
  alpha = 2 / (period + 1). Wilder smoothing is the same with alpha = 1 / period.
- RSI: Wilder averages of gains and losses over close-to-close changes,
  `100 * avg_gain / (avg_gain + avg_loss)`, 50 when both are zero.
- ATR: Wilder average of the true range; the first candle's true range is high - low.
- Bollinger / z-score: population standard deviation (ddof=0) of the last `period` closes.
  A window whose values are all equal has std exactly 0 and z-score 0.
- Donchian: highest high / lowest low of the last `period` candles, current one included.
- ROC: `100 * (close - close[period ago]) / close[period ago]`.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

from novapulse.models import Candle

NAN = math.nan


class SMA:
    """Simple moving average over a ring buffer with a running sum.

    The sum is recomputed exactly (math.fsum) each time the ring wraps, so rounding from
    add/remove never accumulates beyond one window's worth of updates."""

    __slots__ = ("_buf", "_count", "_i", "_sum", "period", "value")

    def __init__(self, period: int) -> None:
        if period < 1:
            raise ValueError("period must be >= 1")
        self.period = period
        self._buf = [0.0] * period
        self._i = 0
        self._count = 0
        self._sum = 0.0
        self.value = NAN

    def update(self, x: float) -> float:
        buf = self._buf
        i = self._i
        self._sum += x - buf[i]
        buf[i] = x
        i += 1
        if i == self.period:
            i = 0
            self._sum = math.fsum(buf)
        self._i = i
        if self._count < self.period:
            self._count += 1
            if self._count < self.period:
                return NAN
        value = self._sum / self.period
        self.value = value
        return value


class EMA:
    """Exponential moving average seeded with the SMA of the first `period` inputs.

    `alpha=None` means the usual 2 / (period + 1); pass 1 / period for Wilder smoothing."""

    __slots__ = ("_count", "_seed_sum", "alpha", "period", "value")

    def __init__(self, period: int, alpha: float | None = None) -> None:
        if period < 1:
            raise ValueError("period must be >= 1")
        self.period = period
        self.alpha = 2.0 / (period + 1) if alpha is None else alpha
        self._count = 0
        self._seed_sum = 0.0
        self.value = NAN

    def update(self, x: float) -> float:
        if self._count >= self.period:
            value = self.value + self.alpha * (x - self.value)
            self.value = value
            return value
        self._count += 1
        self._seed_sum += x
        if self._count < self.period:
            return NAN
        value = self._seed_sum / self.period
        self.value = value
        return value


def wilder(period: int) -> EMA:
    return EMA(period, alpha=1.0 / period)


class RSI:
    """Relative strength index with Wilder smoothing of gains and losses."""

    __slots__ = ("_gain", "_loss", "_prev", "period", "value")

    def __init__(self, period: int = 14) -> None:
        self.period = period
        self._gain = wilder(period)
        self._loss = wilder(period)
        self._prev = NAN
        self.value = NAN

    def update(self, close: float) -> float:
        prev = self._prev
        self._prev = close
        if prev != prev:  # first close: no change yet
            return NAN
        change = close - prev
        if change > 0.0:
            gain = self._gain.update(change)
            loss = self._loss.update(0.0)
        else:
            gain = self._gain.update(0.0)
            loss = self._loss.update(-change)
        total = gain + loss
        if total != total:
            return NAN
        value = 100.0 * gain / total if total > 0.0 else 50.0
        self.value = value
        return value

    @property
    def avg_gain(self) -> float:
        return self._gain.value

    @property
    def avg_loss(self) -> float:
        return self._loss.value


class ATR:
    """Average true range, Wilder-smoothed."""

    __slots__ = ("_avg", "_prev_close", "period", "value")

    def __init__(self, period: int = 14) -> None:
        self.period = period
        self._avg = wilder(period)
        self._prev_close = NAN
        self.value = NAN

    def update(self, high: float, low: float, close: float) -> float:
        prev_close = self._prev_close
        self._prev_close = close
        true_range = high - low
        if prev_close == prev_close:
            if high - prev_close > true_range:
                true_range = high - prev_close
            if prev_close - low > true_range:
                true_range = prev_close - low
        value = self._avg.update(true_range)
        self.value = value
        return value


class RollingStats:
    """Rolling mean and population standard deviation over the last `period` values.

    Numerically stable for tiny prices (BTC-quoted alts around 1e-5..1e-1): the sums are kept
    of values minus a shift K near the data, so the sum of squares never cancels
    catastrophically, and K plus both sums are recomputed exactly every time the ring wraps.
    A run of identical values as long as the window gives std exactly 0."""

    __slots__ = ("_buf", "_count", "_i", "_same_run", "_shift", "_sum", "_sum_sq", "mean",
                 "period", "std")

    def __init__(self, period: int) -> None:
        if period < 1:
            raise ValueError("period must be >= 1")
        self.period = period
        self._buf = [NAN] * period
        self._i = 0
        self._count = 0
        self._shift = 0.0
        self._sum = 0.0
        self._sum_sq = 0.0
        self._same_run = 0
        self.mean = NAN
        self.std = NAN

    def update(self, x: float) -> float:
        """Add `x`, drop the oldest value; returns the std (NaN until the window is full)."""
        buf = self._buf
        i = self._i
        period = self.period
        shift = self._shift
        old = buf[i]
        self._same_run = self._same_run + 1 if x == buf[i - 1] else 0
        buf[i] = x
        i += 1
        if i == period:
            i = 0
            shift = self._rebase(x)
        else:
            d_new = x - shift
            if self._count == period:
                d_old = old - shift
                self._sum += d_new - d_old
                self._sum_sq += d_new * d_new - d_old * d_old
            else:
                self._sum += d_new
                self._sum_sq += d_new * d_new
        self._i = i
        if self._count < period:
            self._count += 1
            if self._count < period:
                return NAN
        mean_d = self._sum / period
        self.mean = shift + mean_d
        if self._same_run >= period - 1:
            self.std = 0.0
            return 0.0
        var = self._sum_sq / period - mean_d * mean_d
        std = math.sqrt(var) if var > 0.0 else 0.0
        self.std = std
        return std

    def _rebase(self, x: float) -> float:
        # Runs when the ring wraps, so the buffer is full: exact sums around the newest value.
        self._shift = x
        deltas = [v - x for v in self._buf]
        self._sum = math.fsum(deltas)
        self._sum_sq = math.fsum([d * d for d in deltas])
        return x

    def deviation(self, x: float) -> float:
        """x minus the current mean, computed without cancellation against the shift."""
        return (x - self._shift) - self._sum / self.period


class Bollinger:
    """Bollinger bands: rolling mean ± k population standard deviations."""

    __slots__ = ("_stats", "k", "lower", "mid", "period", "std", "upper")

    def __init__(self, period: int = 20, k: float = 2.0) -> None:
        self.period = period
        self.k = k
        self._stats = RollingStats(period)
        self.mid = self.upper = self.lower = self.std = NAN

    def update(self, close: float) -> float:
        """Returns the middle band."""
        stats = self._stats
        std = stats.update(close)
        if std != std:
            return NAN
        mid = stats.mean
        width = self.k * std
        self.mid = mid
        self.std = std
        self.upper = mid + width
        self.lower = mid - width
        return mid


class ZScore:
    """How many rolling standard deviations the close sits from its rolling mean (0 if flat)."""

    __slots__ = ("_stats", "period", "value")

    def __init__(self, period: int = 50) -> None:
        self.period = period
        self._stats = RollingStats(period)
        self.value = NAN

    def update(self, close: float) -> float:
        stats = self._stats
        std = stats.update(close)
        if std != std:
            return NAN
        value = stats.deviation(close) / std if std > 0.0 else 0.0
        self.value = value
        return value


class MACD:
    """MACD line (fast EMA - slow EMA), its signal EMA and the histogram."""

    __slots__ = ("_fast", "_signal", "_slow", "fast_ema", "hist", "macd", "signal", "slow_ema")

    def __init__(self, fast: int = 12, slow: int = 26, signal: int = 9) -> None:
        if fast >= slow:
            raise ValueError("MACD fast period must be shorter than the slow one")
        self._fast = EMA(fast)
        self._slow = EMA(slow)
        self._signal = EMA(signal)
        self.fast_ema = self.slow_ema = self.macd = self.signal = self.hist = NAN

    def update(self, close: float) -> float:
        """Returns the histogram."""
        fast = self._fast.update(close)
        slow = self._slow.update(close)
        self.fast_ema = fast
        self.slow_ema = slow
        if slow != slow:
            return NAN
        macd = fast - slow
        self.macd = macd
        signal = self._signal.update(macd)
        if signal != signal:
            return NAN
        hist = macd - signal
        self.signal = signal
        self.hist = hist
        return hist


class Donchian:
    """Highest high and lowest low of the last `period` candles via monotonic deques."""

    __slots__ = ("_n", "high", "high_indices", "high_values", "low", "low_indices", "low_values",
                 "period")

    def __init__(self, period: int = 20) -> None:
        self.period = period
        self._n = 0
        # Candidates for the max (min): values decreasing (increasing) from the left, with
        # the index each was seen at, so the front is the extreme and expires first.
        self.high_values: deque[float] = deque()
        self.high_indices: deque[int] = deque()
        self.low_values: deque[float] = deque()
        self.low_indices: deque[int] = deque()
        self.high = self.low = NAN

    def update(self, high: float, low: float) -> float:
        """Returns the channel high (NaN until `period` candles were seen)."""
        n = self._n
        self._n = n + 1
        expired = n - self.period
        hv, hi = self.high_values, self.high_indices
        while hv and hv[-1] <= high:
            hv.pop()
            hi.pop()
        hv.append(high)
        hi.append(n)
        if hi[0] <= expired:
            hv.popleft()
            hi.popleft()
        lv, li = self.low_values, self.low_indices
        while lv and lv[-1] >= low:
            lv.pop()
            li.pop()
        lv.append(low)
        li.append(n)
        if li[0] <= expired:
            lv.popleft()
            li.popleft()
        if expired < -1:
            return NAN
        self.low = lv[0]
        channel_high = hv[0]
        self.high = channel_high
        return channel_high


class ROC:
    """Rate of change in percent over `period` candles."""

    __slots__ = ("_buf", "_count", "_i", "period", "value")

    def __init__(self, period: int = 10) -> None:
        self.period = period
        self._buf = [NAN] * period
        self._i = 0
        self._count = 0
        self.value = NAN

    def update(self, close: float) -> float:
        buf = self._buf
        i = self._i
        then = buf[i]
        buf[i] = close
        i += 1
        self._i = 0 if i == self.period else i
        if self._count < self.period:
            self._count += 1
            return NAN
        value = 100.0 * (close - then) / then
        self.value = value
        return value


@dataclass(frozen=True, slots=True)
class IndicatorSettings:
    """Periods of every indicator a pair keeps. Defaults suit 5-minute candles."""

    ema_fast: int = 12
    ema_slow: int = 26
    macd_signal: int = 9
    rsi: int = 14
    atr: int = 14
    bollinger: int = 20
    bollinger_k: float = 2.0
    donchian: int = 20
    roc: int = 10
    zscore: int = 50
    volume: int = 20
    trend: int = 100

    @property
    def warmup_bars(self) -> int:
        """Candles needed before every value (and every `prev_` value) is defined."""
        return max(
            self.ema_slow + self.macd_signal,  # one extra for prev_macd_hist
            self.rsi + 2,
            self.atr,
            self.bollinger,
            self.donchian + 1,  # prev_donchian_* covers the candles before this one
            self.roc + 1,
            self.zscore,
            self.volume,
            self.trend,
        )


class PairIndicators:
    """Every indicator for one pair, updated together by `update(candle)`.

    Values are plain float attributes (NaN until defined); `prev_*` hold the value before
    the latest candle, for crossings and breakouts. `ready` turns True once every value
    and every `prev_*` value is defined.

    During warm-up the component indicator objects above do the work. Once they are all
    seeded their state is adopted into flat fields and a single fused step takes over: one
    method, locals only, a shared close/volume ring. It computes exactly the same
    definitions, at a fraction of the cost of a dozen method calls per candle."""

    __slots__ = (
        "_alphas", "_bb_k", "_bb_shift", "_bb_sum", "_bb_sum_sq", "_closes", "_components",
        "_high_idx", "_high_val", "_i", "_low_idx", "_low_val", "_periods", "_ring", "_same_run",
        "_trend_sum", "_volume_sum", "_volumes", "_warmup", "_z_shift", "_z_sum", "_z_sum_sq",
        "atr", "avg_gain", "avg_loss", "bb_lower", "bb_mid", "bb_std", "bb_upper", "close",
        "count", "donchian_high", "donchian_low", "ema_fast", "ema_slow", "high", "low", "macd",
        "macd_hist", "macd_signal", "pair", "prev_close", "prev_donchian_high",
        "prev_donchian_low", "prev_ema_fast", "prev_ema_slow", "prev_macd_hist", "prev_rsi",
        "ready", "roc", "rsi", "settings", "sma_trend", "ts", "volume", "volume_sma", "zscore",
    )

    def __init__(self, pair: str = "", settings: IndicatorSettings | None = None) -> None:
        s = settings or IndicatorSettings()
        self.pair = pair
        self.settings = s
        self._warmup = s.warmup_bars
        self._components = _Components(s)
        self._ring = max(s.trend, s.zscore, s.bollinger, s.roc, s.volume)
        self._closes = [NAN] * self._ring
        self._volumes = [NAN] * self._ring
        self._i = 0
        self._same_run = 0
        self._periods = (s.bollinger, s.zscore, s.roc, s.volume, s.trend, s.donchian)
        self._alphas = (2.0 / (s.ema_fast + 1), 2.0 / (s.ema_slow + 1),
                        2.0 / (s.macd_signal + 1), 1.0 / s.rsi, 1.0 / s.atr)
        self._bb_k = s.bollinger_k
        self._bb_shift = self._bb_sum = self._bb_sum_sq = 0.0
        self._z_shift = self._z_sum = self._z_sum_sq = 0.0
        self._trend_sum = self._volume_sum = 0.0
        self._high_val: deque[float] = deque()
        self._high_idx: deque[int] = deque()
        self._low_val: deque[float] = deque()
        self._low_idx: deque[int] = deque()
        self.count = 0
        self.ready = False
        self.ts = 0
        self.close = self.high = self.low = self.volume = self.prev_close = NAN
        self.ema_fast = self.ema_slow = self.prev_ema_fast = self.prev_ema_slow = NAN
        self.macd = self.macd_signal = self.macd_hist = self.prev_macd_hist = NAN
        self.rsi = self.prev_rsi = self.avg_gain = self.avg_loss = self.atr = NAN
        self.bb_mid = self.bb_upper = self.bb_lower = self.bb_std = NAN
        self.donchian_high = self.donchian_low = NAN
        self.prev_donchian_high = self.prev_donchian_low = NAN
        self.roc = self.zscore = self.volume_sma = self.sma_trend = NAN

    @property
    def warmup_bars(self) -> int:
        return self._warmup

    def update(self, candle: Candle) -> None:
        if self.ready:
            self._step(candle.high, candle.low, candle.close, candle.volume)
        else:
            self._warm_step(candle.high, candle.low, candle.close, candle.volume)
        self.ts = candle.ts

    def _push_ring(self, close: float, volume: float) -> None:
        i = self._i
        self._same_run = self._same_run + 1 if close == self._closes[i - 1] else 0
        self._closes[i] = close
        self._volumes[i] = volume
        self._i = 0 if i + 1 == self._ring else i + 1

    def _warm_step(self, high: float, low: float, close: float, volume: float) -> None:
        parts = self._components
        parts.update(high, low, close, volume)
        self._push_ring(close, volume)
        self.prev_close = self.close
        self.high, self.low, self.close, self.volume = high, low, close, volume
        self.prev_ema_fast, self.prev_ema_slow = self.ema_fast, self.ema_slow
        self.prev_macd_hist, self.prev_rsi = self.macd_hist, self.rsi
        self.prev_donchian_high, self.prev_donchian_low = self.donchian_high, self.donchian_low
        macd = parts.macd
        self.ema_fast, self.ema_slow = macd.fast_ema, macd.slow_ema
        self.macd, self.macd_signal, self.macd_hist = macd.macd, macd.signal, macd.hist
        self.rsi = parts.rsi.value
        self.avg_gain, self.avg_loss = parts.rsi.avg_gain, parts.rsi.avg_loss
        self.atr = parts.atr.value
        bands = parts.bollinger
        self.bb_mid, self.bb_upper, self.bb_lower = bands.mid, bands.upper, bands.lower
        self.bb_std = bands.std
        self.donchian_high, self.donchian_low = parts.donchian.high, parts.donchian.low
        self.roc = parts.roc.value
        self.zscore = parts.zscore.value
        self.volume_sma = parts.volume.value
        self.sma_trend = parts.trend.value
        self.count += 1
        if self.count >= self._warmup:
            self._adopt_warm_state()

    def _window(self, values: list[float], period: int) -> list[float]:
        i = self._i
        return [values[i - k] for k in range(1, period + 1)]

    def _rebase(self) -> None:
        """Exact sums of every window, around the newest close (see RollingStats)."""
        bb_period, z_period, _roc, volume_period, trend_period, _don = self._periods
        close = self.close
        bb = [v - close for v in self._window(self._closes, bb_period)]
        z = [v - close for v in self._window(self._closes, z_period)]
        self._bb_shift = self._z_shift = close
        self._bb_sum, self._bb_sum_sq = math.fsum(bb), math.fsum([d * d for d in bb])
        self._z_sum, self._z_sum_sq = math.fsum(z), math.fsum([d * d for d in z])
        self._trend_sum = math.fsum(self._window(self._closes, trend_period))
        self._volume_sum = math.fsum(self._window(self._volumes, volume_period))

    def _adopt_warm_state(self) -> None:
        channel = self._components.donchian
        self._high_val, self._high_idx = channel.high_values, channel.high_indices
        self._low_val, self._low_idx = channel.low_values, channel.low_indices
        self._rebase()
        self.ready = True

    def _step(self, high: float, low: float, close: float, volume: float) -> None:
        a_fast, a_slow, a_signal, a_rsi, a_atr = self._alphas
        bb_p, z_p, roc_p, volume_p, trend_p, don_p = self._periods
        prev_close = self.close
        self.prev_close = prev_close
        self.high = high
        self.low = low
        self.close = close
        self.volume = volume

        ema_fast = self.ema_fast
        ema_slow = self.ema_slow
        self.prev_ema_fast = ema_fast
        self.prev_ema_slow = ema_slow
        ema_fast += a_fast * (close - ema_fast)
        ema_slow += a_slow * (close - ema_slow)
        macd = ema_fast - ema_slow
        signal = self.macd_signal
        signal += a_signal * (macd - signal)
        self.ema_fast = ema_fast
        self.ema_slow = ema_slow
        self.macd = macd
        self.macd_signal = signal
        self.prev_macd_hist = self.macd_hist
        self.macd_hist = macd - signal

        change = close - prev_close
        gain = self.avg_gain
        loss = self.avg_loss
        if change > 0.0:
            gain += a_rsi * (change - gain)
            loss += a_rsi * (0.0 - loss)
        else:
            gain += a_rsi * (0.0 - gain)
            loss += a_rsi * (-change - loss)
        self.avg_gain = gain
        self.avg_loss = loss
        self.prev_rsi = self.rsi
        total = gain + loss
        self.rsi = 100.0 * gain / total if total > 0.0 else 50.0

        true_range = high - low
        if high - prev_close > true_range:
            true_range = high - prev_close
        if prev_close - low > true_range:
            true_range = prev_close - low
        atr = self.atr
        self.atr = atr + a_atr * (true_range - atr)

        closes = self._closes
        volumes = self._volumes
        i = self._i
        same_run = self._same_run + 1 if close == prev_close else 0
        self._same_run = same_run
        old_bb = closes[i - bb_p]
        old_z = closes[i - z_p]
        then = closes[i - roc_p]
        old_trend = closes[i - trend_p]
        old_volume = volumes[i - volume_p]
        closes[i] = close
        volumes[i] = volume

        self.roc = 100.0 * (close - then) / then
        trend_sum = self._trend_sum + (close - old_trend)
        self._trend_sum = trend_sum
        self.sma_trend = trend_sum / trend_p
        volume_sum = self._volume_sum + (volume - old_volume)
        self._volume_sum = volume_sum
        self.volume_sma = volume_sum / volume_p

        shift = self._bb_shift
        d_new = close - shift
        d_old = old_bb - shift
        bb_sum = self._bb_sum + (d_new - d_old)
        bb_sum_sq = self._bb_sum_sq + (d_new * d_new - d_old * d_old)
        self._bb_sum = bb_sum
        self._bb_sum_sq = bb_sum_sq
        mean_d = bb_sum / bb_p
        var = bb_sum_sq / bb_p - mean_d * mean_d
        std = math.sqrt(var) if var > 0.0 and same_run < bb_p - 1 else 0.0
        mid = shift + mean_d
        width = self._bb_k * std
        self.bb_mid = mid
        self.bb_std = std
        self.bb_upper = mid + width
        self.bb_lower = mid - width

        shift = self._z_shift
        d_new = close - shift
        d_old = old_z - shift
        z_sum = self._z_sum + (d_new - d_old)
        z_sum_sq = self._z_sum_sq + (d_new * d_new - d_old * d_old)
        self._z_sum = z_sum
        self._z_sum_sq = z_sum_sq
        mean_d = z_sum / z_p
        var = z_sum_sq / z_p - mean_d * mean_d
        if var > 0.0 and same_run < z_p - 1:
            self.zscore = (d_new - mean_d) / math.sqrt(var)
        else:
            self.zscore = 0.0

        n = self.count
        expired = n - don_p
        hv = self._high_val
        hi = self._high_idx
        while hv and hv[-1] <= high:
            hv.pop()
            hi.pop()
        hv.append(high)
        hi.append(n)
        if hi[0] <= expired:
            hv.popleft()
            hi.popleft()
        lv = self._low_val
        li = self._low_idx
        while lv and lv[-1] >= low:
            lv.pop()
            li.pop()
        lv.append(low)
        li.append(n)
        if li[0] <= expired:
            lv.popleft()
            li.popleft()
        self.prev_donchian_high = self.donchian_high
        self.prev_donchian_low = self.donchian_low
        self.donchian_high = hv[0]
        self.donchian_low = lv[0]

        self.count = n + 1
        i += 1
        if i == self._ring:
            self._i = 0
            self._rebase()
        else:
            self._i = i


class _Components:
    """The standalone indicators PairIndicators runs during warm-up."""

    __slots__ = ("atr", "bollinger", "donchian", "macd", "roc", "rsi", "trend", "volume",
                 "zscore")

    def __init__(self, s: IndicatorSettings) -> None:
        self.macd = MACD(s.ema_fast, s.ema_slow, s.macd_signal)
        self.rsi = RSI(s.rsi)
        self.atr = ATR(s.atr)
        self.bollinger = Bollinger(s.bollinger, s.bollinger_k)
        self.donchian = Donchian(s.donchian)
        self.roc = ROC(s.roc)
        self.zscore = ZScore(s.zscore)
        self.volume = SMA(s.volume)
        self.trend = SMA(s.trend)

    def update(self, high: float, low: float, close: float, volume: float) -> None:
        self.macd.update(close)
        self.rsi.update(close)
        self.atr.update(high, low, close)
        self.bollinger.update(close)
        self.donchian.update(high, low)
        self.roc.update(close)
        self.zscore.update(close)
        self.volume.update(volume)
        self.trend.update(close)
