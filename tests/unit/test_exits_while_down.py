"""Stops of a restored position judged on the candles the bot missed while it was down."""

from __future__ import annotations

import pytest

from novapulse.config import Config
from novapulse.engine import Engine
from novapulse.execution.paper import PaperExecutor
from novapulse.models import Candle, Side, Trade, TradeStatus
from novapulse.thoughts import ThoughtLog

PAIR = "ETH/BTC"
ENTRY_TS = 1_700_000_100  # the entry candle closed here; the bot went down right after
INTERVAL = 300


def restored_engine(trailing_stop_pct: float = 1.5) -> tuple[Engine, Trade]:
    base = Config()
    config = base.model_copy(update={"risk": base.risk.model_copy(
        update={"trailing_stop_pct": trailing_stop_pct})})
    engine = Engine(config, PaperExecutor(0.0, 0.0), ThoughtLog(100))
    trade = Trade(trade_id="default:ETHBTC-1700000000", pair=PAIR, side=Side.BUY,
                  entry_price=100.0, quantity=1.0, entry_time=float(ENTRY_TS), strategy="trend",
                  stop_loss=98.0, take_profit=104.0, highest_price=100.0, lowest_price=100.0)
    engine.restore([trade], {"last_candle_ts": {PAIR: ENTRY_TS - INTERVAL}})
    return engine, engine.positions[PAIR]


def missed(n: int, *, open_: float, high: float, low: float, close: float) -> Candle:
    """The n-th candle after the entry (n = 0 opens when the entry filled)."""
    return Candle(PAIR, ENTRY_TS + n * INTERVAL, open_, high, low, close, 1.0, INTERVAL)


def test_a_stop_crossed_while_down_exits_at_the_stop_with_a_thought() -> None:
    engine, _ = restored_engine()
    executions = engine.check_exits_while_down(missed(0, open_=99.5, high=99.8, low=97.0,
                                                      close=97.5))
    assert len(executions) == 1
    closed = executions[0].trade
    assert closed.status is TradeStatus.CLOSED and closed.exit_price == pytest.approx(98.0)
    assert closed.exit_time == ENTRY_TS + INTERVAL
    assert PAIR not in engine.positions
    assert engine.cash == pytest.approx(Config().trading.starting_bankroll - 2.0)
    [thought] = [t for t in engine.thoughts.recent() if t.kind == "exit"]
    assert "stop loss crossed while the bot was down" in thought.message
    assert "2023-11-14 22:15 UTC" in thought.message  # which candle crossed it


def test_a_gap_through_the_stop_fills_at_the_open() -> None:
    engine, _ = restored_engine()
    [execution] = engine.check_exits_while_down(missed(0, open_=96.0, high=96.5, low=95.0,
                                                       close=95.5))
    assert execution.trade.exit_price == pytest.approx(96.0)


def test_the_stops_as_they_stood_at_the_open_judge_the_candle_then_the_trail_ratchets() -> None:
    engine, trade = restored_engine(trailing_stop_pct=1.5)
    # Runs to 103 and dips to 101.2 within one candle: under the trail the high would set
    # (101.455), but above the stop in force when the candle opened (98). No exit.
    assert engine.check_exits_while_down(missed(0, open_=100.5, high=103.0, low=101.2,
                                                close=102.5)) == []
    assert trade.highest_price == 103.0
    assert trade.trailing_stop == pytest.approx(103.0 * 0.985)
    [execution] = engine.check_exits_while_down(missed(1, open_=102.0, high=102.2, low=101.0,
                                                       close=101.1))
    assert execution.trade.exit_price == pytest.approx(103.0 * 0.985)
    assert "trailing stop crossed while the bot was down" in execution.trade.notes


def test_candles_already_decided_or_before_the_entry_are_not_judged_again() -> None:
    engine, trade = restored_engine()
    crash = missed(-1, open_=99.0, high=99.0, low=90.0, close=91.0)  # the entry candle itself
    assert engine.check_exits_while_down(crash) == []
    first = missed(0, open_=100.0, high=100.5, low=99.0, close=100.2)
    assert engine.check_exits_while_down(first) == []
    engine.warm_up(first)
    assert engine.check_exits_while_down(first) == []  # seen now: a later snapshot repeats it
    assert PAIR in engine.positions and trade.status is TradeStatus.OPEN


def test_never_enters_without_a_position() -> None:
    engine, _ = restored_engine()
    engine.check_exits_while_down(missed(0, open_=99.5, high=99.8, low=97.0, close=97.5))
    rally = missed(1, open_=97.5, high=120.0, low=97.5, close=119.0)
    assert engine.check_exits_while_down(rally) == []
    assert engine.positions == {}
