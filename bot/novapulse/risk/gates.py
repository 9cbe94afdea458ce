"""The gates of runbook 3, each one object: how it reads the state, its limit, its message.

`RiskManager.check_entry` asks them in order and stops at the first that blocks;
`RiskManager.report` (`/api/v1/risk`) lists every reading. One definition serves both, so the
report can never say a gate is open while entries are refused by it (or the reverse) — the
shape of Freqtrade's protections, with the runbook's own messages.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from novapulse.config import QuietHours

if TYPE_CHECKING:
    from novapulse.risk.manager import RiskManager

Scalar = float | int | str | bool | None


class Gate(enum.StrEnum):
    PAUSED = "paused"
    BANKROLL = "bankroll_depleted"
    DAILY_LOSS = "daily_loss_limit"
    DRAWDOWN = "drawdown_pause"
    CONSECUTIVE_LOSSES = "consecutive_losses"
    RISK_OF_RUIN = "risk_of_ruin"
    MAX_POSITIONS = "max_positions"
    COOLDOWN = "global_cooldown"
    TRADE_RATE = "trade_rate"
    QUIET_HOURS = "quiet_hours"
    STALE_DATA = "stale_data"


MSG_DAILY_LOSS = "Daily loss limit reached"
MSG_MAX_POSITIONS = "Max positions reached"
MSG_RISK_OF_RUIN = "Risk of ruin threshold exceeded"
MSG_TRADE_RATE = "trade-rate limit reached"
MSG_BANKROLL = "Bankroll depleted"
MSG_STALE = "Data freshness check failed"
MSG_QUIET = "Trade blocked during quiet hours"
MSG_MANUAL_PAUSE = "Trading PAUSED via control"
MSG_AUTO_PAUSE = "Auto-pause triggered"

SECONDS_PER_DAY = 86_400


def cooldown_message(remaining_s: float) -> str:
    return f"Global cooldown: {math.ceil(remaining_s)}s remaining"


@dataclass(frozen=True, slots=True)
class Observation:
    """What the gates are asked about: market time and the account as marked to market."""

    now: float
    equity: float
    cash: float
    open_positions: int
    data_age_s: float | None = None


@dataclass(frozen=True, slots=True)
class Reading:
    gate: Gate
    blocking: bool
    value: Scalar
    limit: Scalar
    message: str = ""
    detail: dict[str, Scalar] = field(default_factory=dict)

    def as_dict(self) -> dict[str, object]:
        row: dict[str, object] = {"gate": str(self.gate), "blocking": self.blocking,
                                  "value": self.value, "limit": self.limit,
                                  "message": self.message if self.blocking else None}
        if self.detail:
            row["detail"] = dict(self.detail)
        return row


class RiskGate(Protocol):
    gate: Gate

    def read(self, risk: RiskManager, obs: Observation) -> Reading: ...


class PausedGate:
    gate = Gate.PAUSED

    def read(self, risk: RiskManager, obs: Observation) -> Reading:
        pauses = risk.pauses
        holds = pauses.holds
        message = "; ".join(f"Trading paused ({h.by}): {h.reason}" for h in holds)
        return Reading(self.gate, pauses.paused, pauses.reason or None, None, message,
                       {"held_by": ",".join(str(h.by) for h in holds) or None})


class BankrollGate:
    """Equity at or below the floor, or too little cash left to open anything."""

    gate = Gate.BANKROLL

    def read(self, risk: RiskManager, obs: Observation) -> Reading:
        floor = risk.bankroll_floor
        blocking = obs.equity <= floor or obs.cash <= floor * 0.1
        return Reading(self.gate, blocking, round(obs.equity, 8), floor, MSG_BANKROLL,
                       {"cash": round(obs.cash, 8)})


class DailyLossGate:
    """The day's loss, open positions marked to market, against the limit of the day."""

    gate = Gate.DAILY_LOSS

    def read(self, risk: RiskManager, obs: Observation) -> Reading:
        day_pnl = risk.day_pnl(obs.equity)
        limit = risk.daily_loss_limit()
        return Reading(self.gate, day_pnl <= -limit, round(day_pnl, 8), -round(limit, 8),
                       MSG_DAILY_LOSS,
                       {"realized": round(risk.state.daily_realized_pnl, 8),
                        "day_start_equity": round(risk.state.day_start_equity, 8)})


