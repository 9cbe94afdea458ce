"""Sizing, stops and exit triggers of a long position."""

from __future__ import annotations

from novapulse.config import RiskConfig
from novapulse.models import Candle, Side, Trade
from novapulse.positions import (
    EXIT_STOP_LOSS,
    EXIT_TAKE_PROFIT,
    EXIT_TRAILING_STOP,
    exit_trigger,
    initial_stops,
    plan_position,
    update_trailing_stop,
)


def candle(o: float, h: float, low: float, c: float) -> Candle:
    return Candle("ETH/XBT", 0, o, h, low, c, 1.0)


def trade(entry: float = 100.0, cfg: RiskConfig | None = None) -> Trade:
    stop, tp = initial_stops(entry, cfg or RiskConfig())
    return Trade("t", "ETH/XBT", Side.BUY, entry, 1.0, 0.0, "s", stop, tp,
                 highest_price=entry, lowest_price=entry)


def test_size_risks_the_configured_fraction_fees_and_slippage_included() -> None:
    cfg = RiskConfig(risk_per_trade_pct=1.0, stop_loss_pct=2.0, max_position_pct=100)
    fee, slip = 0.0026, 0.0005
    plan = plan_position(equity=10_000, cash=10_000, price=100, fee_rate=fee, slippage=slip,
                         config=cfg)
    assert plan.binding == "risk"
    # What a stop-out really costs: entry filled above the price, exit below the stop, both fees.
    fill = 100 * (1 + slip)
    stop, _ = initial_stops(fill, cfg)
    exit_fill = stop * (1 - slip)
    loss = plan.quantity * (fill - exit_fill) + fee * plan.quantity * (fill + exit_fill)
    assert abs(loss - 100.0) < 1e-9  # exactly 1% of equity
    assert abs(plan.risk_pct(10_000) - 1.0) < 1e-9


def test_size_capped_by_position_cap_says_so() -> None:
    cfg = RiskConfig(risk_per_trade_pct=5.0, stop_loss_pct=1.0, max_position_pct=20)
    plan = plan_position(equity=10_000, cash=10_000, price=100, fee_rate=0.0, slippage=0.0,
                         config=cfg)
    assert plan.binding == "position_cap"
    assert abs(plan.quantity * 100 - 2_000) < 1e-9
    assert abs(plan.risk_pct(10_000) - 0.2) < 1e-9  # 20% of equity x 1% stop


def test_cash_never_goes_negative_with_slippage_and_fees() -> None:
    # Was: slippage applied after sizing, so 50 bps on a 100% cap spent 50 more than the cash.
    cfg = RiskConfig(risk_per_trade_pct=10.0, stop_loss_pct=1.0, max_position_pct=100)
    for cash in (10_000.0, 500.0, 0.37):
        plan = plan_position(equity=10_000, cash=cash, price=100, fee_rate=0.01, slippage=0.005,
                             config=cfg)
        spent = plan.quantity * plan.fill_price * (1 + 0.01)
        assert spent <= cash
        assert cash - spent < cash * 1e-9  # and it did use what was there
    assert plan_position(equity=10_000, cash=0, price=100, fee_rate=0.0, slippage=0.0,
                         config=cfg).quantity == 0.0


def test_stop_loss_and_gap_fill_at_open() -> None:
    t = trade()
    assert exit_trigger(t, candle(99, 100, 97.5, 98)) == (98.0, EXIT_STOP_LOSS)
    assert exit_trigger(t, candle(95, 96, 94, 95)) == (95.0, EXIT_STOP_LOSS)


def test_take_profit() -> None:
    assert exit_trigger(trade(), candle(101, 104.5, 100.5, 104)) == (104.0, EXIT_TAKE_PROFIT)


def test_stop_wins_when_one_candle_spans_both() -> None:
    assert exit_trigger(trade(), candle(100, 105, 97, 101)) == (98.0, EXIT_STOP_LOSS)


def test_trailing_stop_ratchets_up_and_triggers() -> None:
    cfg = RiskConfig(trailing_stop_pct=1.5, take_profit_pct=10)
    t = trade(cfg=cfg)
    update_trailing_stop(t, candle(100, 101, 100, 101), cfg)
    assert t.trailing_stop is None  # not yet in profit by the trailing distance
    update_trailing_stop(t, candle(101, 103, 101, 103), cfg)
    assert t.trailing_stop is not None and abs(t.trailing_stop - 103 * 0.985) < 1e-9
    update_trailing_stop(t, candle(103, 103, 102, 102.5), cfg)
    assert abs(t.trailing_stop - 103 * 0.985) < 1e-9  # never moves down
    assert exit_trigger(t, candle(102, 102, 101, 101)) == (103 * 0.985, EXIT_TRAILING_STOP)


def test_a_trail_raised_by_the_candles_high_does_not_fire_at_its_open() -> None:
    # Entry 100 (stop 98, take profit 104); the next candle opens 100.5, reaches 106, dips to
    # 100.2. The trail its high would set (104.41) did not exist at the open: the take profit
    # that was hit is what happened.
    cfg = RiskConfig(trailing_stop_pct=1.5, stop_loss_pct=2.0, take_profit_pct=4.0)
    t = trade(cfg=cfg)
    bar = candle(100.5, 106, 100.2, 105.5)
    assert exit_trigger(t, bar) == (104.0, EXIT_TAKE_PROFIT)
