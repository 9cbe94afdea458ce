"""Backtests: recorded candles through the same Engine a live run uses, at full speed."""

from __future__ import annotations

import heapq
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TextIO

from novapulse.config import Config
from novapulse.engine import Engine
from novapulse.execution.paper import PaperExecutor
from novapulse.market.candle_files import load_candles
from novapulse.models import Candle, Trade
from novapulse.thoughts import ThoughtLog

ProgressCallback = Callable[[int, int], None]


@dataclass(frozen=True, slots=True)
class BacktestSummary:
    pairs: list[str]
    candles: int
    trades: int
    wins: int
    win_rate: float
    profit_factor: float | None
    max_drawdown_pct: float
    total_return_pct: float
    final_equity: float
    open_positions: int
    seconds: float
    candles_per_second: float

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def merge_by_time(series: Iterable[list[Candle]]) -> Iterator[Candle]:
    """Candles of every file in time order; candles closing together go in pair order, so the
    order of the files never changes a result."""
    return heapq.merge(*series, key=lambda c: (c.ts, c.pair))


def summarize(engine: Engine, trades: list[Trade], candles: int, seconds: float,
              max_drawdown_pct: float, pairs: list[str]) -> BacktestSummary:
    closed = [t for t in trades if t.pnl is not None]
    gains = sum(t.pnl for t in closed if t.pnl is not None and t.pnl > 0)
    losses = -sum(t.pnl for t in closed if t.pnl is not None and t.pnl <= 0)
    wins = sum(1 for t in closed if t.pnl is not None and t.pnl > 0)
    start = engine.config.trading.starting_bankroll
    equity = engine.equity()
    return BacktestSummary(
        pairs=pairs,
        candles=candles,
        trades=len(closed),
        wins=wins,
        win_rate=round(wins / len(closed), 4) if closed else 0.0,
        profit_factor=round(gains / losses, 4) if losses > 0 else None,
        max_drawdown_pct=round(max_drawdown_pct, 4),
        total_return_pct=round((equity - start) / start * 100.0, 4),
        final_equity=round(equity, 6),
        open_positions=len(engine.positions),
        seconds=round(seconds, 4),
        candles_per_second=round(candles / seconds, 1) if seconds > 0 else 0.0,
    )


def run_backtest(config: Config, candles_by_file: list[list[Candle]],
                 progress: ProgressCallback | None = None) -> tuple[BacktestSummary, list[Trade]]:
    thoughts = ThoughtLog(config.dashboard.thought_feed_max, keep_unsaved=False)
    engine = Engine(config, PaperExecutor(config.trading.fee_rate, config.trading.slippage_bps),
                    thoughts)
    total = sum(len(c) for c in candles_by_file)
    pairs = sorted({c[0].pair for c in candles_by_file if c})
    trades: list[Trade] = []
    peak = engine.equity()
    max_dd = 0.0
    step = max(1, total // 100)
    on_candle = engine.on_candle
    started = time.perf_counter()
    count = 0
    for candle in merge_by_time(candles_by_file):
        executions = on_candle(candle)
        for execution in executions:
            if execution.trade.exit_time is not None:
                trades.append(execution.trade)
        count += 1
        # Flat and no fill: equity is the unchanged cash, nothing to mark.
        if engine.positions or executions:
            equity = engine.equity()
            if equity > peak:
                peak = equity
            elif peak > 0 and (peak - equity) / peak > max_dd:
                max_dd = (peak - equity) / peak
        if progress is not None and count % step == 0:
            progress(count, total)
    elapsed = time.perf_counter() - started
    if progress is not None:
        progress(count, total)
    return summarize(engine, trades, count, elapsed, max_dd * 100.0, pairs), trades


class ProgressBar:
    """A plain progress bar on stderr; silent when stderr is not a terminal unless forced."""

    def __init__(self, stream: TextIO = sys.stderr, width: int = 40, force: bool = False) -> None:
        self.stream = stream
        self.width = width
        self.enabled = force or stream.isatty()
        self.started = time.perf_counter()

    def __call__(self, done: int, total: int) -> None:
        if not self.enabled or total <= 0:
            return
        filled = int(self.width * done / total)
        rate = done / max(time.perf_counter() - self.started, 1e-9)
        self.stream.write(f"\r[{'#' * filled}{'.' * (self.width - filled)}] "
                          f"{done}/{total} candles  {rate:,.0f}/s")
        if done >= total:
            self.stream.write("\n")
        self.stream.flush()


def load_files(paths: list[Path]) -> list[list[Candle]]:
    return [load_candles(path) for path in paths]


def format_summary(summary: BacktestSummary) -> str:
    pf = "n/a" if summary.profit_factor is None else f"{summary.profit_factor:.2f}"
    return "\n".join([
        f"pairs           {', '.join(summary.pairs)}",
        f"candles         {summary.candles}",
        f"trades          {summary.trades} ({summary.open_positions} still open)",
        f"win rate        {summary.win_rate * 100:.1f}%",
        f"profit factor   {pf}",
        f"max drawdown    {summary.max_drawdown_pct:.2f}%",
        f"total return    {summary.total_return_pct:+.2f}%",
        f"final equity    {summary.final_equity:,.2f}",
        f"speed           {summary.candles_per_second:,.0f} candles/s "
        f"({summary.seconds:.2f} s)",
    ])
