"""The auto-pilot's decisions as tables: policy + observation + memory → actions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import celpy
import pytest

from novapulse_operator import autopilot, quantity
from novapulse_operator.autopilot import Observation, decide
from novapulse_operator.botview import BotView
from novapulse_operator.crd import remediation_schema
from novapulse_operator.podview import PodView, Termination
from novapulse_operator.spec import (
    RULE_FEED_ORDER_MSG,
    FeedPolicy,
    RemediationPolicy,
    parse_remediation,
    remediation_rule_violations,
)
from novapulse_operator.status import merge_diff

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
POLICY = RemediationPolicy(feed=FeedPolicy(pause_after=10, restart_after=30,
                                           resume_after_healthy=5),
                           max_restarts_per_hour=2, unhealthy_after=20,
                           oom_growth_factor=1.5, oom_ceiling="2Gi")


def bot(ws: bool = True, pauses: tuple[str, ...] = (), healthy: bool = True) -> BotView:
    return BotView(healthy=healthy, status={
        "ws_connected": ws, "paused": bool(pauses), "paused_by": pauses[0] if pauses else None,
        "pauses": [{"by": p, "reason": "r", "since": 0} for p in pauses]})


def pod(restarts: int = 0, last: Termination | None = None, waiting: str | None = None,
        running: bool = True, uid: str = "u1") -> PodView:
    return PodView(name="bot1-abc", uid=uid, phase="Running", deleting=False,
                   restart_count=restarts, running=running, waiting_reason=waiting, last=last,
                   created="2026-01-01T00:00:00Z")


def obs(seconds: float, view: BotView | None = None, p: PodView | None = None,
        memory: str = "1Gi", holder_exists: bool | None = None) -> Observation:
    return Observation(now=T0 + timedelta(seconds=seconds), running=True,
                       view=view or bot(), pod=p or pod(), memory_limit=memory,
                       holder_exists=holder_exists)


def kinds(decision: autopilot.Decision) -> list[str]:
    return [a.kind for a in decision.actions + decision.done]


def run(steps: list[tuple[float, BotView]], p: PodView | None = None) -> list[list[str]]:
    """Feed a sequence of polls through decide(), carrying the state like the status does."""
    state: dict[str, Any] = {}
    seen = []
    for seconds, view in steps:
        d = decide(POLICY, obs(seconds, view, p), state)
        state = d.state
        seen.append(kinds(d))
    return seen


def test_feed_down_pauses_after_pause_after_then_restarts_once_then_resumes() -> None:
    down, up = bot(ws=False), bot(ws=True, pauses=("operator",))
    assert run([(0, down), (9, down), (10, down), (11, bot(False, ("operator",))),
                (30, bot(False, ("operator",))), (31, bot(False, ("operator",))),
                (40, up), (44, up), (45, up), (46, bot())]) == [
        [], [], ["Pause"], [], ["RestartPod"], [], [], [], ["Resume"], []]


def test_thresholds_count_from_the_moment_the_fault_was_seen_not_its_whole_second() -> None:
    """First seen down at 0.9 s: pauseAfter (10 s) has not passed at 10.1 s, restartAfter
    (30 s) not at 30.5 s; healthy from 31.7 s, resumeAfterHealthy (5 s) not at 36.5 s."""
    down, held = bot(ws=False), bot(False, ("operator",))
    up = bot(True, ("operator",))
    assert run([(0.9, down), (10.1, down), (10.9, down), (30.5, held), (30.9, held),
                (31.7, up), (36.5, up), (36.7, up)]) == [
        [], [], ["Pause"], [], ["RestartPod"], [], [], ["Resume"]]
    sick = bot(healthy=False)  # unhealthyAfter 20 s
    assert run([(0.9, sick), (20.5, sick), (20.9, sick)]) == [[], [], ["RestartPod"]]


def test_a_poll_landing_a_few_milliseconds_short_of_a_threshold_counts_as_reaching_it() -> None:
    """Polls land on the clock, give or take the event loop: 9.95 s of a 10 s pauseAfter is
    reached (not one whole poll later), 9.85 s is not; the same for resumeAfterHealthy."""
    down, held, up = bot(ws=False), bot(False, ("operator",)), bot(True, ("operator",))
    assert run([(0, down), (9.85, down), (9.95, down)]) == [[], [], ["Pause"]]
    assert run([(0, down), (10, down), (11, held), (20, up), (24.85, up), (24.95, up)]) == [
        [], ["Pause"], [], [], [], ["Resume"]]


def reported_down(seconds: float, answered: float) -> BotView:
    """A bot that says its feed has been down `seconds`, in an answer that came at
    `answered` seconds past T0."""
    return BotView(healthy=True, status={"ws_connected": False, "ws_down_s": seconds,
                                         "paused": False, "pauses": []},
                   answered_at=T0 + timedelta(seconds=answered))


def test_the_episode_counts_from_when_the_bot_saw_the_feed_go_down_not_from_the_poll() -> None:
    """The bot has been down 4 s when the poll at 5 s sees it (its answer at 5.1 s): the
    episode began at 1.1 s, so pauseAfter (10 s) is reached at 11.1 s, not at 15 s."""
    state: dict[str, Any] = {}
    first = decide(POLICY, obs(5, reported_down(4, 5.1)), state)
    assert kinds(first) == []
    assert autopilot.parse_ts(first.state["feed"]["downSince"]) == T0 + timedelta(seconds=1.1)
    later = decide(POLICY, obs(11.1, reported_down(10, 11.15)), first.state)
    assert kinds(later) == ["Pause"]
    # A bot that says nothing of it (an older version): from the poll, as before.
    assert autopilot.parse_ts(decide(POLICY, obs(5, bot(ws=False)), {}).state["feed"][
        "downSince"]) == T0 + timedelta(seconds=5)


def test_healthy_again_counts_from_when_the_bot_reconnected() -> None:
    """Paused at 11.1 s; the feed reconnected at 18 s by the bot's count, seen at 20 s:
    resumeAfterHealthy (5 s) is reached at 23 s, which the round asks to be woken for."""
    state = decide(POLICY, obs(5, reported_down(4, 5.1)), {}).state
    paused = decide(POLICY, obs(11.1, reported_down(10, 11.15)), state)
    assert kinds(paused) == ["Pause"]
    state = paused.state
    up = BotView(healthy=True, status={"ws_connected": True, "ws_up_s": 2, "paused": True,
                                       "pauses": [{"by": "operator", "reason": "r"}]},
                 answered_at=T0 + timedelta(seconds=20))
    seen = decide(POLICY, obs(20, up), state)
    assert kinds(seen) == [] and seen.wake_at == T0 + timedelta(seconds=23)
    assert kinds(decide(POLICY, obs(23, up), seen.state)) == ["Resume"]


def test_an_operator_started_mid_outage_acts_on_how_long_the_bot_says_it_lasted() -> None:
    """Down for 40 s by the bot's count when the operator first looks: past pauseAfter and
    restartAfter both, so it pauses and restarts at once (once)."""
    decision = decide(POLICY, obs(0, reported_down(40, 0.05)), {})
    assert kinds(decision) == ["Pause", "RestartPod"]
    assert decision.wake_at is None


@pytest.mark.parametrize(("steps", "wake"), [
    # First seen down: the next moment is pauseAfter from when the bot saw it.
    ([(5, reported_down(4, 5.1))], 11.1),
    # Paused by the operator: restartAfter is next.
    ([(5, reported_down(4, 5.1)), (11.1, bot(False, ("operator",)))], 31.1),
    # The bot's own breaker paused: no pause of ours to wait for, restartAfter is next.
    ([(5, BotView(True, {"ws_connected": False, "ws_down_s": 4, "paused": True,
                         "pauses": [{"by": "circuit_breaker", "reason": "WebSocket "
                                     "disconnected for 4s", "since": 0}]},
                  answered_at=T0 + timedelta(seconds=5.1)))], 31.1),
    # Restarted too: then only the feed's return is awaited, which no clock can foresee.
    ([(5, reported_down(4, 5.1)), (11.1, bot(False, ("operator",))),
      (31.1, bot(False, ("operator",)))], None),
    # Healthy again: resumeAfterHealthy (5 s) from the poll that saw it.
    ([(0, bot(ws=False)), (10, bot(ws=False)), (12, bot(True, ("operator",)))], 17),
    # Resumed: the episode is over, nothing to wake for.
    ([(0, bot(ws=False)), (10, bot(ws=False)), (12, bot(True, ("operator",))),
      (17, bot(True, ("operator",)))], None),
    # A healthy feed and no episode: nothing.
    ([(0, bot())], None),
])
def test_a_round_asks_to_be_woken_when_the_next_feed_threshold_is_reached(
        steps: list[tuple[float, BotView]], wake: float | None) -> None:
    state: dict[str, Any] = {}
    decision = None
    for seconds, view in steps:
        decision = decide(POLICY, obs(seconds, view), state)
        state = decision.state
    assert decision is not None
    assert decision.wake_at == (None if wake is None else T0 + timedelta(seconds=wake))


def test_a_whole_second_since_from_an_earlier_version_still_counts() -> None:
    state = {"feed": {"episode": "2026-01-01T12:00:00Z", "downSince": "2026-01-01T12:00:00Z"}}
    d = decide(POLICY, obs(10, bot(ws=False)), state)
    assert kinds(d) == ["Pause"]
    assert autopilot.parse_ts(autopilot.since_ts(T0 + timedelta(seconds=0.9))) == \
        T0 + timedelta(seconds=0.9)


def test_never_resumes_a_manual_or_risk_rule_pause() -> None:
    down = bot(ws=False, pauses=("manual",))
    # The operator pauses in its own slot; on recovery it lifts only that slot.
    seen = run([(0, down), (10, down), (11, bot(False, ("manual", "operator"))),
                (12, bot(True, ("manual", "operator"))), (20, bot(True, ("manual", "operator")))])
    assert seen == [[], ["Pause"], [], [], ["Resume"]]
    # A pause the operator did not make is never lifted.
    assert run([(0, bot(True, ("risk_rule",))), (100, bot(True, ("risk_rule",)))]) == [[], []]
    assert run([(0, bot(False, ("manual",))), (5, bot(True, ("manual",))),
                (100, bot(True, ("manual",)))]) == [[], [], []]


def test_the_bots_own_breaker_pause_means_no_operator_pause() -> None:
    held = bot(ws=False, pauses=("circuit_breaker",))
    assert run([(0, held), (15, held)]) == [[], []]


def held_by(ws: bool, *holds: tuple[str, str]) -> BotView:
    return BotView(healthy=True, status={
        "ws_connected": ws, "paused": bool(holds), "paused_by": holds[0][0] if holds else None,
        "pauses": [{"by": by, "reason": reason, "since": 0} for by, reason in holds]})


FEED_BREAKER = ("circuit_breaker", "WebSocket disconnected for 60s (circuit breaker after 60s)")


def test_the_feed_breakers_pause_is_lifted_once_the_feed_is_healthy_again() -> None:
    """Runbook 2's manual resume, automated: the bot's own breaker paused (so the operator
    did not), the feed comes back, resumeAfterHealthy (5 s) later the operator resumes."""
    down, up = held_by(False, FEED_BREAKER), held_by(True, FEED_BREAKER)
    assert run([(0, down), (15, down), (20, up), (24, up), (25, up), (26, held_by(True))]) \
        == [[], [], [], [], ["Resume"], []]
    state: dict[str, Any] = {}
    for seconds in (0, 5):  # seen only after the feed was back (e.g. an operator restart)
        d = decide(POLICY, obs(seconds, held_by(True, FEED_BREAKER, ("manual", "m"))), state)
        state = d.state
    assert kinds(d) == ["Resume"]
    assert d.actions[0].message.endswith(
        "the feed circuit breaker's pause lifted; still paused by manual, which only they lift")


def test_the_exchange_unavailable_pause_in_the_breakers_slot_is_left_to_the_bot() -> None:
    exchange = ("circuit_breaker", "Exchange unavailable: HTTP 503")
    assert run([(0, held_by(True, exchange)), (100, held_by(True, exchange))]) == [[], []]


def test_restart_budget_spent_blocks_with_a_reason() -> None:
    state: dict[str, Any] = {"restarts": [autopilot.ts(T0), autopilot.ts(T0)]}
    crash = pod(restarts=3, waiting="CrashLoopBackOff",
                last=Termination("Error", 1, "2026-01-01T12:00:00Z", ""))
    d = decide(POLICY, obs(60, p=crash), state)
    assert kinds(d) == []
    assert d.state["blocked"]["reason"] == "RestartBudgetExhausted"
    assert "maxPerHour: 2" in d.state["blocked"]["message"]
    assert [w[0] for w in d.warnings] == ["RestartBudgetExhausted"]
    # An hour later the budget has room again.
    d2 = decide(POLICY, obs(3700, p=pod(restarts=4, waiting="CrashLoopBackOff",
                                        last=Termination("Error", 1, "x", ""))), d.state)
    assert kinds(d2) == ["RestartPod"] and "blocked" not in d2.state


def test_crash_loop_restarts_once_per_crash() -> None:
    crash = pod(restarts=3, waiting="CrashLoopBackOff",
                last=Termination("Error", 1, "2026-01-01T12:00:00Z", ""))
    d1 = decide(POLICY, obs(0, p=crash), {})
    d2 = decide(POLICY, obs(1, p=crash), d1.state)
    assert (kinds(d1), kinds(d2)) == (["RestartPod"], [])
    assert d1.actions[0].uid == "u1"


def test_oom_raises_the_limit_to_the_ceiling_then_reduces_retention() -> None:
    state: dict[str, Any] = {}
    limit = "1Gi"
    seen = []
    for i in range(4):
        oom = pod(restarts=i + 1, last=Termination("OOMKilled", 137, f"t{i}", ""))
        d = decide(POLICY, obs(i, p=oom, memory=limit), state)
        state = d.state
        limit = state.get("memoryLimit", limit)
        seen.append((kinds(d), limit, [w[0] for w in d.warnings]))
    assert seen == [(["RaiseMemoryLimit"], "1536Mi", []), (["RaiseMemoryLimit"], "2Gi", []),
                    (["ReduceRetention"], "2Gi", []), ([], "2Gi", ["OOMAtCeiling"])]
    # The same termination seen again is not a new OOM.
    again = decide(POLICY, obs(9, p=pod(restarts=4, last=Termination("OOMKilled", 137, "t3",
                                                                      "")), memory=limit), state)
    assert kinds(again) == [] and again.warnings == []


LOCK_LINE = ("ERROR another NovaPulse instance is running: pod bot1-old pid 7 on host h since "
             "2026-01-01T00:00:00Z (identity default/bot1) — two bots ...")


@pytest.mark.parametrize(("holder_exists", "enabled", "expected", "warning"), [
    (False, True, ["ClearStaleLock"], []),
    (True, True, [], ["TwoBotsAboutToRun"]),
    (False, False, [], ["InstanceLockHeld"]),
])
def test_stale_lock(holder_exists: bool, enabled: bool, expected: list[str],
                    warning: list[str]) -> None:
    policy = RemediationPolicy(stale_lock_enabled=enabled)
    locked = pod(restarts=1, waiting="CrashLoopBackOff",
                 last=Termination("Error", 3, "t", LOCK_LINE))
    d = decide(policy, obs(0, p=locked, holder_exists=holder_exists), {})
    assert kinds(d) == expected
    assert [w[0] for w in d.warnings] == warning
    assert d.state.get("lockClear") == ("bot1-old" if expected else None)
    assert d.reapply == bool(expected)


def test_health_failing_while_the_pod_runs_restarts_after_unhealthy_after() -> None:
    sick = bot(healthy=False)
    assert run([(0, sick), (19, sick), (20, sick), (25, sick)]) == [[], [], ["RestartPod"], []]
    # Not running (e.g. Pending): health is not the pod's fault, nothing restarts.
    assert run([(0, sick), (60, sick)], p=pod(running=False)) == [[], []]


def test_pending_actions_are_finished_before_anything_new_is_decided() -> None:
    pending = [{"action": "Pause", "reason": "FeedDownPaused", "message": "m", "id": "Pause@x"}]
    d = decide(POLICY, obs(0, bot(ws=False)), {"pending": pending})
    assert [(a.kind, a.id) for a in d.actions] == [("Pause", "Pause@x")]


def test_history_is_bounded_newest_kept() -> None:
    action = autopilot.Action("Pause", "R", "m")
    state = {"history": [autopilot.history_entry(action, str(i), T0) for i in range(25)]}
    kept = autopilot.with_history(state, [autopilot.history_entry(action, "new", T0)])
    assert len(kept) == autopilot.HISTORY_MAX and kept[-1]["outcome"] == "new"
    assert kept[0]["outcome"] == "6"


@pytest.mark.parametrize(("current", "factor", "ceiling", "expected"), [
    ("1Gi", 1.5, "4Gi", "1536Mi"), ("512Mi", 2, "4Gi", "1Gi"), ("3Gi", 2, "4Gi", "4Gi"),
    ("4Gi", 2, "4Gi", None), ("1G", 1.5, "4Gi", "1431Mi")])
def test_memory_growth(current: str, factor: float, ceiling: str, expected: str | None) -> None:
    assert quantity.grow(current, factor, ceiling) == expected


def test_merge_diff_nulls_what_went() -> None:
    assert merge_diff({"a": 1, "b": {"c": 1, "d": 2}}, {"b": {"c": 1}, "e": 3}) == {
        "a": None, "b": {"d": None}, "e": 3}
    assert merge_diff({"a": [1]}, {"a": [1]}) == {}


@pytest.mark.parametrize(("remediation", "refused"), [
    ({}, False), ({"feed": {"pauseAfter": "10m"}}, True),
    ({"feed": {"pauseAfter": "30s", "restartAfter": "30s"}}, False),
    ({"feed": {"restartAfter": "30s"}}, True)])
def test_feed_order_rule_in_cel_and_python_agree(remediation: dict[str, Any],
                                                 refused: bool) -> None:
    rule = remediation_schema()["properties"]["feed"]["x-kubernetes-validations"][0]
    env = celpy.Environment()
    ok = env.program(env.compile(rule["rule"])).evaluate(
        {"self": celpy.json_to_cel(remediation.get("feed") or {})})
    assert (not ok) == refused
    assert remediation_rule_violations(remediation) == ([RULE_FEED_ORDER_MSG] if refused else [])


def test_remediation_defaults() -> None:
    policy = parse_remediation({})
    assert (policy.feed.pause_after, policy.feed.restart_after,
            policy.feed.resume_after_healthy) == (60, 300, 120)
    assert policy.max_restarts_per_hour == 3 and policy.oom_ceiling == "4Gi"
