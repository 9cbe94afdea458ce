"""Position management as pure functions: sizing, initial stops, trailing stop, exit triggers."""

from __future__ import annotations

from dataclasses import dataclass

from novapulse.config import RiskConfig
from novapulse.models import Candle, Trade

EXIT_STOP_LOSS = "stop loss"
EXIT_TAKE_PROFIT = "take profit"
EXIT_TRAILING_STOP = "trailing stop"


# Sizing to the last unit of cash could go negative by a rounding error.
CASH_MARGIN = 1e-12


@dataclass(frozen=True, slots=True)
class SizePlan:
    """How much to buy, and what it risks: the loss at the initial stop with both fees and
    worst-case slippage on both fills (a gap through the stop can still lose more)."""

    quantity: float
    fill_price: float
    risk_amount: float
    loss_per_unit: float
    binding: str  # "risk", "position_cap" or "cash": what limited the quantity

    def risk_pct(self, equity: float) -> float:
        return 0.0 if equity <= 0 else self.risk_amount / equity * 100.0


NO_POSITION = SizePlan(0.0, 0.0, 0.0, 0.0, "cash")


def plan_position(*, equity: float, cash: float, price: float, fee_rate: float,
                  slippage: float, config: RiskConfig) -> SizePlan:
    """Quantity whose loss at the initial stop, fees and slippage included, is
    `risk_per_trade_pct` of equity — capped by the per-position notional cap and by the cash
    available (the fill price and its fee included, so cash never goes negative)."""
    if price <= 0 or equity <= 0 or cash <= 0:
        return NO_POSITION
    fill = price * (1.0 + slippage)
    stop_fill = fill * (1.0 - config.stop_loss_pct / 100.0) * (1.0 - slippage)
    loss_per_unit = fill - stop_fill + fee_rate * (fill + stop_fill)
    by_risk = equity * config.risk_per_trade_pct / 100.0 / loss_per_unit
    by_cap = equity * config.max_position_pct / 100.0 / fill
    by_cash = cash / (fill * (1.0 + fee_rate)) * (1.0 - CASH_MARGIN)
    quantity, binding = min((by_risk, "risk"), (by_cap, "position_cap"), (by_cash, "cash"))
    return SizePlan(quantity, fill, quantity * loss_per_unit, loss_per_unit, binding)


def initial_stops(entry_price: float, config: RiskConfig) -> tuple[float, float]:
    """(stop loss, take profit) for a long entry."""
    return (
        entry_price * (1.0 - config.stop_loss_pct / 100.0),
        entry_price * (1.0 + config.take_profit_pct / 100.0),
    )


def update_trailing_stop(trade: Trade, candle: Candle, config: RiskConfig) -> None:
    """Ratchet the trailing stop up behind the highest price seen since entry."""
    if candle.high > trade.highest_price:
        trade.highest_price = candle.high
    if candle.low < trade.lowest_price or trade.lowest_price == 0.0:
        trade.lowest_price = candle.low
    if config.trailing_stop_pct <= 0:
        return
    # Trail only once the trade is in profit by the trailing distance, so the initial stop rules
    # the first part of the move.
    activation = trade.entry_price * (1.0 + config.trailing_stop_pct / 100.0)
    if trade.highest_price >= activation:
        level = trade.highest_price * (1.0 - config.trailing_stop_pct / 100.0)
        if trade.trailing_stop is None or level > trade.trailing_stop:
            trade.trailing_stop = level


def exit_trigger(trade: Trade, candle: Candle) -> tuple[float, str] | None:
    """The price and reason a long position exits at within this candle, if any.

    The intra-candle rule: a candle says nothing about the order of its high and low, so
    - levels are judged as they stood when the candle opened: the caller ratchets the trailing
      stop with this candle's high only afterwards (a trail raised by the high did not exist
      at the open, nor necessarily before the low);
    - the stop is checked before the take profit: when one candle spans both, assuming the worse
      outcome keeps backtests honest;
    - a gap through a level fills at the open, not at the level."""
    stop = trade.stop_loss
    reason = EXIT_STOP_LOSS
    if trade.trailing_stop is not None and trade.trailing_stop > stop:
        stop = trade.trailing_stop
        reason = EXIT_TRAILING_STOP
    if candle.low <= stop:
        return min(stop, candle.open), reason
    if candle.high >= trade.take_profit:
        return max(trade.take_profit, candle.open), EXIT_TAKE_PROFIT
    return None
