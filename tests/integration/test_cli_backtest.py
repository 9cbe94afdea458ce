"""`novapulse backtest` as a trader runs it: risk-rule pauses lifted after --resume-after,
the summary and report, the CSV export, thoughts only with --verbose, user strategies from the
config (a broken one refused with its reason), and no report machinery unless asked."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = sorted((ROOT / "data" / "sample").glob("*-5m.csv.gz"))


def novapulse(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "novapulse.cli", *args], capture_output=True,
                          text=True, timeout=120, cwd=cwd, check=False)


def test_resume_after_lifts_the_risk_rule_pause_and_lists_it() -> None:
    data = ["--data", *map(str, SAMPLES), "--json", "--no-progress"]
    never = json.loads(novapulse("backtest", *data, "--resume-after", "never").stdout)
    default = novapulse("backtest", *data)
    assert default.returncode == 0, default.stderr
    summary = json.loads(default.stdout)
    assert summary["resume_after_s"] == 4 * 3600
    assert never["pauses"][-1]["until"] is None
    assert any(p["lifted_by"] == "backtest --resume-after" for p in summary["pauses"])
    assert summary["paused_pct"] < never["paused_pct"]
    # Thoughts stay off the console: no line per blocked candle.
    assert "Trading paused" not in default.stderr and "Auto-pause" not in default.stderr


def test_verbose_prints_the_thoughts() -> None:
    result = novapulse("backtest", "--data", str(SAMPLES[1]), "--no-progress", "--verbose")
    assert result.returncode == 0, result.stderr
    assert "BUY " in result.stderr and "SELL " in result.stderr


def test_report_and_export(tmp_path: Path) -> None:
    result = novapulse("backtest", "--data", *map(str, SAMPLES[:2]), "--no-progress",
                       "--report", str(tmp_path / "report"), "--export",
                       str(tmp_path / "trades.csv"))
    assert result.returncode == 0, result.stderr
    for label in ("buy and hold", "sharpe/sortino", "exposure", "exits", "pauses"):
        assert label in result.stdout
    html = (tmp_path / "report" / "index.html").read_text()
    assert "NPCharts.equity" in html and "Per strategy" in html
    with (tmp_path / "trades.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert rows and "pnl_BTC" in rows[0]
    assert f"report: {tmp_path / 'report' / 'index.html'}" in result.stderr


def test_a_user_strategy_trades_in_a_backtest() -> None:
    result = novapulse("backtest", "--config", "examples/strategies/config.yaml", "--data",
                       *map(str, SAMPLES), "--json", "--no-progress")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    mine = next(r for r in summary["per_strategy"] if r["name"] == "trend_pullback")
    assert mine["trades"] > 0
    assert {r["name"] for r in summary["per_strategy"]} == {
        "trend_pullback", "ema_cross", "zscore_reversion"}


def test_a_broken_strategy_is_refused_with_its_reason(tmp_path: Path) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text("strategies:\n  - class: examples/strategies/trend_pullback.py:Nope\n"
                      "  - class: novapulse.strategies.trend:EmaCrossTrend\n"
                      "    params: {min_hist_atr: steep}\n")
    result = novapulse("backtest", "--config", str(config), "--data", str(SAMPLES[0]))
    assert result.returncode == 2
    assert "strategies.0.class: 'examples/strategies/trend_pullback.py' has no attribute " \
           "'Nope'" in result.stderr
    assert "strategies.1.params: min_hist_atr: Input should be a valid number" in result.stderr
    validate = novapulse("config", "validate", str(config), "--no-env")
    assert validate.returncode == 2 and "strategies.0.class" in validate.stderr


def test_the_report_machinery_loads_only_when_asked() -> None:
    code = ("import sys; from novapulse.cli import main; "
            f"main(['backtest', '--data', {str(SAMPLES[0])!r}, '--json', '--no-progress']); "
            "heavy = [m for m in ('novapulse.reports.html', 'novapulse.reports.csv_export', "
            "'fastapi', 'websockets', 'asyncpg', 'ccxt') if m in sys.modules]; "
            "print(heavy, file=sys.stderr)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=120, cwd=ROOT, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip().splitlines()[-1] == "[]"
