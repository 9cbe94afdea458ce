"""Same data, same result: the order of --data files never changes a backtest."""

from __future__ import annotations

from itertools import permutations
from pathlib import Path

from novapulse.backtest import load_files, run_backtest
from novapulse.config import Config

SAMPLES = sorted((Path(__file__).resolve().parents[2] / "data" / "sample").glob("*-5m.csv.gz"))


def test_file_order_does_not_change_the_result() -> None:
    # Was: 9,599.82, 9,599.99 or 9,600.07 for the same six files in different orders.
    files = load_files(SAMPLES[:3])
    results = set()
    for order in permutations(range(3)):
        summary, trades = run_backtest(Config(), [files[i] for i in order])
        results.add((summary.final_equity, summary.trades,
                     tuple(t.trade_id for t in trades)))
    assert len(results) == 1
