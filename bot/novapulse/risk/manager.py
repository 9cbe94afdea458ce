"""The risk manager: the state the gates of runbook 3 read, and the decisions over it.

Time is always passed in (market time: the close time of the candle being decided on), so the
same code decides in a backtest, on the replay feed and live. Equity is always marked to
market: an open loss counts toward the daily loss limit and the drawdown pause like a closed
one. Messages are the runbook's own words: operators grep the thought log for them.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

from novapulse.config import QuietHours, RiskConfig
from novapulse.positions import SizePlan, plan_position
from novapulse.risk.gates import (
    GATES,
    SECONDS_PER_DAY,
    ConsecutiveLossesGate,
    DrawdownGate,
    Gate,
    Observation,
    Reading,
)
from novapulse.risk.pauses import PausedBy, PauseHold, Pauses
from novapulse.risk.ruin import RuinInputs, ruin_inputs

_DRAWDOWN = DrawdownGate()
_CONSECUTIVE = ConsecutiveLossesGate()


@dataclass(frozen=True, slots=True)
class Verdict:
    allowed: bool
    gate: Gate | None = None
    message: str = ""


ALLOWED = Verdict(True)


@dataclass(slots=True)
class RiskState:
    """Everything the gates look at that the risk manager keeps itself."""

    day_start: int = 0  # the UTC day (days since the epoch) the daily limit counts from
    day_start_equity: float = 0.0
    daily_realized_pnl: float = 0.0
    peak_equity: float = 0.0
    # The drawdown a human accepted by resuming a drawdown pause; None once it recovered.
    drawdown_ack_pct: float | None = None
    consecutive_losses: int = 0
    last_close_time: float | None = None
    entry_times: deque[float] = field(default_factory=deque)
    wins: int = 0
    losses: int = 0
    sum_wins: float = 0.0
    sum_losses: float = 0.0
    recent_r: deque[float] = field(default_factory=deque)


def r_multiple(trade_pnl: float, entry_price: float, stop_loss: float, quantity: float,
               entry_fee: float, fee_rate: float) -> float:
    """A closed trade's PnL in units of what it risked at its initial stop (fees included)."""
    at_risk = (entry_price - stop_loss) * quantity + entry_fee + stop_loss * quantity * fee_rate
    return trade_pnl / at_risk if at_risk > 0 else 0.0


