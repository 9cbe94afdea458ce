"""The risk manager's gates as pure decisions: each one blocks with the runbook's words."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from novapulse.config import QuietHours, RiskConfig
from novapulse.risk import (
    MSG_BANKROLL,
    MSG_DAILY_LOSS,
    MSG_MAX_POSITIONS,
    MSG_QUIET,
    MSG_RISK_OF_RUIN,
    MSG_STALE,
    MSG_TRADE_RATE,
    Gate,
    PausedBy,
    RiskManager,
    capital_units,
    edge_in_r,
    in_quiet_hours,
    risk_of_ruin,
)

DAY = 86_400
NOON = 20_000 * DAY + 12 * 3600


def manager(**risk: float) -> RiskManager:
    return RiskManager(RiskConfig(**risk), QuietHours(), starting_equity=10_000.0)


def check(rm: RiskManager, *, now: float = NOON, equity: float = 10_000.0,
          cash: float = 10_000.0, open_positions: int = 0, data_age_s: float = 1.0) -> tuple:
    verdict = rm.check_entry(now=now, equity=equity, cash=cash, open_positions=open_positions,
                             data_age_s=data_age_s)
    return verdict.allowed, verdict.gate, verdict.message


def test_fresh_manager_allows_entry() -> None:
    assert check(manager()) == (True, None, "")


def test_manual_pause_blocks_and_names_who() -> None:
    rm = manager()
    rm.pause_trading("checking the exchange", PausedBy.MANUAL, NOON)
    allowed, gate, message = check(rm)
    assert not allowed and gate is Gate.PAUSED
    assert message == "Trading paused (manual): checking the exchange"


def test_bankroll_depleted() -> None:
    assert check(manager(min_bankroll=100), equity=99.0, cash=99.0)[1:] == (
        Gate.BANKROLL, MSG_BANKROLL)


def test_daily_loss_limit_and_midnight_reset() -> None:
    rm = manager(max_daily_loss_pct=2.0, max_consecutive_losses=50, max_drawdown_pct=90)
    rm.roll_day(NOON, 10_000.0)
    rm.record_close(-250.0, -2.5, NOON)
    assert check(rm, equity=9_750.0)[1:] == (Gate.DAILY_LOSS, MSG_DAILY_LOSS)
    next_day = NOON + DAY
    rm.roll_day(next_day, 9_750.0)
    assert check(rm, now=next_day + 3600, equity=9_750.0)[0] is True


def test_an_open_loss_counts_toward_the_daily_loss_limit() -> None:
    # Nothing closed today, but the open positions are marked 250 below the day's start.
    rm = manager(max_daily_loss_pct=2.0)
    rm.roll_day(NOON, 10_000.0)
    assert rm.state.daily_realized_pnl == 0.0
    assert check(rm, equity=9_801.0, cash=5_000.0)[0] is True
    assert check(rm, equity=9_800.0, cash=5_000.0)[1:] == (Gate.DAILY_LOSS, MSG_DAILY_LOSS)


def test_a_late_candle_never_rolls_the_day_back() -> None:
    rm = manager(max_daily_loss_pct=2.0)
    rm.roll_day(NOON + DAY, 10_000.0)  # day 2 seen on one pair
    rm.record_close(-150.0, -1.5, NOON + DAY)
    assert not rm.is_new_day(NOON)  # a day-1 candle of another pair arrives late
    rm.roll_day(NOON, 9_850.0)
    assert rm.daily_loss_limit() == 200.0 and rm.day_pnl(9_850.0) == -150.0


def test_max_positions() -> None:
    assert check(manager(max_open_positions=2), open_positions=2)[1:] == (
        Gate.MAX_POSITIONS, MSG_MAX_POSITIONS)


def test_global_cooldown_counts_down() -> None:
    rm = manager(global_cooldown_seconds=300, max_consecutive_losses=50)
    rm.record_close(5.0, 0.5, NOON)
    assert check(rm, now=NOON + 120)[1:] == (Gate.COOLDOWN, "Global cooldown: 180s remaining")
    assert check(rm, now=NOON + 300)[0] is True


def test_trade_rate_throttle_over_a_sliding_hour() -> None:
    rm = manager(max_trades_per_hour=2, global_cooldown_seconds=0)
    rm.record_entry(NOON)
    rm.record_entry(NOON + 600)
    assert check(rm, now=NOON + 900)[1:] == (Gate.TRADE_RATE, MSG_TRADE_RATE)
    assert check(rm, now=NOON + 3601)[0] is True


def test_quiet_hours_including_across_midnight() -> None:
    quiet = QuietHours(enabled=True, start_hour_utc=22, end_hour_utc=6)
    assert in_quiet_hours(quiet, 20_000 * DAY + 23 * 3600)
    assert in_quiet_hours(quiet, 20_000 * DAY + 5 * 3600)
    assert not in_quiet_hours(quiet, NOON)
    rm = RiskManager(RiskConfig(), quiet, 10_000.0)
    assert check(rm, now=20_000 * DAY + 23 * 3600)[1:] == (Gate.QUIET_HOURS, MSG_QUIET)


def test_stale_data() -> None:
    assert check(manager(stale_data_seconds=60), data_age_s=61)[1:] == (Gate.STALE_DATA, MSG_STALE)


def test_risk_of_ruin_needs_history_then_blocks_a_losing_edge() -> None:
    rm = manager(risk_of_ruin_min_trades=10, max_consecutive_losses=100, max_drawdown_pct=100,
                 max_daily_loss_pct=100, global_cooldown_seconds=0, risk_of_ruin_threshold=0.05)
    for i in range(9):
        rm.record_close(-10.0 if i % 3 else 5.0, -1.0 if i % 3 else 0.5, NOON)
    assert check(rm)[0] is True  # not enough trades to judge yet
    rm.record_close(-10.0, -1.0, NOON)
    assert check(rm)[1:] == (Gate.RISK_OF_RUIN, MSG_RISK_OF_RUIN)


def _ruin_after(rm: RiskManager, results_r: list[float], equity: float) -> float:
    for r in results_r:
        rm.state.recent_r.append(r)
    value = rm.current_risk_of_ruin(equity)
    assert value is not None
    return value


def test_risk_of_ruin_falls_as_equity_rises_above_the_floor() -> None:
    # Was: units = equity / (equity x pct) = 100/pct whatever the bankroll.
    edge = [1.2, -1.0] * 15  # a thin positive edge in R
    cfg = {"min_bankroll": 1_000.0, "risk_per_trade_pct": 2.0, "max_position_pct": 100.0}
    near_floor = _ruin_after(manager(**cfg), edge, 1_500.0)
    comfortable = _ruin_after(manager(**cfg), edge, 10_000.0)
    rich = _ruin_after(manager(**cfg), edge, 1_000_000.0)
    assert 1.0 > near_floor > comfortable > rich > 0.0
    assert _ruin_after(manager(**cfg), edge, 1_000.0) == 1.0  # at the floor: ruined


def test_risk_of_ruin_is_in_r_so_the_size_of_old_trades_does_not_skew_it() -> None:
    # The same results in R, whatever amounts they were at: the same risk of ruin.
    small, large = manager(min_bankroll=100.0), manager(min_bankroll=100.0)
    for i in range(30):
        win = i % 2 == 0
        small.record_close(12.0 if win else -10.0, 1.2 if win else -1.0, NOON)
        large.record_close(1_200.0 if win else -1_000.0, 1.2 if win else -1.0, NOON)
    assert small.current_risk_of_ruin(5_000.0) == large.current_risk_of_ruin(5_000.0)


def test_risk_of_ruin_window_forgets_old_trades() -> None:
    rm = manager(risk_of_ruin_window=20, risk_of_ruin_min_trades=10, min_bankroll=100.0)
    for _ in range(20):
        rm.state.recent_r.append(-1.0)
    assert rm.current_risk_of_ruin(10_000.0) == 1.0
    for _ in range(20):
        rm.state.recent_r.append(2.0)
    assert rm.current_risk_of_ruin(10_000.0) == 0.0


def test_risk_report_shows_the_risk_of_ruin_inputs() -> None:
    rm = manager(risk_of_ruin_min_trades=4, min_bankroll=100.0)
    for r in (2.0, -1.0, 2.0, -1.0):
        rm.state.recent_r.append(r)
    row = next(r for r in rm.report(now=NOON, equity=10_000.0, cash=10_000.0,
                                    open_positions=0) if r["gate"] == "risk_of_ruin")
    detail = row["detail"]
    assert isinstance(detail, dict)
    assert detail["trades"] == 4 and detail["win_rate"] == 0.5
    assert detail["avg_win_r"] == 2.0 and detail["avg_loss_r"] == 1.0
    assert abs(float(detail["edge"]) - 1 / 3) < 1e-6
    assert detail["floor"] == 100.0
    assert row["value"] == detail["risk_of_ruin"]


def test_consecutive_losses_auto_pause_until_resumed() -> None:
    rm = manager(max_consecutive_losses=3, max_drawdown_pct=90, max_daily_loss_pct=90)
    messages = []
    for _ in range(3):
        messages += rm.record_close(-1.0, -0.1, NOON)
    assert messages == ["Auto-pause triggered: 3 consecutive losses (limit 3)"]
    assert rm.pause.paused_by is PausedBy.RISK_RULE
    assert check(rm)[1] is Gate.PAUSED
    assert rm.resume_trading(9_990.0)
    assert check(rm, now=NOON + 3600)[0] is True


def test_drawdown_auto_pause_counts_open_losses() -> None:
    rm = manager(max_drawdown_pct=10, max_consecutive_losses=50, max_daily_loss_pct=90)
    assert rm.mark(12_000.0, NOON) == []
    assert rm.mark(10_801.0, NOON) == []  # marked equity, nothing closed
    assert rm.mark(10_700.0, NOON) == ["Auto-pause triggered: drawdown 10.83% exceeds 10%"]
    assert rm.pause.paused and rm.pause.paused_by is PausedBy.RISK_RULE


def test_resume_keeps_the_peak_and_rearms_the_drawdown_rule_a_limit_deeper() -> None:
    rm = manager(max_drawdown_pct=10, max_consecutive_losses=50, max_daily_loss_pct=90)
    rm.mark(10_000.0, NOON)
    rm.mark(8_900.0, NOON)  # 11%: paused
    assert rm.resume_trading(8_900.0)
    assert rm.state.peak_equity == 10_000.0  # was: reset to 8,900 by any resume
    assert rm.drawdown_pct(8_900.0) == pytest.approx(11.0)
    assert rm.mark(8_000.0, NOON) == []  # 20%: within the accepted 11% + another 10%
    assert rm.mark(7_899.0, NOON) != []  # 21.01%: deeper by a full limit again
    rm.resume_trading(7_899.0)
    rm.mark(9_500.0, NOON)  # recovered below the limit: armed at 10% again
    assert rm.mark(8_999.0, NOON) != []


def test_each_party_holds_its_own_pause() -> None:
    rm = manager()
    assert rm.pause_trading("feed down", PausedBy.OPERATOR, NOON)
    # Was: "already paused", and the human's pause was lost.
    assert rm.pause_trading("human says stop", PausedBy.MANUAL, NOON + 1)
    assert rm.pause_trading("again", PausedBy.MANUAL, NOON + 2) is False
    assert rm.pause.paused_by is PausedBy.MANUAL and rm.pause.reason == "human says stop"
    lifted = rm.resume_trading(10_000.0, by=PausedBy.OPERATOR)
    assert [h.by for h in lifted] == [PausedBy.OPERATOR]
    assert rm.pause.paused and check(rm)[1] is Gate.PAUSED  # the human's pause holds
    assert rm.resume_trading(10_000.0, by=PausedBy.OPERATOR) == []
    assert [h.by for h in rm.resume_trading(10_000.0)] == [PausedBy.MANUAL]
    assert check(rm)[0] is True


def test_admin_resume_lifts_every_pause() -> None:
    rm = manager()
    rm.pause_trading("feed down", PausedBy.CIRCUIT_BREAKER, NOON)
    rm.pause_trading("reviewing", PausedBy.MANUAL, NOON)
    lifted = rm.resume_trading(10_000.0)
    assert {h.by for h in lifted} == {PausedBy.CIRCUIT_BREAKER, PausedBy.MANUAL}
    assert not rm.pause.paused


def test_operator_cannot_lift_a_manual_pause() -> None:
    rm = manager()
    rm.pause_trading("human says stop", PausedBy.MANUAL, NOON)
    assert rm.resume_trading(10_000.0, by=PausedBy.OPERATOR) == []
    assert rm.pause.paused
    assert rm.resume_trading(10_000.0)


@pytest.mark.parametrize(
    ("results_r", "units", "expected_low", "expected_high"),
    [([2.0, -1.0] * 10, 50, 0.0, 1e-6), ([1.0, -1.0, -1.0] * 10, 50, 1.0, 1.0),
     ([1.1, -1.0] * 10, 50, 0.005, 0.1)],
)
def test_risk_of_ruin_formula(results_r: list[float], units: float, expected_low: float,
                              expected_high: float) -> None:
    edge = edge_in_r(results_r)[4]
    assert expected_low <= risk_of_ruin(edge, units) <= expected_high


def test_capital_units_count_full_losses_to_the_floor() -> None:
    # 1% of what is left, each time: 68.97 straight losses take 10,000 to 5,000.
    assert capital_units(10_000.0, 5_000.0, 0.01) == pytest.approx(68.967, abs=1e-3)
    assert capital_units(5_000.0, 5_000.0, 0.01) == 0.0


def test_report_lists_every_gate() -> None:
    rows = manager(stale_data_seconds=60).report(now=NOON, equity=10_000.0, cash=10_000.0,
                                                 open_positions=0, data_age_s=90.0)
    assert {row["gate"] for row in rows} == {g.value for g in Gate}
    stale = next(row for row in rows if row["gate"] == "stale_data")
    assert stale == {"gate": "stale_data", "blocking": True, "value": 90.0, "limit": 60,
                     "message": MSG_STALE}


def test_sizing_report_says_when_the_position_cap_binds() -> None:
    rm = RiskManager(RiskConfig(), QuietHours(), 10_000.0, fee_rate=0.0026, slippage=0.0005)
    report = rm.sizing_report(10_000.0)
    # Defaults: 1% at a 2% stop wants a 50% position; the 20% cap makes it ~0.5% real risk.
    assert report["limited_by"] == "position_cap"
    assert report["configured_risk_pct"] == 1.0
    assert 0.4 < float(str(report["effective_risk_pct"])) < 0.6


@settings(max_examples=200, deadline=None)
@given(equity=st.floats(0.0, 20_000.0), cash=st.floats(0.0, 20_000.0),
       open_positions=st.integers(0, 5), age=st.one_of(st.none(), st.floats(0.0, 2_000.0)),
       losses=st.integers(0, 8), r=st.lists(st.floats(-2.0, 3.0), max_size=40),
       since_close=st.one_of(st.none(), st.floats(0.0, 900.0)),
       paused=st.sampled_from([None, *PausedBy]), hour=st.integers(0, 23))
def test_entries_and_the_risk_report_are_one_definition(
        equity: float, cash: float, open_positions: int, age: float | None, losses: int,
        r: list[float], since_close: float | None, paused: PausedBy | None, hour: int) -> None:
    rm = RiskManager(RiskConfig(risk_of_ruin_min_trades=10, stale_data_seconds=600),
                     QuietHours(enabled=True, start_hour_utc=2, end_hour_utc=4), 10_000.0)
    now = 20_000 * DAY + hour * 3600
    rm.state.consecutive_losses = losses
    rm.state.recent_r.extend(r)
    rm.state.last_close_time = None if since_close is None else now - since_close
    if paused is not None:
        rm.pause_trading("because", paused, now)
    rm.mark(equity, now)
    verdict = rm.check_entry(now=now, equity=equity, cash=cash, open_positions=open_positions,
                             data_age_s=age)
    rows = rm.report(now=now, equity=equity, cash=cash, open_positions=open_positions,
                     data_age_s=age)
    first = next((row for row in rows if row["blocking"]), None)
    if first is None:
        assert verdict.allowed
    else:
        assert (verdict.allowed, str(verdict.gate), verdict.message) == (
            False, first["gate"], first["message"])


def test_the_operator_lifts_its_own_and_the_breakers_pause_never_a_humans() -> None:
    rm = manager()
    rm.pause_trading("WebSocket disconnected for 301s", PausedBy.CIRCUIT_BREAKER, NOON)
    rm.pause_trading("feed down", PausedBy.OPERATOR, NOON)
    rm.pause_trading("reviewing", PausedBy.MANUAL, NOON)
    lifted = rm.resume_trading(10_000.0, by=PausedBy.OPERATOR)
    assert {h.by for h in lifted} == {PausedBy.OPERATOR, PausedBy.CIRCUIT_BREAKER}
    assert [h.by for h in rm.pauses.holds] == [PausedBy.MANUAL]
