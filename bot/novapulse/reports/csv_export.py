"""Every trade of a backtest as CSV, for spreadsheets: one row per trade, closed then open,
times in UTC (ISO 8601), money in the account currency named in the column headers."""

from __future__ import annotations

import csv
import time
from pathlib import Path
from typing import TYPE_CHECKING

from novapulse.models import Trade
from novapulse.reports.metrics import exit_reason

if TYPE_CHECKING:
    from novapulse.backtest import BacktestRun


def _iso(ts: float | None) -> str:
    return "" if ts is None else time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


def header(currency: str) -> list[str]:
    return ["trade_id", "pair", "status", "strategies", "entry_time_utc", "exit_time_utc",
            "duration_minutes", "quantity", "entry_price", "exit_price",
            f"entry_fee_{currency}", f"exit_fee_{currency}", f"pnl_{currency}", "return_pct",
            "exit_reason"]


def row(trade: Trade) -> list[str]:
    closed = trade.exit_time is not None and trade.pnl is not None
    cost = trade.entry_price * trade.quantity + trade.entry_fee
    return [
        trade.trade_id, trade.pair, str(trade.status), trade.strategy.replace(",", " "),
        _iso(trade.entry_time), _iso(trade.exit_time),
        f"{(trade.exit_time - trade.entry_time) / 60:.0f}" if trade.exit_time is not None else "",
        f"{trade.quantity:.10g}", f"{trade.entry_price:.10g}",
        f"{trade.exit_price:.10g}" if trade.exit_price is not None else "",
        f"{trade.entry_fee:.10g}", f"{trade.exit_fee:.10g}" if closed else "",
        f"{trade.pnl:.10g}" if trade.pnl is not None else "",
        f"{100.0 * trade.pnl / cost:.4f}" if trade.pnl is not None and cost > 0 else "",
        exit_reason(trade) if closed else "",
    ]


def write_trades_csv(run: BacktestRun, currency: str, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(header(currency))
        for trade in [*run.trades, *run.open_trades]:
            writer.writerow(row(trade))
    return path