class RiskManager:
    def __init__(self, config: RiskConfig, quiet_hours: QuietHours, starting_equity: float,
                 *, fee_rate: float = 0.0, slippage: float = 0.0) -> None:
        self.config = config
        self.quiet_hours = quiet_hours
        self.fee_rate = fee_rate
        self.slippage = slippage
        self.starting_equity = starting_equity
        self.state = RiskState(day_start_equity=starting_equity, peak_equity=starting_equity,
                               recent_r=deque(maxlen=config.risk_of_ruin_window))
        self.pauses = Pauses()

    # --- pause / resume -------------------------------------------------------------------
    @property
    def pause(self) -> Pauses:
        return self.pauses

    def pause_trading(self, reason: str, by: PausedBy, now: float) -> bool:
        """Take `by`'s pause slot; False when that party already holds it."""
        return self.pauses.hold(by, reason, now)

    def resume_trading(self, equity: float, by: PausedBy | None = None) -> list[PauseHold]:
        """Lift `by`'s pause (every pause when None: an admin's act); returns what was lifted.
        Lifting a risk-rule pause is a human's review of it: the consecutive-loss count starts
        again and the drawdown rule waits for a deeper drawdown — the equity peak stays."""
        lifted = self.pauses.lift(by)
        if any(hold.by is PausedBy.RISK_RULE for hold in lifted):
            self.state.consecutive_losses = 0
            drawdown = self.drawdown_pct(equity)
            if drawdown >= self.config.max_drawdown_pct:
                self.state.drawdown_ack_pct = drawdown
        return lifted

    # --- bookkeeping ------------------------------------------------------------------------
    def is_new_day(self, now: float) -> bool:
        """Days only move forward: a late candle of an earlier day never restarts the count."""
        return int(now // SECONDS_PER_DAY) > self.state.day_start

    def roll_day(self, now: float, equity: float) -> None:
        """Start the daily loss limit afresh at midnight UTC (market time)."""
        if self.is_new_day(now):
            self.state.day_start = int(now // SECONDS_PER_DAY)
            self.state.day_start_equity = equity
            self.state.daily_realized_pnl = 0.0

    def record_entry(self, now: float) -> None:
        self.state.entry_times.append(now)

    def record_close(self, pnl: float, r: float, now: float) -> list[str]:
        """Account a closed trade (`r`: its PnL in R); returns the auto-pause it triggered.
        The equity it leaves is judged by `mark`, once the candle is done."""
        st = self.state
        st.daily_realized_pnl += pnl
        st.last_close_time = now
        st.recent_r.append(r)
        if pnl > 0:
            st.wins += 1
            st.sum_wins += pnl
            st.consecutive_losses = 0
        else:
            st.losses += 1
            st.sum_losses += -pnl
            st.consecutive_losses += 1
        return self._auto_pause(_CONSECUTIVE.read(self, Observation(now, 0.0, 0.0, 0)), now)

    def mark(self, equity: float, now: float) -> list[str]:
        """Equity marked to market moved: follow the peak, pause on a deep drawdown."""
        st = self.state
        if equity > st.peak_equity:
            st.peak_equity = equity
            return []
        if st.peak_equity > 0 and (st.peak_equity - equity) / st.peak_equity * 100.0 \
                < self.config.max_drawdown_pct:
            st.drawdown_ack_pct = None  # recovered: the rule is armed again at its limit
            return []
        return self._auto_pause(_DRAWDOWN.read(self, Observation(now, equity, equity, 0)), now)

    def _auto_pause(self, reading: Reading, now: float) -> list[str]:
        if reading.blocking and self.pause_trading(reading.message, PausedBy.RISK_RULE, now):
            return [reading.message]
        return []

    # --- derived numbers --------------------------------------------------------------------
    def drawdown_pct(self, equity: float) -> float:
        peak = self.state.peak_equity
        return 0.0 if peak <= 0 else max(0.0, (peak - equity) / peak * 100.0)

    def drawdown_trigger_pct(self) -> float:
        limit = self.config.max_drawdown_pct
        ack = self.state.drawdown_ack_pct
        return limit if ack is None else ack + limit

    def day_pnl(self, equity: float) -> float:
        return equity - self.state.day_start_equity

    def daily_loss_limit(self) -> float:
        return self.state.day_start_equity * self.config.max_daily_loss_pct / 100.0

    @property
    def bankroll_floor(self) -> float:
        """The equity at which entries stop ("Bankroll depleted"), and ruin is counted."""
        return self.config.min_bankroll_amount(self.starting_equity)

    def sizing(self, equity: float, cash: float, price: float = 1.0) -> SizePlan:
        return plan_position(equity=equity, cash=cash, price=price, fee_rate=self.fee_rate,
                             slippage=self.slippage, config=self.config)

    def ruin_inputs(self, equity: float, cash: float) -> RuinInputs:
        """Risk of ruin and what it is made of. The risk per trade is what sizing really
        takes at this equity (flat, so cash does not limit it), after the position cap."""
        fraction = self.sizing(equity, equity).risk_pct(equity) / 100.0
        return ruin_inputs(self.state.recent_r, equity=equity, floor=self.bankroll_floor,
                           risk_fraction=fraction)

    def current_risk_of_ruin(self, equity: float) -> float | None:
        if len(self.state.recent_r) < self.config.risk_of_ruin_min_trades:
            return None
        return self.ruin_inputs(equity, equity).risk_of_ruin

    def trades_last_hour(self, now: float) -> int:
        times = self.state.entry_times
        while times and times[0] <= now - 3600:
            times.popleft()
        return len(times)

    # --- the gates --------------------------------------------------------------------------
    def check_entry(self, *, now: float, equity: float, cash: float, open_positions: int,
                    data_age_s: float | None) -> Verdict:
        """Whether a new entry may be opened now; the first gate that blocks says why."""
        obs = Observation(now, equity, cash, open_positions, data_age_s)
        for gate in GATES:
            reading = gate.read(self, obs)
            if reading.blocking:
                return Verdict(False, reading.gate, reading.message)
        return ALLOWED

    def report(self, *, now: float, equity: float, cash: float, open_positions: int,
               data_age_s: float | None = None) -> list[dict[str, object]]:
        """Every gate with its state, limit and message, for `/api/v1/risk`."""
        obs = Observation(now, equity, cash, open_positions, data_age_s)
        return [gate.read(self, obs).as_dict() for gate in GATES]

    def sizing_report(self, equity: float) -> dict[str, object]:
        """The risk a trade really takes with this config: when the position cap binds, less
        than `risk_per_trade_pct` (fees and worst-case slippage included)."""
        plan = self.sizing(equity, equity)
        return {
            "configured_risk_pct": self.config.risk_per_trade_pct,
            "effective_risk_pct": round(plan.risk_pct(equity), 6),
            "limited_by": plan.binding,
            "max_position_pct": self.config.max_position_pct,
            "stop_loss_pct": self.config.stop_loss_pct,
            "fee_rate": self.fee_rate,
            "slippage_bps": round(self.slippage * 10_000, 6),
        }

    # --- persistence ------------------------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        st = self.state
        return {
            "day_start": st.day_start, "day_start_equity": st.day_start_equity,
            "daily_realized_pnl": st.daily_realized_pnl, "peak_equity": st.peak_equity,
            "drawdown_ack_pct": st.drawdown_ack_pct,
            "consecutive_losses": st.consecutive_losses,
            "last_close_time": st.last_close_time, "entry_times": list(st.entry_times),
            "wins": st.wins, "losses": st.losses, "sum_wins": st.sum_wins,
            "sum_losses": st.sum_losses, "recent_r": list(st.recent_r),
            "pauses": self.pauses.snapshot(),
        }

    def restore(self, saved: dict[str, Any], legacy_pause: dict[str, Any] | None = None) -> None:
        st = self.state
        for key in ("day_start", "day_start_equity", "daily_realized_pnl", "peak_equity",
                    "drawdown_ack_pct", "consecutive_losses", "last_close_time", "wins",
                    "losses", "sum_wins", "sum_losses"):
            if key in saved:
                setattr(st, key, saved[key])
        st.entry_times.clear()
        st.entry_times.extend(saved.get("entry_times", []))
        st.recent_r.clear()
        st.recent_r.extend(float(r) for r in saved.get("recent_r", []))
        if "pauses" in saved:
            self.pauses.restore(saved["pauses"])
        elif legacy_pause and legacy_pause.get("paused"):  # a checkpoint from before slots
            self.pauses.hold(PausedBy(legacy_pause.get("paused_by") or "manual"),
                             str(legacy_pause.get("reason", "")),
                             float(legacy_pause.get("since") or 0.0))