class DrawdownGate:
    """Drawdown from the peak of marked equity. After a human resumes a drawdown pause, the
    rule waits until the drawdown deepens by another full limit (or recovers) before it
    pauses again: the peak itself is never forgotten."""

    gate = Gate.DRAWDOWN

    def read(self, risk: RiskManager, obs: Observation) -> Reading:
        drawdown = risk.drawdown_pct(obs.equity)
        trigger = risk.drawdown_trigger_pct()
        limit = risk.config.max_drawdown_pct
        message = f"{MSG_AUTO_PAUSE}: drawdown {drawdown:.2f}% exceeds {limit:g}%"
        return Reading(self.gate, drawdown >= trigger, round(drawdown, 4), limit, message,
                       {"peak_equity": round(risk.state.peak_equity, 8),
                        "pauses_at_pct": round(trigger, 4)})


class ConsecutiveLossesGate:
    gate = Gate.CONSECUTIVE_LOSSES

    def read(self, risk: RiskManager, obs: Observation) -> Reading:
        count = risk.state.consecutive_losses
        limit = risk.config.max_consecutive_losses
        message = f"{MSG_AUTO_PAUSE}: {count} consecutive losses (limit {limit})"
        return Reading(self.gate, count >= limit, count, limit, message)


class RiskOfRuinGate:
    gate = Gate.RISK_OF_RUIN

    def read(self, risk: RiskManager, obs: Observation) -> Reading:
        inputs = risk.ruin_inputs(obs.equity, obs.cash)
        threshold = risk.config.risk_of_ruin_threshold
        enough = inputs.trades >= risk.config.risk_of_ruin_min_trades
        value = round(inputs.risk_of_ruin, 8) if enough else None
        detail: dict[str, Scalar] = dict(inputs.as_dict())
        detail["min_trades"] = risk.config.risk_of_ruin_min_trades
        return Reading(self.gate, enough and inputs.risk_of_ruin > threshold, value, threshold,
                       MSG_RISK_OF_RUIN, detail)


class MaxPositionsGate:
    gate = Gate.MAX_POSITIONS

    def read(self, risk: RiskManager, obs: Observation) -> Reading:
        limit = risk.config.max_open_positions
        return Reading(self.gate, obs.open_positions >= limit, obs.open_positions, limit,
                       MSG_MAX_POSITIONS)


class CooldownGate:
    gate = Gate.COOLDOWN

    def read(self, risk: RiskManager, obs: Observation) -> Reading:
        last = risk.state.last_close_time
        limit = risk.config.global_cooldown_seconds
        remaining = 0.0 if last is None else max(0.0, last + limit - obs.now)
        return Reading(self.gate, remaining > 0, round(remaining, 1), limit,
                       cooldown_message(remaining))


class TradeRateGate:
    gate = Gate.TRADE_RATE

    def read(self, risk: RiskManager, obs: Observation) -> Reading:
        count = risk.trades_last_hour(obs.now)
        limit = risk.config.max_trades_per_hour
        return Reading(self.gate, count >= limit, count, limit, MSG_TRADE_RATE)


class QuietHoursGate:
    gate = Gate.QUIET_HOURS

    def read(self, risk: RiskManager, obs: Observation) -> Reading:
        quiet = risk.quiet_hours
        blocking = in_quiet_hours(quiet, obs.now)
        window = (f"{quiet.start_hour_utc:02d}-{quiet.end_hour_utc:02d} UTC"
                  if quiet.enabled else None)
        return Reading(self.gate, blocking, None, window, MSG_QUIET)


class StaleDataGate:
    gate = Gate.STALE_DATA

    def read(self, risk: RiskManager, obs: Observation) -> Reading:
        age = obs.data_age_s
        limit = risk.config.stale_data_seconds
        return Reading(self.gate, age is not None and age > limit,
                       None if age is None else round(age, 1), limit, MSG_STALE)


def in_quiet_hours(quiet: QuietHours, now: float) -> bool:
    start, end = quiet.start_hour_utc, quiet.end_hour_utc
    if not quiet.enabled or start == end:
        return False
    hour = int(now % SECONDS_PER_DAY) // 3600
    if start < end:
        return start <= hour < end
    return hour >= start or hour < end


# The order entries are checked in: the first that blocks names the reason.
GATES: tuple[RiskGate, ...] = (
    PausedGate(), BankrollGate(), DailyLossGate(), DrawdownGate(), ConsecutiveLossesGate(),
    MaxPositionsGate(), RiskOfRuinGate(), CooldownGate(), TradeRateGate(), QuietHoursGate(),
    StaleDataGate(),
)
