"""Response and request bodies of the control API: the OpenAPI schema is generated from these,
and every response is validated against them (a drifting field fails a test, not a user)."""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

PausedByName = Literal["manual", "operator", "risk_rule", "circuit_breaker"]
Scalar = float | int | str | bool | None


def finite(value: Any) -> Any:
    """The value with every NaN or infinity replaced by None (JSON has no such numbers)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [finite(v) for v in value]
    return value


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Probe(_Model):
    ok: bool
    detail: str


class ErrorTradeOut(_Model):
    trade_id: str
    pair: str
    quantity: float
    last_error: str | None


class PauseOut(_Model):
    by: PausedByName
    reason: str
    since: float | None


class ReconciliationOut(_Model):
    last_run: float
    ghosts: list[str] = Field(description="Trade ids: store open, exchange balance short")
    orphans: list[str] = Field(description="Open exchange orders the bot does not know")


class ExchangeOut(_Model):
    venue: str
    error: str | None
    orders_waiting: int
    reconciliation: ReconciliationOut | None


class AnalyticsOut(_Model):
    ok: bool | None = Field(description="null until OpenSearch was first tried")
    state: Literal["starting", "ok", "failed"]
    detail: str = Field(description="The reason, with the counts")
    dropped: int = Field(description="Documents dropped (oldest first) while the buffer was full")
    buffered: int
    indexed: int
    rejected: int = Field(description="Documents the index mappings refused (mapping conflict)")
    retention: Literal["ism", "bot"] | None = Field(
        description="ism: OpenSearch's ISM policy deletes old indices; bot: no ISM, the bot does")


class TelegramOut(_Model):
    ok: bool | None = Field(description="null until the Bot API first answered or failed")
    last_error: str | None
    outages: int = Field(description="Times the Bot API stopped answering")
    commands: int
    refused: int = Field(description="Messages from chats not allowed to command")
    notifications_sent: int
    notifications_dropped: int


class Status(_Model):
    mode: Literal["paper", "canary", "live"]
    account_currency: str = Field(
        "", description="Currency of equity, bankroll and P&L (trading.account_currency)")
    paused: bool
    pause_reason: str | None
    paused_by: PausedByName | None
    ws_connected: bool
    ws_down_s: float | None = Field(
        None, description="Seconds the market feed has been down (0 while connected; since "
        "start while it never connected): what the circuit breaker and the operator's "
        "spec.remediation.feed thresholds count. null without a feed")
    ws_up_s: float | None = Field(
        None, description="Seconds the market feed has been connected (0 while down): what "
        "the operator's spec.remediation.feed.resumeAfterHealthy counts. null without a feed")
    feed: dict[str, float | None] = Field(description="Seconds since the last data, per pair")
    open_positions: int
    equity: float | None
    daily_pnl: float | None
    bankroll: float | None
    strategies_disabled: list[str]
    error_trades: int
    error_trade_list: list[ErrorTradeOut] = Field(
        description="Trades whose exit gave up: may still be open on the exchange (runbook 4)")
    pauses: list[PauseOut] = Field(description="Every pause held; trading runs when none is")
    closing: list[str] = Field(description="Trades whose exit order is working")
    exchange: ExchangeOut | None = Field(description="Canary and live: the venue's state")
    db_ok: bool
    analytics_ok: bool | None = Field(
        description="null while analytics is disabled or before OpenSearch was first tried")
    analytics_detail: str = Field(description="Why analytics_ok is what it is")
    analytics: AnalyticsOut | None = Field(None, description="null while analytics is disabled")
    telegram: TelegramOut | None = Field(None, description="null while Telegram is disabled")
    ml_ok: bool | None = Field(description="null while the model is disabled or not built")
    ml_detail: str = Field(description="Why ml_ok is what it is")
    ml: dict[str, Any] | None = Field(
        None, description="The model: state, mode (applied|shadow), version, trained_at, "
        "samples, validation_score, learner, last_retrain (docs/ml.md)")
    version: str
    instance: str
    uptime_s: float
    healthy: bool | None = Field(
        None, description="What GET /api/v1/health answers now (the main loop ticked "
        "recently): one request tells a poller both")
    health_detail: str = Field("", description="Why healthy is what it is")


class ThoughtOut(_Model):
    ts: float
    kind: str
    pair: str | None
    message: str
    data: dict[str, Scalar]


class Thoughts(_Model):
    thoughts: list[ThoughtOut]


class GateState(_Model):
    gate: str
    blocking: bool
    value: Scalar
    limit: Scalar
    message: str | None = Field(description="What the thought log says while it blocks")
    detail: dict[str, Scalar] | None = Field(
        None, description="The inputs behind the value (e.g. the risk of ruin's)")


class Sizing(_Model):
    configured_risk_pct: float
    effective_risk_pct: float = Field(
        description="What a trade really risks at its initial stop, fees and slippage included")
    limited_by: Literal["risk", "position_cap", "cash"] = Field(
        description="position_cap: the cap on a position's notional makes the real risk "
                    "smaller than configured")
    max_position_pct: float
    stop_loss_pct: float
    fee_rate: float
    slippage_bps: float


class Risk(_Model):
    gates: list[GateState]
    sizing: Sizing


class StrategyOut(_Model):
    name: str
    weight: float | None
    weight_reason: str = Field(
        "", description="Why the weight is what it is: configured, or the auto-tuner's last move")
    weight_changed_at: float | None = Field(None, description="Market time of that move")
    trades: int
    wins: int = 0
    win_rate: float | None
    profit_factor: float | None = Field(
        description="Gross profit / gross loss; null without a losing trade (∞ or undefined)")
    runtime_disabled: bool
    disabled_until: float | None
    manually_disabled: bool
    enabled: bool


class Strategies(_Model):
    strategies: list[StrategyOut]


class TradeOut(_Model):
    trade_id: str
    pair: str
    side: Literal["buy", "sell"]
    status: Literal["pending", "open", "closing", "closed", "error", "rejected"]
    entry_price: float
    quantity: float
    entry_time: float
    strategy: str
    stop_loss: float | None
    take_profit: float | None
    entry_fee: float
    exit_price: float | None
    exit_time: float | None
    exit_fee: float
    pnl: float | None
    trailing_stop: float | None
    highest_price: float | None
    lowest_price: float | None
    notes: str
    mode: str


class PositionOut(TradeOut):
    last_price: float | None
    unrealized_pnl: float | None


class Positions(_Model):
    positions: list[PositionOut]


class Trades(_Model):
    trades: list[TradeOut]


class Performance(_Model):
    closed_trades: int
    wins: int
    losses: int
    win_rate: float | None
    profit_factor: float | None
    realized_pnl: float | None
    equity: float | None
    total_return_pct: float | None
    drawdown_pct: float | None
    peak_equity: float | None


class Equity(_Model):
    points: list[Annotated[list[float], Field(min_length=2, max_length=2)]] = Field(
        description="[unix time, equity] pairs, oldest first")


class Prices(_Model):
    pairs: dict[str, list[Annotated[list[float], Field(min_length=2, max_length=2)]]] = Field(
        description="Per pair, recent [close time, close] points, oldest first")


class PauseRequest(_Model):
    reason: str = Field("manual pause via API", min_length=1, max_length=500)


class ControlResult(_Model):
    changed: bool = Field(description="False when the bot was already in the asked state")
    paused: bool
    paused_by: PausedByName | None
    pause_reason: str | None


class ResolveRequest(_Model):
    exit_price: float = Field(gt=0, description="The price the position really left at")
    fee: float = Field(0.0, ge=0, description="The exit's fee, in the account currency")
    note: str = Field("", max_length=500)


class MLRetrainResult(_Model):
    accepted: bool = Field(description="True when a new model was installed")
    reason: str
    trigger: str
    samples: int | None = None
    at: float
    seconds: float


class ClosedAll(_Model):
    closed: list[str] = Field(description="Ids of the trades closed")


class StrategySwitch(_Model):
    name: str
    enabled: bool
    changed: bool


class ErrorBody(_Model):
    detail: str | list[dict[str, Any]] = Field(
        description="What went wrong; a list of field errors when the request was malformed")


AUTH_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorBody, "description": "no key, wrong key, no session"},
    503: {"model": ErrorBody, "description": "the main loop does not answer"},
}
