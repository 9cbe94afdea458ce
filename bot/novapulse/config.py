"""The bot's one configuration model: YAML file + environment overrides, validated at start.

Environment overrides use `NOVAPULSE__SECTION__FIELD=value` (double underscores), e.g.
`NOVAPULSE__TRADING__WARMUP_BARS=300`. A few well-known variables from the runbooks are
honoured too: `TRADING_MODE` and `DATABASE_URL`. Secrets (API keys, dashboard secrets) are
never part of this model: they are read from the environment by the code that needs them.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

ENV_PREFIX = "NOVAPULSE__"

Mode = Literal["paper", "canary", "live"]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class QuietHours(_Section):
    enabled: bool = False
    start_hour_utc: int = Field(0, ge=0, le=23, description="First UTC hour with no new entries")
    end_hour_utc: int = Field(0, ge=0, le=23, description="UTC hour when entries are allowed again")


class TradingConfig(_Section):
    mode: Mode = "paper"
    pairs: list[str] = Field(default_factory=lambda: ["ETH/BTC"], min_length=1)
    timeframe_minutes: Literal[1, 5, 15, 30, 60, 240, 1440] = 5
    warmup_bars: int = Field(500, ge=1, le=10_000)
    starting_bankroll: float = Field(10_000.0, gt=0)
    fee_rate: float = Field(0.0026, ge=0, le=0.05, description="Taker fee as a fraction")
    slippage_bps: float = Field(5.0, ge=0, le=500)
    quiet_hours: QuietHours = Field(default_factory=QuietHours)


class RiskConfig(_Section):
    risk_per_trade_pct: float = Field(1.0, gt=0, le=10, description="% of equity risked per trade")
    max_position_pct: float = Field(20.0, gt=0, le=100, description="Cap on a position's notional")
    stop_loss_pct: float = Field(2.0, gt=0, le=50)
    take_profit_pct: float = Field(4.0, gt=0, le=500)
    trailing_stop_pct: float = Field(1.5, ge=0, le=50, description="0 disables trailing stops")
    max_daily_loss_pct: float = Field(5.0, gt=0, le=100)
    global_cooldown_seconds: int = Field(300, ge=0, le=86_400)
    max_open_positions: int = Field(3, ge=1, le=100)
    risk_of_ruin_threshold: float = Field(0.05, gt=0, le=1)
    risk_of_ruin_min_trades: int = Field(20, ge=1)
    max_consecutive_losses: int = Field(5, ge=1, le=100)
    max_drawdown_pct: float = Field(15.0, gt=0, le=100)
    stale_data_seconds: int = Field(900, ge=1, description="Older market data blocks entries")
    max_trades_per_hour: int = Field(6, ge=1, le=1_000)
    min_bankroll: float = Field(10.0, ge=0, description="Below this equity the bot stops entering")
    min_confidence: float = Field(0.55, ge=0, le=1)


class FeedConfig(_Section):
    ws_url: str = "wss://ws.kraken.com/v2"
    heartbeat_timeout_seconds: float = Field(5.0, gt=0, le=120)
    reconnect_initial_seconds: float = Field(1.0, gt=0, le=60)
    reconnect_max_seconds: float = Field(60.0, gt=0, le=3_600)
    backoff_1013_seconds: float = Field(30.0, gt=0, le=3_600, description="Wait after close 1013")
    circuit_breaker_seconds: int = Field(
        300, ge=1, description="Feed down this long pauses trading (runbook 2)"
    )


class ExchangeConfig(_Section):
    name: Literal["kraken"] = "kraken"
    rest_url: str | None = Field(None, description="Override of the REST API base (tests)")
    rate_limit_per_second: float = Field(1.0, gt=0, le=50)
    canary_max_notional: float = Field(50.0, gt=0)


class MonitoringConfig(_Section):
    metrics_retention_hours: int = Field(72, ge=1, le=24 * 90)
    main_loop_stall_seconds: float = Field(30.0, gt=0, description="Health turns 503 after this")


class DashboardConfig(_Section):
    host: str = "0.0.0.0"
    port: int = Field(8090, ge=1, le=65_535)
    thought_feed_max: int = Field(200, ge=10, le=100_000)


class AnalyticsConfig(_Section):
    enabled: bool = False
    url: str | None = None
    buffer_maxlen: int = Field(10_000, ge=100, le=1_000_000)
    required: Literal[False] = False


class MLConfig(_Section):
    enabled: bool = True
    model_path: str = "models/trade_predictor.tflite"
    retrain_interval_hours: int = Field(24, ge=1, le=24 * 30)


class AIConfig(_Section):
    strategy_guardrails_enabled: bool = True
    strategy_guardrails_disable_minutes: int = Field(120, ge=1, le=7 * 24 * 60)
    guardrail_min_trades: int = Field(10, ge=2)
    guardrail_min_win_rate: float = Field(0.30, ge=0, le=1)
    guardrail_min_profit_factor: float = Field(0.7, ge=0)
    auto_tune_enabled: bool = True
    strategy_weights: dict[str, float] = Field(default_factory=dict)


class DatabaseConfig(_Section):
    url: str | None = Field(None, description="PostgreSQL URL; unset = embedded PostgreSQL")
    lock_timeout_seconds: float = Field(30.0, gt=0, le=600)


class InstanceConfig(_Section):
    data_dir: str = "data"
    identity: str = Field("default", min_length=1, description="Account identity: one bot each")
    heartbeat_seconds: float = Field(10.0, gt=0)


class TelegramConfig(_Section):
    enabled: bool = False
    chat_id: str | None = None


class Config(_Section):
    trading: TradingConfig = Field(default_factory=TradingConfig)
    risk: RiskConfig = Field(default_factory=RiskConfig)
    feed: FeedConfig = Field(default_factory=FeedConfig)
    exchange: ExchangeConfig = Field(default_factory=ExchangeConfig)
    monitoring: MonitoringConfig = Field(default_factory=MonitoringConfig)
    dashboard: DashboardConfig = Field(default_factory=DashboardConfig)
    analytics: AnalyticsConfig = Field(default_factory=AnalyticsConfig)
    ml: MLConfig = Field(default_factory=MLConfig)
    ai: AIConfig = Field(default_factory=AIConfig)
    database: DatabaseConfig = Field(default_factory=DatabaseConfig)
    instance: InstanceConfig = Field(default_factory=InstanceConfig)
    telegram: TelegramConfig = Field(default_factory=TelegramConfig)

    @model_validator(mode="after")
    def _cross_checks(self) -> Config:
        if self.risk.take_profit_pct <= self.risk.stop_loss_pct / 4:
            raise ValueError("risk.take_profit_pct must be more than a quarter of stop_loss_pct")
        if self.feed.reconnect_max_seconds < self.feed.reconnect_initial_seconds:
            raise ValueError("feed.reconnect_max_seconds must be >= reconnect_initial_seconds")
        return self


class ConfigError(Exception):
    """A configuration that cannot be used. `errors` lists every problem with its field path."""

    def __init__(self, source: str, errors: list[str]) -> None:
        self.source = source
        self.errors = errors
        lines = "\n".join(f"  - {e}" for e in errors)
        super().__init__(f"invalid configuration ({source}):\n{lines}")


def _format_validation_error(exc: ValidationError) -> list[str]:
    messages = []
    for err in exc.errors():
        path = ".".join(str(p) for p in err["loc"]) or "(root)"
        messages.append(f"{path}: {err['msg']}")
    return messages


def _set_path(tree: dict[str, Any], path: list[str], value: Any) -> None:
    node = tree
    for key in path[:-1]:
        child = node.setdefault(key, {})
        if not isinstance(child, dict):
            child = {}
            node[key] = child
        node = child
    node[path[-1]] = value


def env_overrides(environ: Mapping[str, str]) -> dict[str, Any]:
    """The config tree that environment variables ask for (values parsed as YAML scalars)."""
    tree: dict[str, Any] = {}
    for name, raw in environ.items():
        if not name.startswith(ENV_PREFIX):
            continue
        path = [p.lower() for p in name[len(ENV_PREFIX) :].split("__") if p]
        if path:
            _set_path(tree, path, yaml.safe_load(raw) if raw != "" else "")
    if environ.get("TRADING_MODE"):
        _set_path(tree, ["trading", "mode"], environ["TRADING_MODE"].strip().lower())
    if environ.get("DATABASE_URL"):
        _set_path(tree, ["database", "url"], environ["DATABASE_URL"])
    return tree


def deep_merge(base: dict[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def read_yaml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(str(path), [f"cannot read file: {exc.strerror or exc}"]) from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(str(path), [f"not valid YAML: {exc}"]) from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(str(path), ["(root): expected a mapping of sections"])
    return data


def build_config(data: Mapping[str, Any], source: str = "config") -> Config:
    try:
        return Config.model_validate(dict(data))
    except ValidationError as exc:
        raise ConfigError(source, _format_validation_error(exc)) from exc


def load_config(
    path: Path | None = None,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Config:
    """File, then environment, then explicit overrides (the CLI's flags), validated once."""
    env = os.environ if environ is None else environ
    data: dict[str, Any] = read_yaml(path) if path is not None else {}
    data = deep_merge(data, env_overrides(env))
    if overrides:
        data = deep_merge(data, overrides)
    source = str(path) if path is not None else "defaults + environment"
    return build_config(data, source)


def config_json_schema() -> dict[str, Any]:
    """JSON schema of the whole model; the operator's CRD embeds it under `spec.config`."""
    return Config.model_json_schema()
