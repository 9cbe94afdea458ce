"""Canary → live promotion counts only clean, Ready, trading canary time; a live gate that
closes under a running real-money bot pauses it first and stops it only once flat (pure)."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from novapulse_operator import autopilot, canary, teardown
from novapulse_operator.autopilot import Observation, decide
from novapulse_operator.botview import BotView
from novapulse_operator.livegate import GateResult, hold_real_money
from novapulse_operator.podview import PodView
from novapulse_operator.spec import RemediationPolicy

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
CLOSED = GateResult(False, ("Secret kraken lacks KRAKEN_API_SECRET",), "SecretsIncomplete")
OPEN = GateResult(True, (), "PrerequisitesMet")


def view(paused: tuple[str, ...] = (), ws: bool = True, errors: int = 0) -> BotView:
    return BotView(healthy=True, status={
        "ws_connected": ws, "paused": bool(paused),
        "pauses": [{"by": p, "reason": "r"} for p in paused], "error_trades": errors,
        "error_trade_list": [{"trade_id": f"T{i}"} for i in range(errors)]})


MANUAL = [{"type": "ManualInterventionRequired", "status": "True", "reason": "ErrorTrades"}]


@pytest.mark.parametrize(("polls", "credited", "why"), [
    # (seconds since start, bot view, pod Ready, conditions) per poll
    ([(0, view(), True, []), (5, view(), True, []), (10, view(), True, [])], 10.0, None),
    # not Ready, paused, feed down, unreachable: not counted, not reset
    ([(0, view(), True, []), (5, view(), False, []), (10, view(), True, [])], 5.0, None),
    ([(0, view(), True, []), (5, view(("manual",)), True, [])], 0.0,
     "trading is paused by manual"),
    ([(0, view(), True, []), (5, view(ws=False), True, [])], 0.0, "the market feed is down"),
    ([(0, view(), True, []), (5, None, True, [])], 0.0, "the bot's API did not answer"),
    # a crash-looping canary (never Ready) earns nothing
    ([(0, view(), False, []), (60, view(), False, []), (120, view(), False, [])], 0.0,
     "the canary pod is not Ready"),
    # an error trade or ManualInterventionRequired starts the count again
    ([(0, view(), True, []), (20, view(), True, []), (25, view(errors=1), True, [])], 0.0,
     "count restarted: 1 error trade(s) during the canary"),
    ([(0, view(), True, []), (20, view(), True, []), (25, view(), True, MANUAL)], 0.0,
     "count restarted: ManualInterventionRequired (ErrorTrades) during the canary"),
    # a gap nobody watched (operator down) is not credited
    ([(0, view(), True, []), (5, view(), True, []), (500, view(), True, [])], 5.0, None),
])
def test_canary_progress(polls: list[tuple[float, BotView | None, bool, list[Any]]],
                         credited: float, why: str | None) -> None:
    state: dict[str, Any] | None = None
    for seconds, seen, ready, conds in polls:
        state = canary.progress(state, effective="canary", now=T0 + timedelta(seconds=seconds),
                                view=seen, pod_ready=ready, conditions=conds)
    assert state is not None
    assert (state["creditedSeconds"], state.get("notCounting")) == (credited, why)


def test_no_canary_no_progress() -> None:
    assert canary.progress({"creditedSeconds": 50}, effective="live", now=T0, view=view(),
                           pod_ready=True, conditions=[]) is None


FLAT_PAUSED = {"pausedByAll": ["operator"], "openPositions": 0}


@pytest.mark.parametrize(("requested", "gate", "running", "effective", "bot", "held"), [
    ("live", CLOSED, "live", None, {"pausedByAll": [], "openPositions": 2}, True),
    ("live", CLOSED, "live", None, {"pausedByAll": ["operator"], "openPositions": 2}, True),
    ("live", CLOSED, "live", None, {"pausedByAll": [], "openPositions": 0}, True),  # pause first
    ("live", CLOSED, "live", None, {}, True),  # nothing known yet: kept
    ("live", CLOSED, "live", None, FLAT_PAUSED, False),  # paused and flat: stopped
    ("canary", CLOSED, "canary", None, {"openPositions": 1}, True),
    ("live", OPEN, "live", "live", {"openPositions": 1}, False),  # the gate is open
    ("live", CLOSED, "canary", "canary", {"openPositions": 1}, False),  # canary keeps running
    ("paper", CLOSED, "live", "paper", {"openPositions": 1}, False),  # a human's step down
    ("canary", CLOSED, "live", None, {"openPositions": 1}, False),
    ("live", CLOSED, "paper", "paper", {"openPositions": 1}, False),  # paper: no money
])
def test_hold_real_money(requested: Any, gate: GateResult, running: Any, effective: Any,
                         bot: dict[str, Any], held: bool) -> None:
    message = hold_real_money(requested, gate, running, effective, bot)
    assert (message is not None) == held
    if message is not None:
        assert "KRAKEN_API_SECRET" in message and f"the {running} bot is paused" in message


POD = PodView(name="p", uid="u", phase="Running", deleting=False, restart_count=0,
              running=True, waiting_reason=None, last=None, created="", ready=True)


def obs(seconds: float, seen: BotView, hold: str | None) -> Observation:
    return Observation(now=T0 + timedelta(seconds=seconds), running=True, view=seen, pod=POD,
                       memory_limit="1Gi", gate_hold=hold)


def test_gate_closing_pauses_once_and_reopening_lifts_only_its_own_pause() -> None:
    policy = RemediationPolicy()
    d1 = decide(policy, obs(0, view(), "gate closed"), {})
    assert [(a.kind, a.reason) for a in d1.actions] == [("Pause", autopilot.GATE_PAUSED)]
    d2 = decide(policy, obs(5, view(("operator",)), "gate closed"), d1.state)
    assert d2.actions == []  # paused already: not again
    # The gate opens again: the operator lifts its own pause.
    d3 = decide(policy, obs(10, view(("operator", "manual")), None), d2.state)
    assert [(a.kind, a.reason) for a in d3.actions] == [("Resume", "LiveGateReopenedResumed")]
    assert "gatePaused" not in d3.state


def test_a_feed_episode_does_not_lift_the_gate_pause() -> None:
    policy = dataclasses.replace(RemediationPolicy())
    state: dict[str, Any] = {"gatePaused": True,
                             "feed": {"episode": "x", "paused": True,
                                      "upSince": "2026-01-01T11:00:00Z"}}
    d = decide(policy, obs(0, view(("operator",)), "gate closed"), state)
    assert d.actions == [] and d.state["feed"] == {}


def test_unreachable_bot_is_paused_when_it_answers() -> None:
    d1 = decide(RemediationPolicy(), obs(0, BotView(False, None, "refused"), "gate closed"), {})
    assert d1.actions == [] and "gatePaused" not in d1.state
    d2 = decide(RemediationPolicy(), obs(5, view(), "gate closed"), d1.state)
    assert [a.reason for a in d2.actions] == [autopilot.GATE_PAUSED]


def test_a_paper_bot_is_not_told_its_live_prerequisites_are_met() -> None:
    message = GateResult(True, (), "PaperMode").message
    assert "paper mode" in message and "do not apply" in message
    assert OPEN.message == "all live prerequisites of runbook 11 are met"


@pytest.mark.parametrize(("prev", "on_delete", "says"), [
    ({"effectiveMode": "paper"}, "closePositions", "positions are simulated"),
    ({"effectiveMode": "canary"}, "leaveOpen", "left as they are"),
    ({"effectiveMode": None, "bot": {"mode": "live", "openPositions": 0}}, "closePositions",
     "no open live position"),
    ({"effectiveMode": None}, "closePositions", "no bot ran"),
])
def test_deletion_without_the_bot_says_what_is_true(prev: dict[str, Any], on_delete: str,
                                                   says: str) -> None:
    assert says in teardown.unreachable_note(prev, on_delete, "refused")


def test_unreachable_hint_names_resume_only_for_a_suspended_bot() -> None:
    assert "spec.suspended: false" in teardown.unreachable_hint("b", True)
    hint = teardown.unreachable_hint("b", False)
    assert "suspended" not in hint and "kubectl logs deploy/b" in hint


def test_unreachable_hint_in_a_namespace_being_deleted_says_the_pod_will_not_return() -> None:
    hint = teardown.unreachable_hint("b", True, namespace_deleted=True)
    assert "namespace is being deleted" in hint and "by hand" in hint
    assert "spec.suspended" not in hint and "kubectl logs" not in hint  # no pod to resume
    assert "kubectl patch tradingbot b" in hint and '"onDelete":"leaveOpen"' in hint


def test_a_stopped_live_bot_with_open_positions_is_real_money_on_deletion() -> None:
    assert teardown._real_money({"effectiveMode": None,
                                 "bot": {"mode": "live", "openPositions": 2}})
    assert not teardown._real_money({"effectiveMode": "paper",
                                     "bot": {"mode": "paper", "openPositions": 2}})
