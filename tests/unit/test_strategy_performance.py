from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from novapulse.config import AIConfig
from novapulse.strategies.performance import (
    DISABLED_MESSAGE,
    MAX_WEIGHT_FACTOR,
    MIN_WEIGHT_FACTOR,
    PROFIT_FACTOR_CAP,
    StrategyBook,
)

NAMES = ["ema_cross", "bollinger_rsi"]
T0 = 1_700_000_000.0


def config(**overrides: object) -> AIConfig:
    base: dict[str, object] = {"guardrail_min_trades": 4, "guardrail_min_win_rate": 0.3,
                               "guardrail_min_profit_factor": 0.7,
                               "strategy_guardrails_disable_minutes": 120}
    base.update(overrides)
    return AIConfig.model_validate(base)


def record_many(book: StrategyBook, name: str, pnls: list[float], now: float = T0) -> None:
    for pnl in pnls:
        book.record_result(name, pnl, now)


def test_messages_are_the_runbook_strings_verbatim() -> None:
    book = StrategyBook(NAMES, config())
    record_many(book, "ema_cross", [-1.0] * 4)
    [disabled] = book.tick(T0)
    assert disabled.message == "Strategy auto-disabled by runtime guardrail"
    assert disabled.log_line().startswith("Strategy auto-disabled by runtime guardrail")
    assert "strategy=ema_cross" in disabled.log_line()
    [enabled] = book.tick(T0 + 120 * 60)
    assert enabled.message == "Strategy re-enabled after guardrail cooldown"
    assert enabled.log_line().startswith("Strategy re-enabled after guardrail cooldown")


def test_guardrail_waits_for_min_trades_then_disables_for_the_configured_time() -> None:
    book = StrategyBook(NAMES, config())
    record_many(book, "ema_cross", [-1.0] * 3)
    assert book.tick(T0) == []
    book.record_result("ema_cross", -1.0, T0)
    events = book.tick(T0 + 5)
    assert [(e.strategy, e.kind, e.until) for e in events] == [
        ("ema_cross", "disabled", T0 + 5 + 120 * 60)
    ]
    assert events[0].win_rate == 0.0
    assert events[0].trades == 4
    assert book.disabled(T0 + 5) == {"ema_cross"}
    stats = book.stats("ema_cross")
    assert stats.runtime_disabled and stats.disabled_until == T0 + 5 + 7200
    assert not book.stats("bollinger_rsi").runtime_disabled

    one_second_early = T0 + 5 + 7200 - 1
    assert book.tick(one_second_early) == []
    assert book.disabled(one_second_early) == {"ema_cross"}
    assert book.disabled(T0 + 5 + 7200) == set()
    assert [e.kind for e in book.tick(T0 + 5 + 7200)] == ["re_enabled"]
    assert not book.stats("ema_cross").runtime_disabled
    assert book.tick(T0 + 10_000) == []


def test_after_re_enabling_only_fresh_results_are_judged() -> None:
    book = StrategyBook(NAMES, config())
    record_many(book, "ema_cross", [-1.0] * 4)
    book.tick(T0)
    book.tick(T0 + 7200)
    record_many(book, "ema_cross", [2.0, -1.0, 2.0], T0 + 7300)
    assert book.tick(T0 + 7400) == []
    stats = book.stats("ema_cross")
    assert (stats.trades, stats.wins, stats.recent_trades) == (7, 2, 3)


def test_low_profit_factor_alone_disables() -> None:
    book = StrategyBook(NAMES, config())
    # win rate 0.5 passes, profit factor 2 / 6 does not
    record_many(book, "bollinger_rsi", [1.0, -3.0, 1.0, -3.0])
    assert [e.strategy for e in book.tick(T0)] == ["bollinger_rsi"]


def test_healthy_strategy_stays_enabled() -> None:
    book = StrategyBook(NAMES, config())
    record_many(book, "ema_cross", [1.0, -1.0, 2.0, -1.0, 1.5])
    assert book.tick(T0) == []
    assert book.disabled(T0) == set()


