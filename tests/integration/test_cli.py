"""The `novapulse` command as a user runs it: backtests, config validation, refusal to start."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

SAMPLES = sorted((Path(__file__).resolve().parents[2] / "data" / "sample").glob("*-5m.csv.gz"))
BAD_CONFIG = """
trading:
  mode: yolo
  warmup_bars: -5
risk:
  max_open_positions: 0
"""


def novapulse(*args: str, cwd: Path | None = None,
              env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "novapulse.cli", *args], capture_output=True,
                          text=True, timeout=120, cwd=cwd, check=False, env=env)


def test_backtest_json_over_every_sample_file() -> None:
    assert len(SAMPLES) == 6
    traded = 0
    for path in SAMPLES:
        result = novapulse("backtest", "--data", str(path), "--json")
        assert result.returncode == 0, result.stderr
        summary = json.loads(result.stdout)
        assert summary["candles"] > 5_000
        assert summary["pairs"] == [path.name.split("-")[0].replace("_", "/")]
        for key in ("trades", "win_rate", "profit_factor", "max_drawdown_pct",
                    "total_return_pct", "candles_per_second"):
            assert key in summary
        traded += summary["trades"] > 0
    assert traded >= 4, "trades should happen on most sample files"


def test_backtest_text_summary_over_several_pairs() -> None:
    result = novapulse("backtest", "--data", *map(str, SAMPLES[:2]), "--no-progress")
    assert result.returncode == 0, result.stderr
    for label in ("candles", "trades", "win rate", "profit factor", "max drawdown",
                  "total return", "candles/s"):
        assert label in result.stdout


def test_backtest_names_a_bad_file(tmp_path: Path) -> None:
    bad = tmp_path / "ETH_BTC-5m.csv"
    bad.write_text("timestamp_ms,open,high,low,close,volume\n1,2,3,4,x,6\n")
    result = novapulse("backtest", "--data", str(bad))
    assert result.returncode == 2
    assert f"{bad}:2: bad candle row" in result.stderr


def test_config_validate_lists_every_error(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(BAD_CONFIG)
    result = novapulse("config", "validate", str(path), "--no-env")
    assert result.returncode == 2
    for field in ("trading.mode", "trading.warmup_bars", "risk.max_open_positions"):
        assert f"  - {field}:" in result.stderr
    good = novapulse("config", "validate", "examples/bot-config.yaml", "--no-env",
                     cwd=Path(__file__).resolve().parents[2])
    assert good.returncode == 0 and "valid" in good.stdout


@pytest.mark.parametrize("feed", ["replay:data/sample/ETH_BTC-5m.csv.gz", "kraken"])
def test_run_refuses_a_bad_config_with_the_same_message(tmp_path: Path, feed: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(BAD_CONFIG)
    result = novapulse("run", "--config", str(path), "--feed", feed, "--data-dir",
                       str(tmp_path / "data"), cwd=Path(__file__).resolve().parents[2])
    assert result.returncode == 2
    assert "refusing to start: invalid configuration" in result.stderr
    assert "  - trading.mode:" in result.stderr and "  - trading.warmup_bars:" in result.stderr
    assert not (tmp_path / "data").exists(), "nothing may be started on a bad config"


def test_run_refuses_a_bad_feed(tmp_path: Path) -> None:
    result = novapulse("run", "--feed", "replay:nope.csv.gz", "--data-dir", str(tmp_path))
    assert result.returncode == 2
    assert "no such file: nope.csv.gz" in result.stderr


def test_config_validate_refuses_what_the_crd_refuses(tmp_path: Path) -> None:
    path = tmp_path / "pairs.yaml"
    path.write_text("trading:\n  pairs: [nonsense, ETH/USD]\n  warmup_bars: 1000\n")
    result = novapulse("config", "validate", str(path), "--no-env")
    assert result.returncode == 2
    assert ("  - trading.pairs.0: 'nonsense' is not a pair in Kraken's WebSocket v2 spelling "
            "BASE/QUOTE") in result.stderr
    assert "  - trading.warmup_bars: at most 719: Kraken's REST OHLC" in result.stderr


def test_config_validate_names_the_file_line_and_column_of_a_yaml_error(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("trading:\n  pairs: [ETH/BTC\nrisk: {}\n")
    result = novapulse("config", "validate", str(path), "--no-env")
    assert result.returncode == 2
    assert f"  - {path}:3:5: not valid YAML:" in result.stderr
    assert "<unicode string>" not in result.stderr


def test_config_validate_names_a_mistyped_environment_variable(tmp_path: Path) -> None:
    path = tmp_path / "ok.yaml"
    path.write_text("trading:\n  pairs: [ETH/BTC]\n")
    env = {**os.environ, "NOVAPULSE__TRADNG__PAIRS": "[LTC/BTC]"}
    result = novapulse("config", "validate", str(path), env=env)
    assert result.returncode == 2
    assert ("  - NOVAPULSE__TRADNG__PAIRS: unknown section 'tradng' (from the environment); "
            "did you mean 'trading'?") in result.stderr
