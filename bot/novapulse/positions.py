"""Position management as pure functions: sizing, initial stops, trailing stop, exit triggers."""

from __future__ import annotations

from novapulse.config import RiskConfig
from novapulse.models import Candle, Trade

EXIT_STOP_LOSS = "stop loss"
EXIT_TAKE_PROFIT = "take profit"
EXIT_TRAILING_STOP = "trailing stop"


def position_size(*, equity: float, cash: float, price: float, fee_rate: float,
                  config: RiskConfig) -> float:
    """Quantity that risks `risk_per_trade_pct` of equity if the stop is hit, capped by the
    per-position notional cap and by the cash actually available (fees included)."""
    if price <= 0 or equity <= 0 or cash <= 0:
        return 0.0
    risk_amount = equity * config.risk_per_trade_pct / 100.0
    stop_distance = price * config.stop_loss_pct / 100.0
    quantity = risk_amount / stop_distance
    max_notional = min(equity * config.max_position_pct / 100.0, cash / (1.0 + fee_rate))
    return max(0.0, min(quantity, max_notional / price))


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

    The stop is checked before the take profit: when one candle spans both, assuming the worse
    outcome keeps backtests honest. A gap through a level fills at the open, not the level."""
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