def test_config_switch_off_means_no_guardrail_at_all() -> None:
    book = StrategyBook(NAMES, config(strategy_guardrails_enabled=False))
    record_many(book, "ema_cross", [-1.0] * 10)
    assert book.tick(T0) == []
    assert book.disabled(T0) == set()
    assert not book.stats("ema_cross").runtime_disabled


def test_turning_guardrails_off_releases_a_disabled_strategy_after_restart() -> None:
    book = StrategyBook(NAMES, config())
    record_many(book, "ema_cross", [-1.0] * 4)
    book.tick(T0)
    restarted = StrategyBook(NAMES, config(strategy_guardrails_enabled=False))
    restarted.restore(json.loads(json.dumps(book.snapshot())))
    assert restarted.disabled(T0 + 1) == set()


def test_one_trade_counts_for_every_strategy_that_voted() -> None:
    book = StrategyBook(NAMES, config())
    book.record_result(["ema_cross", "bollinger_rsi", "ema_cross"], 3.0, T0)
    for name in NAMES:
        stats = book.stats(name)
        assert (stats.trades, stats.wins, stats.win_rate) == (1, 1, 1.0)
        assert stats.profit_factor == PROFIT_FACTOR_CAP


def test_auto_tune_raises_winners_and_lowers_losers_smoothly() -> None:
    book = StrategyBook(NAMES, config(strategy_weights={"ema_cross": 1.0, "bollinger_rsi": 1.0}))
    record_many(book, "ema_cross", [3.0, -1.0] * 4)  # profit factor 3
    record_many(book, "bollinger_rsi", [1.0, -2.0] * 4)  # profit factor 0.5
    weights = book.weights()
    assert 1.0 < weights["ema_cross"] < MAX_WEIGHT_FACTOR
    assert MIN_WEIGHT_FACTOR < weights["bollinger_rsi"] < 1.0
    record_many(book, "ema_cross", [3.0, -1.0] * 50)
    assert book.weight("ema_cross") == pytest.approx(MAX_WEIGHT_FACTOR, rel=1e-3)


def test_auto_tune_off_keeps_configured_weights() -> None:
    book = StrategyBook(NAMES, config(auto_tune_enabled=False,
                                      strategy_weights={"ema_cross": 1.5}))
    record_many(book, "ema_cross", [5.0] * 20)
    record_many(book, "bollinger_rsi", [-5.0] * 20)
    assert book.weights() == {"ema_cross": 1.5, "bollinger_rsi": 1.0}


@given(st.lists(st.floats(-100.0, 100.0), max_size=80), st.floats(0.1, 3.0))
def test_tuned_weights_stay_within_bounds(pnls: list[float], base: float) -> None:
    book = StrategyBook(["s"], config(strategy_weights={"s": base}))
    for pnl in pnls:
        book.record_result("s", pnl, T0)
        assert MIN_WEIGHT_FACTOR * base - 1e-12 <= book.weight("s")
        assert book.weight("s") <= MAX_WEIGHT_FACTOR * base + 1e-12
    assert book.stats("s").trades == len(pnls)


def test_snapshot_survives_a_restart() -> None:
    book = StrategyBook(NAMES, config())
    record_many(book, "ema_cross", [-1.0] * 4)
    record_many(book, "bollinger_rsi", [2.0, -1.0, 3.0, 1.0, -0.5])
    book.tick(T0)
    restored = StrategyBook(NAMES, config())
    restored.restore(json.loads(json.dumps(book.snapshot())))
    for name in NAMES:
        assert restored.stats(name) == book.stats(name)
    assert restored.disabled(T0 + 60) == {"ema_cross"}
    assert [e.kind for e in restored.tick(T0 + 7200)] == ["re_enabled"]


def test_snapshot_of_an_unknown_version_is_refused() -> None:
    with pytest.raises(ValueError):
        StrategyBook(NAMES, config()).restore({"version": 99, "strategies": {}})


def test_disabled_message_constant_matches_runbook() -> None:
    assert DISABLED_MESSAGE == "Strategy auto-disabled by runtime guardrail"
