"""What a trader judges a backtest by: pure functions over trades and the equity curve.

Standard library only (a backtest's summary uses them; the HTML report reads their results).
Money is in the account currency; returns and ratios are plain numbers.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass

from novapulse.models import Trade

SECONDS_PER_YEAR = 365.0 * 24 * 3600  # crypto trades every day


@dataclass(frozen=True, slots=True)
class PairResult:
    pair: str
    trades: int
    wins: int
    win_rate: float
    pnl: float
    profit_factor: float | None
    buy_and_hold_pct: float
    exposure_pct: float

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class StrategyResult:
    """A strategy's share of the trades it voted for (a trade counts for every voter)."""

    name: str
    trades: int
    wins: int
    win_rate: float
    pnl: float
    profit_factor: float | None
    weight: float
    runtime_disabled: bool

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def profit_factor(pnls: Iterable[float]) -> float | None:
    """Gross profit / gross loss; None without losses (∞ or undefined: say so, never 100)."""
    gains = losses = 0.0
    for p in pnls:
        if p > 0:
            gains += p
        else:
            losses -= p
    return gains / losses if losses > 0 else None


def exit_reason(trade: Trade) -> str:
    """Why a closed trade closed, from its notes ('... | exit: stop loss')."""
    _, sep, reason = trade.notes.rpartition("exit: ")
    return reason.strip() if sep else "unknown"


def exit_reasons(trades: Iterable[Trade]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for trade in trades:
        reason = exit_reason(trade)
        counts[reason] = counts.get(reason, 0) + 1
    return dict(sorted(counts.items(), key=lambda item: (-item[1], item[0])))


def _intervals(trades: Iterable[Trade], end: float) -> list[tuple[float, float]]:
    return sorted((t.entry_time, t.exit_time if t.exit_time is not None else end)
                  for t in trades)


def exposure_pct(trades: Iterable[Trade], start: float, end: float) -> float:
    """Share of the span with at least one position held (overlaps counted once)."""
    span = end - start
    if span <= 0:
        return 0.0
    covered = 0.0
    cur_start = cur_end = None
    for a, b in _intervals(trades, end):
        a, b = max(a, start), min(b, end)
        if b <= a:
            continue
        if cur_end is None or a > cur_end:
            if cur_start is not None and cur_end is not None:
                covered += cur_end - cur_start
            cur_start, cur_end = a, b
        else:
            cur_end = max(cur_end, b)
    if cur_start is not None and cur_end is not None:
        covered += cur_end - cur_start
    return 100.0 * covered / span


def average_duration_s(trades: Sequence[Trade]) -> float | None:
    closed = [t.exit_time - t.entry_time for t in trades if t.exit_time is not None]
    return sum(closed) / len(closed) if closed else None


def buy_and_hold_pct(first_close: float, last_close: float, fee_rate: float) -> float:
    """Buying at the first close and selling at the last, one taker fee each way."""
    if first_close <= 0:
        return 0.0
    return 100.0 * (last_close / first_close * (1.0 - fee_rate) ** 2 - 1.0)


def period_returns(equity: Sequence[tuple[float, float]]) -> list[float]:
    return [b / a - 1.0 for (_, a), (_, b) in itertools.pairwise(equity) if a > 0]


def _periods_per_year(equity: Sequence[tuple[float, float]]) -> float | None:
    if len(equity) < 3:
        return None
    steps = sorted(b - a for (a, _), (b, _) in itertools.pairwise(equity))
    step = steps[len(steps) // 2]
    return SECONDS_PER_YEAR / step if step > 0 else None


def sharpe_ratio(equity: Sequence[tuple[float, float]]) -> float | None:
    """Annualised from the curve's own period returns (risk-free rate 0); None when flat."""
    returns = period_returns(equity)
    per_year = _periods_per_year(equity)
    if per_year is None or len(returns) < 2:
        return None
    mean = sum(returns) / len(returns)
    var = sum((r - mean) ** 2 for r in returns) / (len(returns) - 1)
    if var <= 0:
        return None
    return mean / math.sqrt(var) * math.sqrt(per_year)


def sortino_ratio(equity: Sequence[tuple[float, float]]) -> float | None:
    """Like Sharpe, with only the downside (returns below 0) as risk; None without losses."""
    returns = period_returns(equity)
    per_year = _periods_per_year(equity)
    if per_year is None or len(returns) < 2:
        return None
    downside = math.sqrt(sum(min(r, 0.0) ** 2 for r in returns) / len(returns))
    if downside <= 0:
        return None
    return sum(returns) / len(returns) / downside * math.sqrt(per_year)


def drawdown_pct(equity: Sequence[tuple[float, float]]) -> list[float]:
    """The drawdown below the running peak at each point, in % (0 or negative)."""
    peak = -math.inf
    out = []
    for _, value in equity:
        peak = max(peak, value)
        out.append(100.0 * (value - peak) / peak if peak > 0 else 0.0)
    return out


def per_pair(trades: Sequence[Trade], pairs: Sequence[str],
             first_last: dict[str, tuple[float, float, float, float]],
             fee_rate: float) -> list[PairResult]:
    """`first_last`: pair -> (first ts, first close, last ts, last close)."""
    results = []
    for pair in pairs:
        mine = [t for t in trades if t.pair == pair and t.pnl is not None]
        pnls = [t.pnl for t in mine if t.pnl is not None]
        wins = sum(1 for p in pnls if p > 0)
        t0, c0, t1, c1 = first_last.get(pair, (0.0, 0.0, 0.0, 0.0))
        results.append(PairResult(
            pair=pair, trades=len(pnls), wins=wins,
            win_rate=wins / len(pnls) if pnls else 0.0, pnl=sum(pnls),
            profit_factor=profit_factor(pnls), buy_and_hold_pct=buy_and_hold_pct(c0, c1, fee_rate),
            exposure_pct=exposure_pct(mine, t0, t1)))
    return results


def per_strategy(trades: Sequence[Trade], names: Sequence[str], weights: dict[str, float],
                 disabled: Iterable[str]) -> list[StrategyResult]:
    pnls: dict[str, list[float]] = {name: [] for name in names}
    for trade in trades:
        if trade.pnl is None:
            continue
        for voter in dict.fromkeys(n for n in trade.strategy.split(",") if n):
            pnls.setdefault(voter, []).append(trade.pnl)
    off = set(disabled)
    results = []
    for name, values in pnls.items():
        wins = sum(1 for p in values if p > 0)
        results.append(StrategyResult(
            name=name, trades=len(values), wins=wins,
            win_rate=wins / len(values) if values else 0.0, pnl=sum(values),
            profit_factor=profit_factor(values), weight=weights.get(name, 0.0),
            runtime_disabled=name in off))
    return results
