"""Risk of ruin in units of risk (R-multiples), over a bounded window of recent trades.

Each closed trade is measured in R: its PnL divided by the amount it stood to lose at its
initial stop (fees included), so trades made at another equity level weigh the same. Over the
last `risk_of_ruin_window` trades, with win rate p, mean winning R W and mean losing R L:

    edge A = (p·W − q·L) / (p·W + q·L)          q = 1 − p
    capital units C = ln(equity / floor) / −ln(1 − r)
    risk of ruin = ((1 − A) / (1 + A)) ** C      (1.0 when A ≤ 0)

This is the classic approximation ((1−A)/(1+A))^C (as in Kaufman, *Trading Systems and
Methods*), with C counted the way fixed-fractional sizing loses: each full loss takes the
fraction r (the effective risk per trade, after the position cap) of what is left, so C is how
many straight full losses take equity down to the ruin floor. The floor is the equity at
which the bot stops trading ("Bankroll depleted"): equity further above it — a bigger bankroll
or a recovered drawdown — means more units and a smaller risk of ruin.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class RuinInputs:
    """What the risk of ruin was computed from: shown as-is in `/api/v1/risk`."""

    trades: int
    win_rate: float
    avg_win_r: float
    avg_loss_r: float
    edge: float
    capital_units: float
    risk_per_trade_pct: float
    floor: float
    risk_of_ruin: float

    def as_dict(self) -> dict[str, float | int]:
        return {
            "trades": self.trades,
            "win_rate": round(self.win_rate, 6),
            "avg_win_r": round(self.avg_win_r, 6),
            "avg_loss_r": round(self.avg_loss_r, 6),
            "edge": round(self.edge, 6),
            # infinite (no floor) becomes null in JSON
            "capital_units": round(self.capital_units, 4),
            "risk_per_trade_pct": round(self.risk_per_trade_pct, 6),
            "floor": self.floor,
            "risk_of_ruin": self.risk_of_ruin,
        }


def edge_in_r(results_r: Iterable[float]) -> tuple[int, float, float, float, float]:
    """(trades, win rate, mean winning R, mean losing R as a positive number, edge A)."""
    wins = losses = 0
    sum_wins = sum_losses = 0.0
    for r in results_r:
        if r > 0:
            wins += 1
            sum_wins += r
        else:
            losses += 1
            sum_losses -= r
    trades = wins + losses
    if trades == 0:
        return 0, 0.0, 0.0, 0.0, 0.0
    p = wins / trades
    avg_win = sum_wins / wins if wins else 0.0
    avg_loss = sum_losses / losses if losses else 0.0
    gross = p * avg_win + (1 - p) * avg_loss
    edge = (p * avg_win - (1 - p) * avg_loss) / gross if gross > 0 else 0.0
    return trades, p, avg_win, avg_loss, edge


def capital_units(equity: float, floor: float, risk_fraction: float) -> float:
    """Straight full losses of `risk_fraction` of equity each until equity reaches `floor`."""
    if equity <= floor:
        return 0.0
    if floor <= 0:
        return math.inf
    if risk_fraction <= 0:
        return math.inf
    if risk_fraction >= 1:
        return 1.0
    return math.log(equity / floor) / -math.log1p(-risk_fraction)


def risk_of_ruin(edge: float, units: float) -> float:
    if units <= 0:
        return 1.0
    if edge <= 0:
        return 1.0
    if edge >= 1 or math.isinf(units):
        return 0.0
    return float(((1.0 - edge) / (1.0 + edge)) ** units)


def ruin_inputs(results_r: deque[float], *, equity: float, floor: float,
                risk_fraction: float) -> RuinInputs:
    trades, p, avg_win, avg_loss, edge = edge_in_r(results_r)
    units = capital_units(equity, floor, risk_fraction)
    return RuinInputs(trades, p, avg_win, avg_loss, edge, units, risk_fraction * 100.0, floor,
                      risk_of_ruin(edge, units))
