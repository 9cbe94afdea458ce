"""Backtests that judge a strategy: risk-rule pauses lifted after --resume-after (market time)
and listed, the metrics a trader reads, the CSV export and the report's data."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import pytest

from novapulse.backtest import (
    RESUMED_BY,
    format_duration,
    format_summary,
    load_files,
    parse_duration,
    run,
)
from novapulse.config import Config
from novapulse.models import Side, Trade, TradeStatus
from novapulse.reports import metrics
from novapulse.reports.csv_export import header, write_trades_csv
from novapulse.reports.html import render, thin

SAMPLES = sorted((Path(__file__).resolve().parents[2] / "data" / "sample").glob("*-5m.csv.gz"))
HOUR = 3600.0


@pytest.fixture(scope="module")
def candles() -> list[list[object]]:
    return load_files(SAMPLES)  # type: ignore[return-value]


def trade(entry: float, exit_: float | None, pnl: float | None, pair: str = "ETH/BTC",
          strategy: str = "ema_cross", reason: str = "stop loss") -> Trade:
    return Trade(trade_id=f"t{entry}", pair=pair, side=Side.BUY, entry_price=1.0, quantity=10.0,
                 entry_time=entry, strategy=strategy, stop_loss=0.98, take_profit=1.04,
                 status=TradeStatus.CLOSED if exit_ else TradeStatus.OPEN,
                 exit_price=None if exit_ is None else 1.0 + (pnl or 0.0) / 10,
                 exit_time=exit_, pnl=pnl, notes=f"buy: x | exit: {reason}" if exit_ else "")


@pytest.mark.parametrize(("text", "seconds"), [
    ("4h", 4 * HOUR), ("90m", 5400.0), ("1h30m", 5400.0), ("2d", 172800.0), ("45s", 45.0),
    ("never", None), ("OFF", None)])
def test_durations(text: str, seconds: float | None) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "4", "h", "4x", "-1h", "0m", "4h 30m"])
def test_bad_durations_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="is not a duration"):
        parse_duration(text)


def test_a_risk_rule_pause_is_lifted_after_the_duration_and_listed(candles: list) -> None:
    never = run(Config(), candles, resume_after=None).summary
    assert never.pauses and never.pauses[0]["by"] == "risk_rule"
    assert never.pauses[0]["until"] is None and never.pauses[0]["lifted_by"] is None
    assert "consecutive losses" in str(never.pauses[0]["reason"])
    # Paused from its first pause to the end of the data: most of the span.
    assert (never.paused_pct or 0) > 50

    four_hours = run(Config(), candles, resume_after=4 * HOUR)
    summary = four_hours.summary
    lifted = [p for p in four_hours.pauses if p.lifted_by == RESUMED_BY]
    assert lifted, summary.pauses
    for pause in lifted:
        assert pause.until is not None and pause.until - pause.since >= 4 * HOUR
        assert pause.until - pause.since < 4 * HOUR + 600  # at the first candle after it
        assert pause.duration_s == pause.until - pause.since
    assert summary.trades >= never.trades
    assert summary.resume_after_s == 4 * HOUR
    assert (summary.paused_pct or 0) < (never.paused_pct or 0)
    assert sum(summary.blocked_signals.values()) > 0
    text = format_summary(summary)
    assert f"lifted by {RESUMED_BY}" in text and "buy and hold" in text


def test_the_summary_holds_what_a_trader_judges_by(candles: list) -> None:
    result = run(Config(), candles[:2], resume_after=4 * HOUR, record_prices=True)
    s = result.summary
    assert s.account_currency == "BTC" and s.start is not None and s.end is not None
    assert [r["pair"] for r in s.per_pair] == s.pairs
    assert sum(int(str(r["trades"])) for r in s.per_pair) == s.trades
    assert math.isclose(sum(float(str(r["pnl"])) for r in s.per_pair),
                        sum(t.pnl or 0.0 for t in result.trades))
    assert sum(s.exit_reasons.values()) == s.trades
    assert {r["name"] for r in s.per_strategy} >= {"ema_cross", "zscore_reversion"}
    assert s.buy_and_hold_pct is not None and s.exposure_pct is not None
    assert 0 < s.exposure_pct < 100 and (s.avg_trade_duration_s or 0) > 0
    assert s.sharpe is not None and s.sortino is not None
    assert len(result.equity) == len({c.ts for series in candles[:2] for c in series})
    assert [p for p, _ in result.equity] == sorted(p for p, _ in result.equity)
    assert {pair: len(v) for pair, v in result.prices.items()} == {
        series[0].pair: len(series) for series in candles[:2]}
    html = render(result, Config())
    assert "<script src" not in html and "http://" not in html and "https://" not in html
    assert "PnL (BTC)" in html and 'id="equity-chart"' in html


def test_metrics() -> None:
    assert metrics.profit_factor([1.0, -2.0]) == 0.5
    assert metrics.profit_factor([1.0, 2.0]) is None  # no losses: not "100"
    trades = [trade(0, 100, 1.0), trade(50, 150, -1.0, reason="take profit"),
              trade(300, None, None)]
    assert metrics.exposure_pct(trades, 0, 400) == pytest.approx(100 * (150 + 100) / 400)
    assert metrics.average_duration_s(trades) == 100
    assert metrics.exit_reasons(trades[:2]) == {"stop loss": 1, "take profit": 1}
    assert metrics.buy_and_hold_pct(1.0, 1.1, 0.0) == pytest.approx(10.0)
    flat = [(float(t), 100.0) for t in range(0, 3000, 300)]
    assert metrics.sharpe_ratio(flat) is None and metrics.sortino_ratio(flat) is None
    rising = [(float(t), 100.0 + t / 300 + (t % 600) / 600) for t in range(0, 30000, 300)]
    assert (metrics.sharpe_ratio(rising) or 0) > 0
    assert metrics.drawdown_pct([(0, 100.0), (1, 110.0), (2, 99.0), (3, 120.0)]) == [
        0.0, 0.0, pytest.approx(-10.0), 0.0]
    per = metrics.per_strategy([trade(0, 1, 2.0, strategy="a,b"), trade(2, 3, -1.0,
                                                                        strategy="a")],
                               ["a", "b", "c"], {"a": 1.0}, {"c"})
    assert [(r.name, r.trades, r.pnl, r.profit_factor, r.runtime_disabled) for r in per] == [
        ("a", 2, 1.0, 2.0, False), ("b", 1, 2.0, None, False), ("c", 0, 0.0, None, True)]


def test_csv_export_names_the_currency(candles: list, tmp_path: Path) -> None:
    result = run(Config(), candles[:1], resume_after=4 * HOUR)
    path = write_trades_csv(result, "BTC", tmp_path / "out" / "trades.csv")
    with path.open() as f:
        rows = list(csv.reader(f))
    assert rows[0] == header("BTC") and "pnl_BTC" in rows[0]
    assert len(rows) - 1 == len(result.trades) + len(result.open_trades)
    first = dict(zip(rows[0], rows[1], strict=True))
    assert first["entry_time_utc"].endswith("Z") and first["exit_reason"]
    assert float(first["pnl_BTC"]) == pytest.approx(result.trades[0].pnl or 0.0)


def test_thin_keeps_extremes_and_the_last_point() -> None:
    points = [(float(i), math.sin(i / 50.0)) for i in range(10_000)]
    out = thin(points, 1_000)
    assert len(out) <= 1_002 and out[-1] == [9999.0, points[-1][1]]
    assert max(v for _, v in out) == max(v for _, v in points)
    assert min(v for _, v in out) == min(v for _, v in points)
    assert thin(points[:10]) == [[t, v] for t, v in points[:10]]


def test_format_duration() -> None:
    assert [format_duration(s) for s in (None, 30, 600, 3 * 3600 + 300, 2 * 86400 + 3600)] == [
        "—", "30s", "10m", "3h 05m", "2d 1h"]
