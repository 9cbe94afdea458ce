"""Risk: the gates of runbook 3, who holds trading paused, and the risk of ruin."""

from novapulse.risk.gates import (
    GATES,
    MSG_AUTO_PAUSE,
    MSG_BANKROLL,
    MSG_DAILY_LOSS,
    MSG_MANUAL_PAUSE,
    MSG_MAX_POSITIONS,
    MSG_QUIET,
    MSG_RISK_OF_RUIN,
    MSG_STALE,
    MSG_TRADE_RATE,
    Gate,
    Observation,
    Reading,
    cooldown_message,
    in_quiet_hours,
)
from novapulse.risk.manager import ALLOWED, RiskManager, RiskState, Verdict, r_multiple
from novapulse.risk.pauses import PAUSE_PRIORITY, PausedBy, PauseHold, Pauses
from novapulse.risk.ruin import RuinInputs, capital_units, edge_in_r, risk_of_ruin

__all__ = [
    "ALLOWED", "GATES", "MSG_AUTO_PAUSE", "MSG_BANKROLL", "MSG_DAILY_LOSS", "MSG_MANUAL_PAUSE",
    "MSG_MAX_POSITIONS", "MSG_QUIET", "MSG_RISK_OF_RUIN", "MSG_STALE", "MSG_TRADE_RATE",
    "PAUSE_PRIORITY", "Gate", "Observation", "PauseHold", "PausedBy", "Pauses", "Reading",
    "RiskManager", "RiskState", "RuinInputs", "Verdict", "capital_units", "cooldown_message",
    "edge_in_r", "in_quiet_hours", "r_multiple", "risk_of_ruin",
]
