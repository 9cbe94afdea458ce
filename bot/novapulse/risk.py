"""The risk manager: every gate of runbook 3, as pure decisions over explicit state.

Time is always passed in (market time: the close time of the candle being decided on), so the
same code decides in a backtest, on the replay feed and live. Messages are the runbook's own
words: operators grep the thought log for them.
"""

from __future__ import annotations

import enum
import math
from collections import deque
from dataclasses import dataclass, field

from novapulse.config import QuietHours, RiskConfig

SECONDS_PER_DAY = 86_400


class PausedBy(enum.StrEnum):
    MANUAL = "manual"
    OPERATOR = "operator"
    RISK_RULE = "risk_rule"
    CIRCUIT_BREAKER = "circuit_breaker"


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


def cooldown_message(remaining_s: float) -> str:
    return f"Global cooldown: {math.ceil(remaining_s)}s remaining"


@dataclass(frozen=True, slots=True)
class Verdict:
    allowed: bool
    gate: Gate | None = None
    message: str = ""


ALLOWED = Verdict(True)


@dataclass(slots=True)
class PauseState:
    paused: bool = False
    reason: str = ""
    paused_by: PausedBy | None = None
    since: float | None = None


@dataclass(slots=True)
class RiskState:
    """Everything the gates look at that the risk manager keeps itself."""

    day_start: int = 0
    day_start_equity: float = 0.0
    daily_realized_pnl: float = 0.0
    peak_equity: float = 0.0
    consecutive_losses: int = 0
    last_close_time: float | None = None
    entry_times: deque[float] = field(default_factory=deque)
    wins: int = 0
    losses: int = 0
    sum_wins: float = 0.0
    sum_losses: float = 0.0
    pause: PauseState = field(default_factory=PauseState)


def in_quiet_hours(quiet: QuietHours, now: float) -> bool:
    if not quiet.enabled or quiet.start_hour_utc == quiet.end_hour_utc:
        return False
    hour = int(now % SECONDS_PER_DAY) // 3600
    if quiet.start_hour_utc < quiet.end_hour_utc:
        return quiet.start_hour_utc <= hour < quiet.end_hour_utc
    return hour >= quiet.start_hour_utc or hour < quiet.end_hour_utc


def risk_of_ruin(win_rate: float, avg_win: float, avg_loss: float, capital_units: float) -> float:
    """Classic approximation ((1-A)/(1+A))^C, with A the normalised edge per trade and C the
    number of per-trade risk units the equity holds. 1.0 when the edge is not positive."""
    if avg_win <= 0 or avg_loss <= 0 or capital_units <= 0:
        return 1.0 if avg_win <= 0 else 0.0
    loss_rate = 1.0 - win_rate
    gross = win_rate * avg_win + loss_rate * avg_loss
    edge = (win_rate * avg_win - loss_rate * avg_loss) / gross
    if edge <= 0:
        return 1.0
    return float(((1.0 - edge) / (1.0 + edge)) ** capital_units)


