"""The risk manager's gates as pure decisions: each one blocks with the runbook's words."""

from __future__ import annotations

import pytest

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
    rm.record_close(-250.0, NOON, 9_750.0)
    assert check(rm, equity=9_750.0)[1:] == (Gate.DAILY_LOSS, MSG_DAILY_LOSS)
    next_day = NOON + DAY
    rm.roll_day(next_day, 9_750.0)
    assert check(rm, now=next_day + 3600, equity=9_750.0)[0] is True


def test_max_positions() -> None:
    assert check(manager(max_open_positions=2), open_positions=2)[1:] == (
        Gate.MAX_POSITIONS, MSG_MAX_POSITIONS)


def test_global_cooldown_counts_down() -> None:
    rm = manager(global_cooldown_seconds=300, max_consecutive_losses=50)
    rm.record_close(5.0, NOON, 10_005.0)
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
        rm.record_close(-10.0 if i % 3 else 5.0, NOON, 10_000.0)
    assert check(rm)[0] is True  # not enough trades to judge yet
    rm.record_close(-10.0, NOON, 10_000.0)
    assert check(rm)[1:] == (Gate.RISK_OF_RUIN, MSG_RISK_OF_RUIN)


def test_consecutive_losses_auto_pause_until_resumed() -> None:
    rm = manager(max_consecutive_losses=3, max_drawdown_pct=90, max_daily_loss_pct=90)
    messages = []
    for _ in range(3):
        messages += rm.record_close(-1.0, NOON, 9_990.0)
    assert messages == ["Auto-pause triggered: 3 consecutive losses (limit 3)"]
    assert rm.pause.paused_by is PausedBy.RISK_RULE
    assert check(rm)[1] is Gate.PAUSED
    assert rm.resume_trading(9_990.0)
    assert check(rm, now=NOON + 3600)[0] is True


def test_drawdown_auto_pause() -> None:
    rm = manager(max_drawdown_pct=10, max_consecutive_losses=50, max_daily_loss_pct=90)
    rm.check_auto_pause(12_000.0, NOON)
    messages = rm.record_close(-1_000.0, NOON, 10_700.0)
    assert messages == ["Auto-pause triggered: drawdown 10.83% exceeds 10%"]
    assert rm.pause.paused and rm.pause.paused_by is PausedBy.RISK_RULE


def test_operator_cannot_lift_a_manual_pause() -> None:
    rm = manager()
    rm.pause_trading("human says stop", PausedBy.MANUAL, NOON)
    assert rm.resume_trading(10_000.0, by=PausedBy.OPERATOR) is False
    assert rm.pause.paused
    assert rm.resume_trading(10_000.0) is True


@pytest.mark.parametrize(
    ("win_rate", "avg_win", "avg_loss", "expected_low", "expected_high"),
    [(0.6, 2.0, 1.0, 0.0, 1e-6), (0.3, 1.0, 1.0, 1.0, 1.0), (0.5, 1.1, 1.0, 0.005, 0.02)],
)
def test_risk_of_ruin_formula(win_rate: float, avg_win: float, avg_loss: float,
                              expected_low: float, expected_high: float) -> None:
    assert expected_low <= risk_of_ruin(win_rate, avg_win, avg_loss, 50) <= expected_high


def test_report_lists_every_gate() -> None:
    rows = manager(stale_data_seconds=60).report(now=NOON, equity=10_000.0, open_positions=0,
                                                 data_age_s=90.0)
    assert {row["gate"] for row in rows} == {g.value for g in Gate}
    stale = next(row for row in rows if row["gate"] == "stale_data")
    assert stale == {"gate": "stale_data", "blocking": True, "value": 90.0, "limit": 60}
