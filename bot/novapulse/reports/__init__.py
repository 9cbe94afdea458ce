"""Backtest results a trader can read: metrics (standard library only, used by every backtest
summary), and, imported only when asked for, the self-contained HTML report and the CSV export."""
