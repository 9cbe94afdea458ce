"""Runbook 9 word for word, and every weight change of the auto-tuner visible with its reason:
in the thought log (and the process log) and in the strategies' stats the API serves."""

from __future__ import annotations

import logging

import pytest

from novapulse.config import AIConfig, Config
from novapulse.engine import Engine
from novapulse.execution.paper import PaperExecutor
from novapulse.strategies import DISABLED_MESSAGE, REENABLED_MESSAGE, StrategyBook
from novapulse.thoughts import ThoughtLog


def test_each_tuner_move_has_its_reason_and_survives_a_restart() -> None:
    book = StrategyBook(["a", "b"], AIConfig(guardrail_min_trades=3,
                                             strategy_weights={"a": 1.0}))
    for i, pnl in enumerate([-1.0, -1.0, 1.0, -1.0]):
        book.record_result("a", pnl, float(i))
    changes = book.drain_weight_changes()
    assert [c.strategy for c in changes] == ["a", "a"]
    assert changes[0].old == 1.0 and changes[0].new < 1.0
    assert "recent profit factor 0.50 over 3 trades" in changes[0].reason
    assert "moved 20% of the way" in changes[0].reason
    assert changes[1].message().startswith(f"Strategy weight a {changes[0].new:.2f} -> ")
    assert book.drain_weight_changes() == []
    stats = book.stats("a")
    assert stats.weight_reason == changes[1].reason and stats.weight_changed_at == 3.0
    assert book.stats("b").weight_reason == "configured weight"
    again = StrategyBook(["a", "b"], book.config)
    again.restore(book.snapshot())
    assert again.stats("a").weight_reason == stats.weight_reason


def test_auto_tune_off_says_so() -> None:
    book = StrategyBook(["a"], AIConfig(auto_tune_enabled=False, guardrail_min_trades=2))
    for i in range(4):
        book.record_result("a", -1.0, float(i))
    assert book.drain_weight_changes() == []
    assert book.stats("a").weight_reason == "configured weight (auto-tune off)"


def test_engine_puts_weight_changes_and_guardrail_lines_in_the_thought_log(
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "novapulse.thoughts")
    config = Config.model_validate({"ai": {"guardrail_min_trades": 2}})
    engine = Engine(config, PaperExecutor(0.0, 0.0), ThoughtLog(100))
    name = engine.strategy_names[0]
    for i in range(3):
        engine.book.record_result(name, -1.0, 1000.0 + i)
    engine._retune()
    engine._tick_guardrails(2000.0)
    guardrail = [t for t in engine.thoughts.recent() if t.kind == "guardrail"]
    assert guardrail and guardrail[0].message == DISABLED_MESSAGE  # runbook 9, word for word
    assert guardrail[0].data["strategy"] == name and guardrail[0].data["win_rate"] == 0.0
    assert name in engine.disabled_strategies()
    assert engine.book.stats(name, 2000.0).runtime_disabled
    later = 2000.0 + 60 * config.ai.strategy_guardrails_disable_minutes
    engine._tick_guardrails(later)
    assert engine.thoughts.recent()[-1].message == REENABLED_MESSAGE
    assert name not in engine.disabled_strategies()
    assert any(DISABLED_MESSAGE in r.getMessage() for r in caplog.records)


def test_guardrails_off_never_disable() -> None:
    config = Config.model_validate({"ai": {"guardrail_min_trades": 2,
                                           "strategy_guardrails_enabled": False}})
    engine = Engine(config, PaperExecutor(0.0, 0.0), ThoughtLog(100))
    for i in range(5):
        engine.book.record_result(engine.strategy_names[0], -1.0, float(i))
    engine._tick_guardrails(10.0)
    assert engine.disabled_strategies() == set()
    assert not any(t.kind == "guardrail" for t in engine.thoughts.recent())
