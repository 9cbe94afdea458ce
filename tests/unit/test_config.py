"""Config: YAML + environment, every error named with its field path."""

from __future__ import annotations

from pathlib import Path

import pytest

from novapulse.config import Config, ConfigError, build_config, config_json_schema, load_config

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


@pytest.mark.parametrize("pair", ["nonsense", "eth/btc", "ETHBTC", "ETH/BTC/USD", "ETH-BTC", ""])
def test_pairs_not_in_ws_v2_spelling_are_refused(pair: str) -> None:
    with pytest.raises(ConfigError) as info:
        build_config({"trading": {"pairs": [pair]}})
    assert info.value.errors == [
        f"trading.pairs.0: '{pair}' is not a pair in Kraken's WebSocket v2 spelling "
        "BASE/QUOTE (upper case, e.g. ETH/BTC)"]


def test_account_currency_defaults_to_the_default_pairs_quote() -> None:
    trading = Config().trading
    assert trading.account_currency == "BTC"
    assert all(p.endswith("/BTC") for p in trading.pairs)


def test_pairs_quoted_in_another_currency_are_named() -> None:
    with pytest.raises(ConfigError) as info:
        build_config({"trading": {"pairs": ["ETH/BTC", "ETH/USD", "LTC/EUR"]}})
    assert info.value.errors == [
        "trading.pairs: ETH/USD (USD), LTC/EUR (EUR): not quoted in the account currency BTC "
        "(trading.account_currency); the bot does not convert between currencies"]
    usd = build_config({"trading": {"account_currency": "USD", "pairs": ["ETH/USD"]}})
    assert usd.trading.pairs == ["ETH/USD"]


def test_the_rest_spelling_of_bitcoin_gets_a_hint() -> None:
    with pytest.raises(ConfigError, match=r"LTC/XBT \(XBT\).*spells bitcoin BTC"):
        build_config({"trading": {"pairs": ["LTC/XBT"]}})


def test_warmup_is_bounded_by_what_krakens_rest_ohlc_serves() -> None:
    assert build_config({"trading": {"warmup_bars": 719}}).trading.warmup_bars == 719
    with pytest.raises(ConfigError) as info:
        build_config({"trading": {"warmup_bars": 720}})
    assert info.value.errors == [
        "trading.warmup_bars: at most 719: Kraken's REST OHLC serves only its newest 720 "
        "candles, the newest still open, whatever `since` asks for"]


def test_yaml_syntax_error_names_the_file_line_and_column(tmp_path: Path) -> None:
    path = write(tmp_path, "trading:\n  pairs: [ETH/BTC\nrisk: {}\n")
    with pytest.raises(ConfigError) as info:
        load_config(path, environ={})
    assert info.value.errors == [
        f"{path}:3:5: not valid YAML: expected ',' or ']', but got ':' "
        "(while parsing a flow sequence)"]
    assert "<unicode string>" not in str(info.value)


def test_mistyped_environment_variable_is_named_with_a_suggestion() -> None:
    env = {"NOVAPULSE__TRADNG__PAIRS": "[ETH/BTC]",
           "NOVAPULSE__TRADING__QUIET_HOURS__ENABELD": "true",
           "NOVAPULSE__RISK__NO_SUCH_THING": "1"}
    with pytest.raises(ConfigError) as info:
        load_config(environ=env)
    assert info.value.errors == [
        "NOVAPULSE__RISK__NO_SUCH_THING: unknown setting 'risk.no_such_thing' "
        "(from the environment)",
        "NOVAPULSE__TRADING__QUIET_HOURS__ENABELD: unknown setting "
        "'trading.quiet_hours.enabeld' (from the environment); did you mean 'enabled'?",
        "NOVAPULSE__TRADNG__PAIRS: unknown section 'tradng' (from the environment); "
        "did you mean 'trading'?"]


def test_bad_environment_value_names_its_variable() -> None:
    env = {"NOVAPULSE__TRADING__PAIRS": "[nonsense]", "TRADING_MODE": "yolo",
           "NOVAPULSE__RISK__STOP_LOSS_PCT": "[unclosed"}
    with pytest.raises(ConfigError) as info:
        load_config(environ=env)
    errors = info.value.errors
    assert "NOVAPULSE__RISK__STOP_LOSS_PCT: not a valid YAML value (from the environment)" in (
        errors)
    assert any(e.startswith("trading.pairs.0: 'nonsense'")
               and e.endswith("(from NOVAPULSE__TRADING__PAIRS)") for e in errors), errors
    assert any(e.startswith("trading.mode:") and e.endswith("(from TRADING_MODE)")
               for e in errors), errors
    assert len(errors) == 3


def test_a_cli_override_is_not_blamed_on_the_environment() -> None:
    with pytest.raises(ConfigError) as info:
        load_config(environ={"TRADING_MODE": "paper"}, overrides={"trading": {"mode": "yolo"}})
    assert info.value.errors[0].startswith("trading.mode:")
    assert "TRADING_MODE" not in info.value.errors[0]


def test_unknown_file_section_suggests_the_closest_name() -> None:
    with pytest.raises(ConfigError) as info:
        build_config({"tradng": {}})
    assert info.value.errors == ["tradng: unknown section; did you mean 'trading'?"]


def test_reconnect_initial_above_max_is_refused() -> None:
    with pytest.raises(ConfigError) as info:
        build_config({"feed": {"reconnect_initial_seconds": 30, "reconnect_max_seconds": 10}})
    assert any("reconnect_max_seconds must be >= reconnect_initial_seconds" in e
               for e in info.value.errors)


def test_bankroll_floor_scales_with_the_account() -> None:
    one_btc = build_config({"trading": {"starting_bankroll": 1.0}})
    floor = one_btc.risk.min_bankroll_amount(one_btc.trading.starting_bankroll)
    assert floor == pytest.approx(0.001)  # a 1 BTC account is not "Bankroll depleted" at once
    default = Config()
    assert default.risk.min_bankroll_amount(default.trading.starting_bankroll) == (
        pytest.approx(10.0))


def test_an_absolute_bankroll_floor_overrides_the_percentage() -> None:
    config = build_config({"risk": {"min_bankroll": 0.5, "min_bankroll_pct": 50}})
    assert config.risk.min_bankroll_amount(1.0) == 0.5
    with pytest.raises(ConfigError, match=r"risk\.min_bankroll_pct:"):
        build_config({"risk": {"min_bankroll_pct": 100}})


def test_canary_cap_is_sized_for_a_btc_account() -> None:
    assert Config().exchange.canary_max_notional <= 0.01
