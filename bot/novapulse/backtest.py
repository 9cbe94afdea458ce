"""Backtests: recorded candles through the same Engine a live run uses, at full speed.

A risk-rule auto-pause (consecutive losses, drawdown) waits for a human's review in a live run.
A backtest can model that human: with `resume_after` (seconds of market time) it lifts a
risk-rule pause that long after it began — in backtests only — and lists every pause with its
reason and duration, so one bad streak no longer ends the test of a strategy.
"""

from __future__ import annotations

import heapq
import logging
import re
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TextIO

from novapulse.config import Config
from novapulse.engine import Engine
from novapulse.execution.paper import PaperExecutor
from novapulse.market.candle_files import load_candles
from novapulse.models import Candle, Thought, Trade
from novapulse.reports import metrics
from novapulse.risk import PausedBy
from novapulse.thoughts import ThoughtLog

ProgressCallback = Callable[[int, int], None]
RESUMED_BY = "backtest --resume-after"
_DURATION = re.compile(r"(\d+(?:\.\d+)?)([smhd])")
_UNIT_SECONDS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_duration(text: str) -> float | None:
    """'4h', '90m', '1h30m', '2d', '45s' -> seconds; 'never' (or 'off') -> None."""
    spec = text.strip().lower()
    if spec in ("never", "off", "none"):
        return None
    pos = 0
    total = 0.0
    for match in _DURATION.finditer(spec):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
        pos = match.end()
    if pos != len(spec) or not spec or total <= 0:
        raise ValueError(f"'{text}' is not a duration like 4h, 90m, 1h30m, 2d or 'never'")
    return total


@dataclass(frozen=True, slots=True)
class PauseRecord:
    """One pause a backtest went through: who, why, from when to when (market time)."""

    by: str
    reason: str
    since: float
    until: float | None  # None: still held when the data ended
    lifted_by: str | None
    duration_s: float

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


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
    account_currency: str = ""
    starting_bankroll: float = 0.0
    start: float | None = None
    end: float | None = None
    buy_and_hold_pct: float | None = None
    sharpe: float | None = None
    sortino: float | None = None
    exposure_pct: float | None = None
    avg_trade_duration_s: float | None = None
    exit_reasons: dict[str, int] = field(default_factory=dict)
    per_pair: list[dict[str, object]] = field(default_factory=list)
    per_strategy: list[dict[str, object]] = field(default_factory=list)
    resume_after_s: float | None = None
    pauses: list[dict[str, object]] = field(default_factory=list)
    paused_pct: float | None = None
    blocked_signals: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


@dataclass(slots=True)
class BacktestRun:
    """Everything a report needs: the summary, closed trades, the equity curve (one point per
    candle time), and with `record_prices` each pair's closes."""

    summary: BacktestSummary
    trades: list[Trade]
    equity: list[tuple[float, float]]
    prices: dict[str, list[tuple[float, float]]]
    pauses: list[PauseRecord]
    open_trades: list[Trade]


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
        account_currency=engine.config.trading.account_currency,
        starting_bankroll=start,
    )


def _rounded(value: float | None, digits: int = 4) -> float | None:
    return None if value is None else round(value, digits)


class _PauseWatch:
    """Follows pauses through the thought log (no cost per candle while none is held) and, with
    `resume_after`, lifts a risk-rule pause once it has lasted that long in market time."""

    def __init__(self, engine: Engine, resume_after: float | None) -> None:
        self.engine = engine
        self.resume_after = resume_after
        self.records: list[PauseRecord] = []
        self.open: dict[str, tuple[str, float]] = {}  # by -> (reason, since)
        self.due = float("inf")  # market time at which to lift the risk-rule pause
        self.blocked: dict[str, int] = {}  # gate -> signals it blocked
        engine.thoughts.subscribe(self._on_thought)

    def _on_thought(self, thought: Thought) -> None:
        if thought.kind == "blocked":
            gate = str(thought.data.get("gate", "unknown"))
            self.blocked[gate] = self.blocked.get(gate, 0) + 1
            return
        by = thought.data.get("paused_by")
        if thought.kind == "pause" and isinstance(by, str) and by not in self.open:
            self.open[by] = (thought.message, thought.ts)
            if by == PausedBy.RISK_RULE and self.resume_after is not None:
                self.due = thought.ts + self.resume_after

    def lift_if_due(self, now: float) -> None:
        if now < self.due:
            return
        self.due = float("inf")
        self.engine.resume(now, PausedBy.RISK_RULE)
        self._close(str(PausedBy.RISK_RULE), now, RESUMED_BY)

    def _close(self, by: str, until: float | None, lifted_by: str | None,
               end: float | None = None) -> None:
        reason, since = self.open.pop(by)
        stop = until if until is not None else (end if end is not None else since)
        self.records.append(PauseRecord(by, reason, since, until, lifted_by, stop - since))

    def finish(self, end: float) -> list[PauseRecord]:
        for by in list(self.open):
            self._close(by, None, None, end)
        return sorted(self.records, key=lambda r: (r.since, r.by))


