"""Config: YAML + environment, every error named with its field path."""

from __future__ import annotations

from pathlib import Path

import pytest

from novapulse.config import Config, ConfigError, config_json_schema, load_config

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "bot-config.yaml"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    return path


def test_example_config_is_valid_and_matches_defaults() -> None:
    assert load_config(EXAMPLE, environ={}) == Config()


def test_defaults_from_the_runbooks() -> None:
    c = Config()
    assert c.trading.warmup_bars == 500
    assert c.monitoring.metrics_retention_hours == 72
    assert c.dashboard.thought_feed_max == 200
    assert c.analytics.buffer_maxlen == 10_000
    assert c.ai.strategy_guardrails_disable_minutes == 120
    assert c.feed.circuit_breaker_seconds == 300
    assert c.dashboard.port == 8090


def test_every_error_is_listed_with_its_path(tmp_path: Path) -> None:
    path = write(tmp_path, """
trading:
  mode: yolo
  warmup_bars: 0
risk:
  max_open_positions: -1
  stop_loss_pct: lots
dashboard:
  thought_feed_max: 5
  colour: blue
""")
    with pytest.raises(ConfigError) as info:
        load_config(path, environ={})
    errors = info.value.errors
    for field in ("trading.mode", "trading.warmup_bars", "risk.max_open_positions",
                  "risk.stop_loss_pct", "dashboard.thought_feed_max", "dashboard.colour"):
        assert any(e.startswith(f"{field}:") for e in errors), (field, errors)
    assert len(errors) == 6
    assert str(path) in str(info.value)


def test_environment_overrides_file(tmp_path: Path) -> None:
    path = write(tmp_path, "trading:\n  warmup_bars: 400\n")
    env = {"NOVAPULSE__TRADING__WARMUP_BARS": "300", "TRADING_MODE": "LIVE",
           "DATABASE_URL": "postgresql://db/x", "NOVAPULSE__RISK__MAX_TRADES_PER_HOUR": "12"}
    c = load_config(path, environ=env)
    assert (c.trading.warmup_bars, c.trading.mode, c.database.url) == (300, "live",
                                                                        "postgresql://db/x")
    assert c.risk.max_trades_per_hour == 12


def test_bad_environment_value_is_named() -> None:
    with pytest.raises(ConfigError) as info:
        load_config(environ={"NOVAPULSE__FEED__HEARTBEAT_TIMEOUT_SECONDS": "soon"})
    assert info.value.errors[0].startswith("feed.heartbeat_timeout_seconds:")


def test_unreadable_and_malformed_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read file"):
        load_config(tmp_path / "missing.yaml", environ={})
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(write(tmp_path, "trading: [unclosed"), environ={})
    with pytest.raises(ConfigError, match="expected a mapping"):
        load_config(write(tmp_path, "- a\n- b\n"), environ={})


def test_cross_field_rule() -> None:
    with pytest.raises(ConfigError, match="reconnect_max_seconds"):
        load_config(environ={"NOVAPULSE__FEED__RECONNECT_MAX_SECONDS": "0.5",
                             "NOVAPULSE__FEED__RECONNECT_INITIAL_SECONDS": "2"})


def test_json_schema_covers_every_section() -> None:
    schema = config_json_schema()
    assert set(schema["properties"]) == set(Config.model_fields)