class RiskManager:
    def __init__(self, config: RiskConfig, quiet_hours: QuietHours, starting_equity: float) -> None:
        self.config = config
        self.quiet_hours = quiet_hours
        self.state = RiskState(day_start_equity=starting_equity, peak_equity=starting_equity)

    # --- pause / resume -------------------------------------------------------------------
    @property
    def pause(self) -> PauseState:
        return self.state.pause

    def pause_trading(self, reason: str, by: PausedBy, now: float) -> bool:
        """Pause unless already paused; returns whether this call paused."""
        if self.state.pause.paused:
            return False
        self.state.pause = PauseState(True, reason, by, now)
        return True

    def resume_trading(self, equity: float, by: PausedBy | None = None) -> bool:
        """Resume. With `by`, only a pause made by that same party is lifted (the operator
        never lifts a manual pause). Resuming rebases the auto-pause rules so they judge what
        happens next, not the losses already reviewed."""
        pause = self.state.pause
        if not pause.paused or (by is not None and pause.paused_by != by):
            return False
        self.state.pause = PauseState()
        self.state.consecutive_losses = 0
        self.state.peak_equity = equity
        return True

    # --- bookkeeping ------------------------------------------------------------------------
    def is_new_day(self, now: float) -> bool:
        return int(now // SECONDS_PER_DAY) != self.state.day_start

    def roll_day(self, now: float, equity: float) -> None:
        """Start the daily loss limit afresh at midnight UTC (market time)."""
        if self.is_new_day(now):
            self.state.day_start = int(now // SECONDS_PER_DAY)
            self.state.day_start_equity = equity
            self.state.daily_realized_pnl = 0.0

    def record_entry(self, now: float) -> None:
        self.state.entry_times.append(now)

    def record_close(self, pnl: float, now: float, equity: float) -> list[str]:
        """Account a closed trade; returns the auto-pause messages it triggered."""
        st = self.state
        st.daily_realized_pnl += pnl
        st.last_close_time = now
        if pnl > 0:
            st.wins += 1
            st.sum_wins += pnl
            st.consecutive_losses = 0
        else:
            st.losses += 1
            st.sum_losses += -pnl
            st.consecutive_losses += 1
        return self.check_auto_pause(equity, now)

    def check_auto_pause(self, equity: float, now: float) -> list[str]:
        st = self.state
        st.peak_equity = max(st.peak_equity, equity)
        messages = []
        if st.consecutive_losses >= self.config.max_consecutive_losses:
            msg = (
                f"Auto-pause triggered: {st.consecutive_losses} consecutive losses "
                f"(limit {self.config.max_consecutive_losses})"
            )
            if self.pause_trading(msg, PausedBy.RISK_RULE, now):
                messages.append(msg)
        drawdown = self.drawdown_pct(equity)
        if drawdown >= self.config.max_drawdown_pct:
            msg = (
                f"Auto-pause triggered: drawdown {drawdown:.2f}% exceeds "
                f"{self.config.max_drawdown_pct:g}%"
            )
            if self.pause_trading(msg, PausedBy.RISK_RULE, now):
                messages.append(msg)
        return messages

    def drawdown_pct(self, equity: float) -> float:
        peak = self.state.peak_equity
        return 0.0 if peak <= 0 else max(0.0, (peak - equity) / peak * 100.0)

    def daily_loss_limit(self) -> float:
        return self.state.day_start_equity * self.config.max_daily_loss_pct / 100.0

    def current_risk_of_ruin(self, equity: float) -> float | None:
        st = self.state
        trades = st.wins + st.losses
        if trades < self.config.risk_of_ruin_min_trades:
            return None
        avg_win = st.sum_wins / st.wins if st.wins else 0.0
        avg_loss = st.sum_losses / st.losses if st.losses else 0.0
        risk_unit = equity * self.config.risk_per_trade_pct / 100.0
        units = equity / risk_unit if risk_unit > 0 else 0.0
        return risk_of_ruin(st.wins / trades, avg_win, avg_loss, units)

    def trades_last_hour(self, now: float) -> int:
        times = self.state.entry_times
        while times and times[0] <= now - 3600:
            times.popleft()
        return len(times)

    # --- the gates --------------------------------------------------------------------------
    def check_entry(
        self, *, now: float, equity: float, cash: float, open_positions: int, data_age_s: float
    ) -> Verdict:
        """Whether a new entry may be opened now; the first gate that blocks says why."""
        cfg = self.config
        st = self.state
        pause = st.pause
        if pause.paused:
            message = f"Trading paused ({pause.paused_by}): {pause.reason}"
            return Verdict(False, Gate.PAUSED, message)
        if equity <= cfg.min_bankroll or cash <= cfg.min_bankroll * 0.1:
            return Verdict(False, Gate.BANKROLL, MSG_BANKROLL)
        if st.daily_realized_pnl <= -self.daily_loss_limit():
            return Verdict(False, Gate.DAILY_LOSS, MSG_DAILY_LOSS)
        if open_positions >= cfg.max_open_positions:
            return Verdict(False, Gate.MAX_POSITIONS, MSG_MAX_POSITIONS)
        ror = self.current_risk_of_ruin(equity)
        if ror is not None and ror > cfg.risk_of_ruin_threshold:
            return Verdict(False, Gate.RISK_OF_RUIN, MSG_RISK_OF_RUIN)
        if st.last_close_time is not None:
            remaining = st.last_close_time + cfg.global_cooldown_seconds - now
            if remaining > 0:
                return Verdict(False, Gate.COOLDOWN, cooldown_message(remaining))
        if self.trades_last_hour(now) >= cfg.max_trades_per_hour:
            return Verdict(False, Gate.TRADE_RATE, MSG_TRADE_RATE)
        if in_quiet_hours(self.quiet_hours, now):
            return Verdict(False, Gate.QUIET_HOURS, MSG_QUIET)
        if data_age_s > cfg.stale_data_seconds:
            return Verdict(False, Gate.STALE_DATA, MSG_STALE)
        return ALLOWED

    def report(self, *, now: float, equity: float, open_positions: int,
               data_age_s: float | None = None) -> list[dict[str, object]]:
        """Every gate with its state and limit, for `/api/v1/risk`."""
        cfg = self.config
        st = self.state
        cooldown_left = (
            max(0.0, st.last_close_time + cfg.global_cooldown_seconds - now)
            if st.last_close_time is not None
            else 0.0
        )
        ror = self.current_risk_of_ruin(equity)
        rows: list[tuple[Gate, bool, object, object]] = [
            (Gate.PAUSED, st.pause.paused, st.pause.reason or None, None),
            (Gate.BANKROLL, equity <= cfg.min_bankroll, round(equity, 8), cfg.min_bankroll),
            (
                Gate.DAILY_LOSS,
                st.daily_realized_pnl <= -self.daily_loss_limit(),
                round(st.daily_realized_pnl, 8),
                -round(self.daily_loss_limit(), 8),
            ),
            (
                Gate.DRAWDOWN,
                self.drawdown_pct(equity) >= cfg.max_drawdown_pct,
                round(self.drawdown_pct(equity), 4),
                cfg.max_drawdown_pct,
            ),
            (
                Gate.CONSECUTIVE_LOSSES,
                st.consecutive_losses >= cfg.max_consecutive_losses,
                st.consecutive_losses,
                cfg.max_consecutive_losses,
            ),
            (
                Gate.RISK_OF_RUIN,
                ror is not None and ror > cfg.risk_of_ruin_threshold,
                ror,
                cfg.risk_of_ruin_threshold,
            ),
            (
                Gate.MAX_POSITIONS,
                open_positions >= cfg.max_open_positions,
                open_positions,
                cfg.max_open_positions,
            ),
            (Gate.COOLDOWN, cooldown_left > 0, round(cooldown_left, 1),
             cfg.global_cooldown_seconds),
            (
                Gate.TRADE_RATE,
                self.trades_last_hour(now) >= cfg.max_trades_per_hour,
                self.trades_last_hour(now),
                cfg.max_trades_per_hour,
            ),
            (Gate.QUIET_HOURS, in_quiet_hours(self.quiet_hours, now), None, None),
            (
                Gate.STALE_DATA,
                data_age_s is not None and data_age_s > cfg.stale_data_seconds,
                None if data_age_s is None else round(data_age_s, 1),
                cfg.stale_data_seconds,
            ),
        ]
        return [
            {"gate": str(gate), "blocking": blocking, "value": value, "limit": limit}
            for gate, blocking, value, limit in rows
        ]
