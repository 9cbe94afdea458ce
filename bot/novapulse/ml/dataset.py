"""Features and outcomes from recorded candles: the same engine a live run uses, with the
confidence model attached, over candle files at full speed.

For collecting training data the risk rules that stop trading for the rest of a file (the
consecutive-loss and drawdown auto-pauses, the daily loss limit, risk of ruin) are relaxed
(`research_config`): a label is the outcome of a signal, and a backtest that stops trading
after its 19th trade teaches nothing about the other 95 % of the span. Sizing, stops, fees
and slippage stay as configured."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from novapulse.backtest import BacktestSummary, merge_by_time, summarize
from novapulse.config import Config
from novapulse.engine import ConfidenceModel, Engine
from novapulse.execution.paper import PaperExecutor
from novapulse.ml.confidence import ModelConfidence
from novapulse.models import Candle, Trade
from novapulse.thoughts import ThoughtLog


@dataclass(frozen=True, slots=True)
class Sample:
    trade_id: str
    pair: str
    entry_time: float
    features: dict[str, float]
    label: float  # net return of the trade; > 0 is a win


@dataclass(slots=True)
class Run:
    summary: BacktestSummary
    trades: list[Trade]
    samples: list[Sample] = field(default_factory=list)


def research_config(config: Config | None = None) -> Config:
    """`config` with the span-ending risk rules relaxed (see the module's doc)."""
    base = config or Config()
    risk = base.risk.model_copy(update={
        "max_consecutive_losses": 100, "max_drawdown_pct": 100.0, "max_daily_loss_pct": 100.0,
        "risk_of_ruin_threshold": 1.0, "max_open_positions": 100,
    })
    return base.model_copy(update={"risk": risk})


def run(config: Config, candles_by_file: Sequence[list[Candle]],
        model: ConfidenceModel | None = None, warmup: Sequence[list[Candle]] = ()) -> Run:
    """One backtest; with `model`, its features and labels as samples. Candles in `warmup`
    only fill the indicators (the walk-forward's later half starts warm)."""
    engine = Engine(config, PaperExecutor(config.trading.fee_rate, config.trading.slippage_bps),
                    ThoughtLog(config.dashboard.thought_feed_max, keep_unsaved=False))
    engine.confidence_model = model
    for candle in merge_by_time(list(warmup)):
        engine.warm_up(candle)
    pairs = sorted({c[0].pair for c in candles_by_file if c})
    trades: list[Trade] = []
    peak = engine.equity()
    max_dd = 0.0
    count = 0
    started = time.perf_counter()
    for candle in merge_by_time(list(candles_by_file)):
        executions = engine.on_candle(candle)
        for execution in executions:
            if execution.trade.exit_time is not None:
                trades.append(execution.trade)
        count += 1
        if engine.positions or executions:
            equity = engine.equity()
            if equity > peak:
                peak = equity
            elif peak > 0 and (peak - equity) / peak > max_dd:
                max_dd = (peak - equity) / peak
    elapsed = time.perf_counter() - started
    result = Run(summarize(engine, trades, count, elapsed, max_dd * 100.0, pairs), trades)
    if isinstance(model, ModelConfidence):
        by_id = {t.trade_id: t for t in trades}
        for trade_id, features, label in model.drain():
            trade = by_id.get(trade_id)
            if label is not None and trade is not None:
                result.samples.append(Sample(trade_id, trade.pair, trade.entry_time,
                                             features, label))
        result.samples.sort(key=lambda s: (s.entry_time, s.pair))
    return result


def collect(config: Config, candles_by_file: Sequence[list[Candle]],
            warmup: Sequence[list[Candle]] = ()) -> Run:
    """Training samples from the files (research config, no model acting)."""
    cfg = research_config(config)
    recorder = ModelConfidence(cfg.ml.model_copy(update={"enabled": True}),
                               cfg.risk.min_confidence, learner=False)
    return run(cfg, candles_by_file, recorder, warmup)


def split_by_time(candles_by_file: Sequence[list[Candle]], fraction: float
                  ) -> tuple[list[list[Candle]], list[list[Candle]]]:
    """Each file cut at the same market time: the first `fraction` of the overall span, and
    the rest."""
    starts = [c[0].ts for c in candles_by_file if c]
    ends = [c[-1].ts for c in candles_by_file if c]
    cut = min(starts) + (max(ends) - min(starts)) * fraction
    early = [[c for c in candles if c.ts < cut] for candles in candles_by_file]
    late = [[c for c in candles if c.ts >= cut] for candles in candles_by_file]
    return early, late
