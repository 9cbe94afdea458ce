"""The process log says a pause once when it starts and once when it ends; the thought log
keeps every entry the pause blocked (runbook 3)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from novapulse.backtest import load_files, run
from novapulse.config import Config
from novapulse.thoughts import ThoughtLog

SAMPLES = sorted((Path(__file__).resolve().parents[2] / "data" / "sample").glob("*-5m.csv.gz"))
BLOCK = {"gate": "paused"}


def messages(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "novapulse.thoughts"]


def test_a_pause_is_said_once_when_it_starts_and_once_when_it_ends(
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "novapulse.thoughts")
    thoughts = ThoughtLog(100)
    thoughts.add(1, "pause", "Auto-pause triggered: 5 consecutive losses (limit 5)",
                 data={"paused_by": "risk_rule"}, level=logging.WARNING)
    for ts in range(2, 50):
        thoughts.add(ts, "blocked", "Trading paused (risk_rule): Auto-pause triggered", "ETH/BTC",
                     BLOCK)
    thoughts.add(50, "resume", "Trading RESUMED (1 lifted; was paused by risk_rule: ...)",
                 data={"still_paused": False})
    thoughts.add(51, "blocked", "Global cooldown: 100s remaining", "ETH/BTC",
                 {"gate": "global_cooldown"})
    assert messages(caplog) == [
        "Auto-pause triggered: 5 consecutive losses (limit 5)",
        "Trading RESUMED (1 lifted; was paused by risk_rule: ...) (48 entry signals blocked "
        "while paused)",
        "[ETH/BTC] Global cooldown: 100s remaining",
    ]
    assert sum(1 for t in thoughts.recent() if t.kind == "blocked") == 49
    assert len(thoughts.drain_unsaved()) == 51  # the store gets every one


def test_a_pause_restored_at_start_is_said_at_its_first_block(
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "novapulse.thoughts")
    thoughts = ThoughtLog(100)
    for ts in range(3):
        thoughts.add(ts, "blocked", "Trading paused (manual): Trading PAUSED via control",
                     "ETH/BTC", BLOCK)
    thoughts.add(3, "resume", "Pause lifted, still paused by operator", data={
        "still_paused": True})
    thoughts.add(4, "blocked", "Trading paused (operator): feed down", "ETH/BTC", BLOCK)
    thoughts.add(5, "blocked", "Trading paused (operator): feed down", "ETH/BTC", BLOCK)
    assert messages(caplog) == [
        "[ETH/BTC] Trading paused (manual): Trading PAUSED via control",
        "Pause lifted, still paused by operator (3 entry signals blocked while paused)",
    ]


def test_a_backtest_keeps_every_block_but_logs_each_pause_once(
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "novapulse.thoughts")
    summary = run(Config(), load_files(SAMPLES), resume_after=None).summary
    assert summary.blocked_signals.get("paused", 0) > 100
    lines = messages(caplog)
    assert sum("Trading paused (" in line for line in lines) == 0
    assert sum("Auto-pause triggered" in line for line in lines) == len(summary.pauses)