def run(config: Config, candles_by_file: Sequence[list[Candle]],
        progress: ProgressCallback | None = None, *, resume_after: float | None = None,
        record_prices: bool = False) -> BacktestRun:
    """One backtest. `resume_after`: seconds of market time after which a risk-rule pause is
    lifted (None: never, as without a human); `record_prices`: keep every pair's closes for a
    report's price charts."""
    thoughts = ThoughtLog(config.dashboard.thought_feed_max, keep_unsaved=False)
    engine = Engine(config, PaperExecutor(config.trading.fee_rate, config.trading.slippage_bps),
                    thoughts)
    watch = _PauseWatch(engine, resume_after)
    total = sum(len(c) for c in candles_by_file)
    pairs = sorted({c[0].pair for c in candles_by_file if c})
    trades: list[Trade] = []
    equity_curve: list[tuple[float, float]] = []
    prices: dict[str, list[tuple[float, float]]] = {p: [] for p in pairs} if record_prices else {}
    first_last: dict[str, tuple[float, float, float, float]] = {}
    peak = engine.equity()
    max_dd = 0.0
    step = max(1, total // 100)
    on_candle = engine.on_candle
    last_ts = None
    last_close_ts = 0.0
    started = time.perf_counter()
    count = 0
    for candle in merge_by_time(candles_by_file):
        if candle.ts != last_ts:
            if last_ts is not None:  # the previous time step is done: mark it
                equity_curve.append((last_close_ts, engine.equity()))
            last_ts = candle.ts
            last_close_ts = float(candle.close_ts)
            if last_close_ts >= watch.due:
                watch.lift_if_due(last_close_ts)
        executions = on_candle(candle)
        for execution in executions:
            if execution.trade.exit_time is not None:
                trades.append(execution.trade)
        count += 1
        if record_prices:
            prices[candle.pair].append((last_close_ts, candle.close))
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
    if last_ts is not None:
        equity_curve.append((last_close_ts, engine.equity()))
    if progress is not None:
        progress(count, total)
    for series in candles_by_file:
        if series:
            first, last = series[0], series[-1]
            first_last[first.pair] = (float(first.ts), first.close, float(last.close_ts),
                                      last.close)
    end = last_close_ts
    pauses = watch.finish(end)
    base = summarize(engine, trades, count, elapsed, max_dd * 100.0, pairs)
    summary = _enrich(base, engine, trades, equity_curve, first_last, pauses, resume_after,
                      watch.blocked)
    return BacktestRun(summary, trades, equity_curve, prices, pauses,
                       list(engine.positions.values()))


def _enrich(base: BacktestSummary, engine: Engine, trades: list[Trade],
            equity: list[tuple[float, float]],
            first_last: dict[str, tuple[float, float, float, float]],
            pauses: list[PauseRecord], resume_after: float | None,
            blocked: dict[str, int]) -> BacktestSummary:
    """The summary with what a trader judges a strategy by."""
    fee = engine.config.trading.fee_rate
    start = min((v[0] for v in first_last.values()), default=None)
    end = max((v[2] for v in first_last.values()), default=None)
    pair_results = metrics.per_pair(trades, base.pairs, first_last, fee)
    hold = [r.buy_and_hold_pct for r in pair_results]
    span = (end - start) if start is not None and end is not None else 0.0
    paused = sum(p.duration_s for p in pauses)
    book = engine.book
    weights = {name: book.weight(name) for name in engine.strategy_names}
    values = asdict(base)
    values.update(
        start=start, end=end,
        buy_and_hold_pct=_rounded(sum(hold) / len(hold)) if hold else None,
        sharpe=_rounded(metrics.sharpe_ratio(equity), 3),
        sortino=_rounded(metrics.sortino_ratio(equity), 3),
        exposure_pct=_rounded(metrics.exposure_pct(
            trades + list(engine.positions.values()), start, end)
            if start is not None and end is not None else None, 2),
        avg_trade_duration_s=_rounded(metrics.average_duration_s(trades), 1),
        exit_reasons=metrics.exit_reasons(trades),
        per_pair=[r.as_dict() for r in pair_results],
        per_strategy=[r.as_dict() for r in metrics.per_strategy(
            trades, engine.strategy_names, weights, engine.disabled_strategies())],
        resume_after_s=resume_after,
        pauses=[p.as_dict() for p in pauses],
        paused_pct=_rounded(100.0 * paused / span if span > 0 else 0.0, 2),
        blocked_signals=dict(sorted(blocked.items(), key=lambda item: (-item[1], item[0]))),
    )
    return BacktestSummary(**values)


def run_backtest(config: Config, candles_by_file: list[list[Candle]],
                 progress: ProgressCallback | None = None, *,
                 resume_after: float | None = None) -> tuple[BacktestSummary, list[Trade]]:
    result = run(config, candles_by_file, progress, resume_after=resume_after)
    return result.summary, result.trades


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


def quiet_thoughts(verbose: bool) -> None:
    """A backtest's console shows the progress and the summary; each thought (every blocked
    candle of a pause included) only with --verbose. Errors always show."""
    if not verbose:
        logging.getLogger("novapulse.thoughts").setLevel(logging.ERROR)


def load_files(paths: list[Path]) -> list[list[Candle]]:
    return [load_candles(path) for path in paths]


def format_duration(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    s = round(seconds)
    days, rem = divmod(s, 86400)
    hours, rem = divmod(rem, 3600)
    minutes = rem // 60
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes:02d}m"
    return f"{minutes}m" if minutes else f"{s}s"


def _utc(ts: float | None) -> str:
    return "—" if ts is None else time.strftime("%Y-%m-%d %H:%M", time.gmtime(ts))


def _num(value: float | None, digits: int = 2, suffix: str = "") -> str:
    return "—" if value is None else f"{value:.{digits}f}{suffix}"


def format_summary(summary: BacktestSummary) -> str:
    cur = summary.account_currency
    pf = "— (no losing trade)" if summary.profit_factor is None and summary.trades else (
        "—" if summary.profit_factor is None else f"{summary.profit_factor:.2f}")
    lines = [
        f"pairs           {', '.join(summary.pairs)}",
        f"span            {_utc(summary.start)} → {_utc(summary.end)} UTC",
        f"candles         {summary.candles}",
        f"trades          {summary.trades} ({summary.open_positions} still open), "
        f"average {format_duration(summary.avg_trade_duration_s)}",
        f"win rate        {summary.win_rate * 100:.1f}%",
        f"profit factor   {pf}",
        f"max drawdown    {summary.max_drawdown_pct:.2f}%",
        f"total return    {summary.total_return_pct:+.2f}%   "
        f"(buy and hold {_num(summary.buy_and_hold_pct, 2, '%')})",
        f"final equity    {summary.final_equity:,.6g} {cur}",
        f"sharpe/sortino  {_num(summary.sharpe)} / {_num(summary.sortino)} (annualised)",
        f"exposure        {_num(summary.exposure_pct, 1, '%')} of the span in a position",
    ]
    if summary.exit_reasons:
        lines.append("exits           " + ", ".join(
            f"{reason} {count}" for reason, count in summary.exit_reasons.items()))
    for row in summary.per_pair:
        lines.append(f"  {row['pair']:<10} {row['trades']:>3} trades  pnl "
                     f"{float(str(row['pnl'])):+.6g} {cur}  hold "
                     f"{float(str(row['buy_and_hold_pct'])):+.2f}%")
    resume = ("never (a human must review)" if summary.resume_after_s is None
              else format_duration(summary.resume_after_s))
    lines.append(f"pauses          {len(summary.pauses)}, {_num(summary.paused_pct, 1, '%')} "
                 f"of the span paused; risk-rule pauses lifted after: {resume}")
    for pause in summary.pauses:
        until = pause["until"]
        held = "still paused at the end" if until is None else f"lifted by {pause['lifted_by']}"
        since = pause["since"]
        lines.append(f"  {_utc(since if isinstance(since, float) else None)}  "
                     f"{format_duration(float(str(pause['duration_s'])))}  {pause['by']}: "
                     f"{pause['reason']} ({held})")
    if summary.blocked_signals:
        lines.append("entries blocked " + ", ".join(
            f"{gate} {count}" for gate, count in summary.blocked_signals.items()))
    lines.append(f"speed           {summary.candles_per_second:,.0f} candles/s "
                 f"({summary.seconds:.2f} s)")
    return "\n".join(lines)
