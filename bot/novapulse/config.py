"""The bot's one configuration model: YAML file + environment overrides, validated at start.

Environment overrides use `NOVAPULSE__SECTION__FIELD=value` (double underscores), e.g.
`NOVAPULSE__TRADING__WARMUP_BARS=300`. A few well-known variables from the runbooks are
honoured too: `TRADING_MODE` and `DATABASE_URL`. Secrets (API keys, dashboard secrets) are
never part of this model: they are read from the environment by the code that needs them.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from novapulse.config_env import FROM_ENV, EnvSetting, read_env, unknown_name, variable_for

# Kraken WebSocket v2 spelling, BASE/QUOTE (bitcoin is BTC there, not XBT). The operator's
# CRD uses the same pattern for `spec.pairs`, so both refuse the same pairs.
PAIR_PATTERN = r"^[A-Z0-9]{2,10}/[A-Z0-9]{2,10}$"
PAIR_MAX_LENGTH = 21
MAX_PAIRS = 50
CURRENCY_PATTERN = r"^[A-Z0-9]{2,10}$"
# Kraken's REST OHLC returns only its newest 720 candles whatever `since` says, and the
# newest of them is the still-open one: 719 closed candles is all a warm-up can get.
KRAKEN_OHLC_MAX_ROWS = 720
MAX_WARMUP_BARS = KRAKEN_OHLC_MAX_ROWS - 1

Mode = Literal["paper", "canary", "live"]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class QuietHours(_Section):
    enabled: bool = False
    start_hour_utc: int = Field(0, ge=0, le=23, description="First UTC hour with no new entries")
    end_hour_utc: int = Field(0, ge=0, le=23, description="UTC hour when entries are allowed again")


def _custom_error(kind: str, message: str) -> PydanticCustomError:
    return PydanticCustomError(kind, "{message}", {"message": message})


def _with_quotes(pairs: list[str]) -> str:
    """'ETH/USD (USD), LTC/EUR (EUR)'."""
    return ", ".join(f"{p} ({p.partition('/')[2]})" for p in pairs)


def _wellformed_pair(pair: str) -> str:
    if re.fullmatch(PAIR_PATTERN, pair) is None:
        raise _custom_error(
            "pair_spelling", f"'{pair}' is not a pair in Kraken's WebSocket v2 spelling "
            "BASE/QUOTE (upper case, e.g. ETH/BTC)")
    return pair


Pair = Annotated[
    str,
    AfterValidator(_wellformed_pair),
    WithJsonSchema({"type": "string", "pattern": PAIR_PATTERN, "maxLength": PAIR_MAX_LENGTH}),
]


class TradingConfig(_Section):
    mode: Mode = "paper"
    # Declared before `pairs`: the pairs are checked against it.
    account_currency: str = Field(
        "BTC", pattern=CURRENCY_PATTERN, json_schema_extra={"maxLength": 10},
        description="Currency of the bankroll, equity and P&L; every pair must be quoted in it",
    )
    pairs: list[Pair] = Field(
        default_factory=lambda: ["ETH/BTC"], min_length=1, max_length=MAX_PAIRS,
        validate_default=True,  # the default pairs too must be quoted in the account currency
    )
    timeframe_minutes: Literal[1, 5, 15, 30, 60, 240, 1440] = 5
    warmup_bars: int = Field(500, ge=1, json_schema_extra={"maximum": MAX_WARMUP_BARS})
    starting_bankroll: float = Field(
        10_000.0, gt=0, description="Paper-mode bankroll, in the account currency"
    )
    fee_rate: float = Field(0.0026, ge=0, le=0.05, description="Taker fee as a fraction")
    slippage_bps: float = Field(5.0, ge=0, le=500)
    quiet_hours: QuietHours = Field(default_factory=QuietHours)

    @field_validator("pairs")
    @classmethod
    def _quoted_in_account_currency(cls, pairs: list[str], info: ValidationInfo) -> list[str]:
        currency = info.data.get("account_currency")
        if currency is None:  # itself invalid, and reported as such
            return pairs
        others = [p for p in pairs if p.partition("/")[2] != currency]
        if others:
            hint = " (Kraken's WebSocket v2 spells bitcoin BTC)" if currency == "BTC" and any(
                p.endswith("/XBT") for p in others) else ""
            raise _custom_error(
                "pair_quote", f"{_with_quotes(others)}: not quoted in the account currency "
                f"{currency} (trading.account_currency); the bot does not convert between "
                f"currencies{hint}")
        return pairs

    @field_validator("warmup_bars")
    @classmethod
    def _warmup_within_krakens_reach(cls, bars: int) -> int:
        if bars > MAX_WARMUP_BARS:
            raise _custom_error(
                "warmup_too_long", f"at most {MAX_WARMUP_BARS}: Kraken's REST OHLC serves only "
                f"its newest {KRAKEN_OHLC_MAX_ROWS} candles, the newest still open, whatever "
                "`since` asks for")
        return bars


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
    risk_of_ruin_window: int = Field(
        100, ge=10, le=10_000, description="Recent closed trades the risk of ruin is judged on")
    max_consecutive_losses: int = Field(5, ge=1, le=100)
    max_drawdown_pct: float = Field(15.0, gt=0, le=100)
    stale_data_seconds: int = Field(900, ge=1, description="Older market data blocks entries")
    max_trades_per_hour: int = Field(6, ge=1, le=1_000)
    # A percentage, so the floor fits any account size and currency (10 of the 10,000
    # default bankroll, as before; 0.001 of a 1 BTC account).
    min_bankroll_pct: float = Field(
        0.1, ge=0, lt=100,
        description="'Bankroll depleted' at or below this % of trading.starting_bankroll",
    )
    min_bankroll: float | None = Field(
        None, ge=0,
        description="Absolute floor in the account currency; overrides min_bankroll_pct",
    )
    min_confidence: float = Field(0.55, ge=0, le=1)

    def min_bankroll_amount(self, starting_bankroll: float) -> float:
        """Equity (account currency) at or below which entries stop: 'Bankroll depleted'."""
        if self.min_bankroll is not None:
            return self.min_bankroll
        return starting_bankroll * self.min_bankroll_pct / 100.0


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
    rest_url: str | None = Field(
        None, description="Override of the REST API base, e.g. the emulator (env KRAKEN_REST_URL)")
    rate_limit_per_second: float = Field(
        1.0, gt=0, le=50, description="Client-side cap on REST calls, besides Kraken's counter")
    canary_max_notional: float = Field(
        0.001, gt=0, description="Cap on a canary order's notional, in the account currency"
    )
    reconcile_interval_seconds: int = Field(
        300, ge=2, le=86_400, description="How often the books are checked against the "
        "exchange for ghost positions and orphan orders (runbook 5)")


class MonitoringConfig(_Section):
    metrics_retention_hours: int = Field(72, ge=1, le=24 * 90)
    main_loop_stall_seconds: float = Field(30.0, gt=0, description="Health turns 503 after this")


class DashboardConfig(_Section):
    host: str = Field(
        "127.0.0.1", description="Address the API and dashboard listen on: loopback unless "
        "set (the operator sets 0.0.0.0 in a pod, behind its NetworkPolicy)")
    port: int = Field(8090, ge=1, le=65_535)
    thought_feed_max: int = Field(200, ge=10, le=100_000)
    trusted_proxies: list[str] = Field(
        default_factory=list, description="Addresses or CIDRs of reverse proxies (ingress) "
        "whose X-Forwarded-For names the client for login throttling; nobody else's is read")
    metrics_require_key: bool = Field(
        False, description="GET /metrics needs the read (or admin) key, as X-API-Key or "
        "Authorization: Bearer; default open, as Prometheus expects")

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        for item in value:
            try:
                ipaddress.ip_network(item.strip(), strict=False)
            except ValueError:
                raise ValueError(f"not an IP address or CIDR: {item!r}") from None
        return value


# OpenSearch analytics (runbook 12): a soft dependency, never in the way of trading. The
# credentials come from the environment (OPENSEARCH_USERNAME, OPENSEARCH_PASSWORD).
class AnalyticsConfig(_Section):
    enabled: bool = False
    url: str | None = Field(None, description="OpenSearch base URL, e.g. https://os:9200")
    index_prefix: str = Field(
        "novapulse", pattern=r"^[a-z0-9][a-z0-9_-]{0,40}$",
        description="Indices are <prefix>-candles|trades|thoughts|metrics-YYYY.MM.DD")
    retention_days: int = Field(30, ge=1, le=3_650, description="Indices older than this go")
    buffer_maxlen: int = Field(
        10_000, ge=100, le=1_000_000,
        description="Documents held while OpenSearch is slow or down; the oldest drop first")
    batch_size: int = Field(500, ge=1, le=10_000, description="Documents per bulk request")
    flush_interval_seconds: float = Field(1.0, gt=0, le=300)
    metrics_interval_seconds: float = Field(
        60.0, ge=1, le=3_600, description="How often a metrics snapshot is indexed")
    request_timeout_seconds: float = Field(
        10.0, gt=0, le=300, description="A request that takes longer counts as a failure")
    reconnect_initial_seconds: float = Field(1.0, gt=0, le=60)
    reconnect_max_seconds: float = Field(60.0, gt=0, le=3_600)
    verify_certs: bool = True
    required: Literal[False] = Field(
        False, description="Always false: the bot starts and trades without OpenSearch")

    @model_validator(mode="after")
    def _url_when_enabled(self) -> AnalyticsConfig:
        if self.enabled and not self.url:
            raise ValueError("analytics.url is required when analytics.enabled is true")
        if self.reconnect_max_seconds < self.reconnect_initial_seconds:
            raise ValueError("analytics.reconnect_max_seconds must be >= "
                             "reconnect_initial_seconds")
        return self


class MLConfig(_Section):
    enabled: bool = True
    model_path: str = "models/trade_predictor.tflite"
    retrain_interval_hours: int = Field(24, ge=1, le=24 * 30)
    mode: Literal["auto", "shadow"] = Field(
        "auto", description="auto: the model adjusts confidence only when its own validation "
        "says it helps; shadow: predictions are logged, never applied")
    min_samples: int = Field(200, ge=20, description="Labelled trades needed to (re)train")
    min_auc: float = Field(0.55, ge=0.5, le=1, description="Held-out AUC a model needs to act")
    holdout_fraction: float = Field(0.25, gt=0.05, lt=0.9)
    hidden_units: int = Field(0, ge=0, le=64, description="0 = logistic regression")
    learning_rate: float = Field(0.01, gt=0, le=1, description="The online learner's step")


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


# Telegram control and notifications over the Bot API (long polling). The token comes from
# the environment (TELEGRAM_BOT_TOKEN) and is never logged.
class TelegramConfig(_Section):
    enabled: bool = False
    api_base_url: str = Field(
        "https://api.telegram.org", description="Bot API base URL (a local fake in tests)")
    allowed_chat_ids: list[int] = Field(
        default_factory=list, max_length=50,
        description="Chats that may command the bot and receive its notifications")
    poll_timeout_seconds: int = Field(25, ge=0, le=50, description="getUpdates long-poll wait")
    request_timeout_seconds: float = Field(
        10.0, gt=0, le=120, description="Added to the long-poll wait for getUpdates")
    notify: bool = Field(True, description="Send fills, pauses, resumes, errors, guardrails")
    notify_max_per_minute: int = Field(
        20, ge=1, le=600, description="Notifications beyond this are dropped and counted")
    retry_initial_seconds: float = Field(1.0, gt=0, le=60)
    retry_max_seconds: float = Field(60.0, gt=0, le=3_600)

    @model_validator(mode="after")
    def _chats_when_enabled(self) -> TelegramConfig:
        if self.enabled and not self.allowed_chat_ids:
            raise ValueError("telegram.allowed_chat_ids must name at least one chat when "
                             "telegram.enabled is true")
        return self


class StrategySpec(_Section):
    """One strategy of the ensemble: a class by import path, its parameters and its weight."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, populate_by_name=True)

    class_: str = Field(
        alias="class", min_length=3, max_length=300,
        # In the schema (the CRD) only: the loader's own message is the clearer one.
        json_schema_extra={"pattern": r"^[^:\s]+:[A-Za-z_][A-Za-z0-9_]*$"},
        description="'package.module:ClassName' or 'file.py:ClassName', e.g. "
        "'novapulse.strategies.trend:EmaCrossTrend'",
    )
    params: dict[str, Any] = Field(
        default_factory=dict, description="Constructor arguments of the class",
        validate_default=True,  # the class is built (and checked) without params too
        json_schema_extra={"x-kubernetes-preserve-unknown-fields": True},
    )
    weight: float = Field(1.0, ge=0, le=100, description="Vote weight in the ensemble")

    @field_validator("class_")
    @classmethod
    def _importable(cls, path: str) -> str:
        from novapulse.strategies.loader import StrategyLoadError, load_class

        try:
            load_class(path)
        except StrategyLoadError as exc:
            raise _custom_error("strategy_class", exc.message) from exc
        return path

    @field_validator("params")
    @classmethod
    def _buildable(cls, params: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
        path = info.data.get("class_")
        if path is None:  # the class itself is wrong, and reported as such
            return params
        from novapulse.strategies.loader import StrategyLoadError, build_strategy

        try:
            build_strategy(path, params)
        except StrategyLoadError as exc:
            where = exc.part.removeprefix("params").lstrip(".")
            raise _custom_error("strategy_params",
                                f"{where}: {exc.message}" if where else exc.message) from exc
        return params

    def build(self) -> Any:
        """The strategy instance (a `novapulse.strategies.Strategy`)."""
        from novapulse.strategies.loader import build_strategy

        return build_strategy(self.class_, self.params)


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
    strategies: list[StrategySpec] | None = Field(
        None, max_length=50,
        description="The ensemble's strategies; unset = the five built-ins with defaults",
    )

    @model_validator(mode="after")
    def _cross_checks(self) -> Config:
        if self.strategies is not None:
            self._check_strategies(self.strategies)
        if self.risk.take_profit_pct <= self.risk.stop_loss_pct / 4:
            raise ValueError("risk.take_profit_pct must be more than a quarter of stop_loss_pct")
        if self.feed.reconnect_max_seconds < self.feed.reconnect_initial_seconds:
            raise ValueError("feed.reconnect_max_seconds must be >= reconnect_initial_seconds")
        return self

    def _check_strategies(self, specs: list[StrategySpec]) -> None:
        """Names unique; each weight given once (`strategies[].weight` fills
        `ai.strategy_weights`, which the auto-tuner and the guardrail read)."""
        seen: dict[str, int] = {}
        weights = self.ai.strategy_weights
        for index, spec in enumerate(specs):
            name = spec.build().name
            if name in seen:
                raise ValueError(f"strategies.{index}: a second strategy named '{name}' (first "
                                 f"at strategies.{seen[name]}); give it another params.name")
            seen[name] = index
            if name in weights and weights[name] != spec.weight and "weight" in (
                    spec.model_fields_set):
                raise ValueError(f"strategies.{index}.weight: {spec.weight:g} conflicts with "
                                 f"ai.strategy_weights.{name} ({weights[name]:g}); set it once")
            weights.setdefault(name, spec.weight)


class ConfigError(Exception):
    """A configuration that cannot be used. `errors` lists every problem with its field path."""

    def __init__(self, source: str, errors: list[str]) -> None:
        self.source = source
        self.errors = errors
        lines = "\n".join(f"  - {e}" for e in errors)
        super().__init__(f"invalid configuration ({source}):\n{lines}")


def _format_validation_error(
    exc: ValidationError, from_env: Sequence[EnvSetting] = ()
) -> list[str]:
    messages = []
    for err in exc.errors():
        path = ".".join(str(p) for p in err["loc"]) or "(root)"
        message = err["msg"]
        unknown = unknown_name(Config, [str(p) for p in err["loc"]])
        if err["type"] == "extra_forbidden" and unknown is not None:
            message = ("unknown section" if len(err["loc"]) == 1 else "unknown setting") + (
                unknown[1])
        variable = variable_for(err["loc"], from_env)
        origin = f" (from {variable})" if variable else ""
        messages.append(f"{path}: {message}{origin}")
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


def _has_path(tree: Mapping[str, Any], path: Sequence[str]) -> bool:
    node: Any = tree
    for key in path:
        if not isinstance(node, Mapping) or key not in node:
            return False
        node = node[key]
    return True


def _tree(settings: Sequence[EnvSetting]) -> dict[str, Any]:
    tree: dict[str, Any] = {}
    for setting in settings:
        _set_path(tree, list(setting.path), setting.value)
    return tree


def _env_settings(environ: Mapping[str, str]) -> tuple[list[EnvSetting], list[str]]:
    """The environment's settings that name a real setting, and a message for each other."""
    settings, errors = read_env(environ)
    known = []
    for setting in settings:
        unknown = unknown_name(Config, setting.path)
        if unknown is None:
            known.append(setting)
        else:
            what, hint = unknown
            errors.append(f"{setting.variable}: {what} {FROM_ENV}{hint}")
    return known, errors


def deep_merge(base: dict[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _yaml_problem(path: Path, exc: yaml.YAMLError) -> str:
    """'config.yaml:3:7: not valid YAML: ...', positions 1-based as editors show them."""
    if not isinstance(exc, yaml.MarkedYAMLError) or exc.problem_mark is None:
        return f"{path}: not valid YAML: {exc}"
    mark = exc.problem_mark
    problem = exc.problem or "syntax error"
    context = f" ({exc.context})" if exc.context else ""
    return f"{path}:{mark.line + 1}:{mark.column + 1}: not valid YAML: {problem}{context}"


def read_yaml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(str(path), [f"cannot read file: {exc.strerror or exc}"]) from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(str(path), [_yaml_problem(path, exc)]) from exc
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
    from_env, errors = _env_settings(env)
    data = deep_merge(data, _tree(from_env))
    if overrides:
        data = deep_merge(data, overrides)
        from_env = [s for s in from_env if not _has_path(overrides, s.path)]
    source = str(path) if path is not None else "defaults + environment"
    try:
        config = Config.model_validate(data)
    except ValidationError as exc:
        errors += _format_validation_error(exc, from_env)
    if errors:
        raise ConfigError(source, errors)
    return config


def config_json_schema() -> dict[str, Any]:
    """JSON schema of the whole model; the operator's CRD embeds it under `spec.config`."""
    return Config.model_json_schema()
