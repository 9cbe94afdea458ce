"""An example user strategy: buy a pullback in an uptrend, sell when RSI is stretched.

Use it from a config file (paths relative to the working directory, or put the file in a
package on PYTHONPATH and write `my_package.trend_pullback:TrendPullback`):

    strategies:
      - class: "examples/strategies/trend_pullback.py:TrendPullback"
        params: {dip_rsi: 40, exit_rsi: 68}
        weight: 1.0

The contract (`novapulse.strategies.Strategy`):

- a `name` (unique in the ensemble; the thought log, `/api/v1/strategies` and the guardrail
  use it) and `evaluate(ind, candle) -> Signal | None`;
- `ind` is the pair's `novapulse.indicators.PairIndicators` after `candle` was added: plain
  float attributes (close, ema_fast, ema_slow, macd_hist, rsi, atr, bb_*, donchian_*, roc,
  zscore, volume_sma, sma_trend, ...) and their `prev_*` values for crossings. The engine asks
  only once `ind.ready`, so none is NaN;
- one instance serves every pair: keep no per-pair state (what you need from the past is a
  `prev_*` indicator). A frozen dataclass makes that plain, and its fields become `params`,
  type-checked when the config is loaded;
- a Signal is a vote: BULLISH (+1, enter), BEARISH (-1, exit an open position), with a
  strength in 0..1 and a reason a human can read in the thought log.
"""

from __future__ import annotations

from dataclasses import dataclass

from novapulse.indicators import PairIndicators
from novapulse.models import Candle
from novapulse.strategies import BEARISH, BULLISH, Signal


@dataclass(frozen=True, slots=True)
class TrendPullback:
    name: str = "trend_pullback"
    # Buy when RSI has dipped below this and turns up while the close is above the trend SMA.
    dip_rsi: float = 40.0
    # Sell (exit) when RSI rises above this.
    exit_rsi: float = 68.0

    def evaluate(self, ind: PairIndicators, candle: Candle) -> Signal | None:
        rsi, prev_rsi = ind.rsi, ind.prev_rsi
        if ind.close > ind.sma_trend and prev_rsi < self.dip_rsi < rsi:
            depth = (self.dip_rsi - prev_rsi) / self.dip_rsi
            return Signal(self.name, BULLISH, min(1.0, 0.6 + depth),
                          f"RSI turned up through {self.dip_rsi:g} above the "
                          f"{ind.settings.trend}-candle trend")
        if rsi > self.exit_rsi:
            return Signal(self.name, BEARISH, 0.6, f"RSI {rsi:.1f} > {self.exit_rsi:g}")
        return None
