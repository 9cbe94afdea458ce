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
    position_size,
    update_trailing_stop,
)


def candle(o: float, h: float, low: float, c: float) -> Candle:
    return Candle("ETH/XBT", 0, o, h, low, c, 1.0)


def trade(entry: float = 100.0, cfg: RiskConfig | None = None) -> Trade:
    stop, tp = initial_stops(entry, cfg or RiskConfig())
    return Trade("t", "ETH/XBT", Side.BUY, entry, 1.0, 0.0, "s", stop, tp,
                 highest_price=entry, lowest_price=entry)


def test_size_risks_the_configured_fraction() -> None:
    cfg = RiskConfig(risk_per_trade_pct=1.0, stop_loss_pct=2.0, max_position_pct=100)
    qty = position_size(equity=10_000, cash=10_000, price=100, fee_rate=0.0, config=cfg)
    assert abs(qty * 100 * 0.02 - 100.0) < 1e-9  # a stop-out loses 1% of equity


def test_size_capped_by_position_cap_and_cash() -> None:
    cfg = RiskConfig(risk_per_trade_pct=5.0, stop_loss_pct=1.0, max_position_pct=20)
    assert position_size(equity=10_000, cash=10_000, price=100, fee_rate=0.0,
                         config=cfg) * 100 <= 2_000 + 1e-9
    assert position_size(equity=10_000, cash=500, price=100, fee_rate=0.01,
                         config=cfg) * 100 * 1.01 <= 500 + 1e-9
    assert position_size(equity=10_000, cash=0, price=100, fee_rate=0.0, config=cfg) == 0.0


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
