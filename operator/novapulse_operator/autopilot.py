"""The auto-pilot's decisions (pure): policy + what was observed + what it remembers in
`status.remediation` in, the new memory and the actions out. Runbooks 1, 2, 6 and 7.

Nothing here does I/O, so each rule is a row in a table test. The caller (`pilot.py`) records
the new state — with the actions as `pending` — in the status *before* it acts, then acts,
then records the outcomes; an operator restarted in between finds `pending` and finishes the
same actions (each is idempotent: a pause or resume by the operator's own slot, a pod deletion
conditioned on the pod's uid) instead of deciding them again or losing them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from novapulse_operator import quantity
from novapulse_operator.botview import BotView
from novapulse_operator.podview import EXIT_LOCK_HELD, PodView
from novapulse_operator.spec import RemediationPolicy

HISTORY_MAX = 20
PAUSE = "Pause"
RESUME = "Resume"
RESTART_POD = "RestartPod"
RAISE_MEMORY = "RaiseMemoryLimit"
REDUCE_RETENTION = "ReduceRetention"
CLEAR_STALE_LOCK = "ClearStaleLock"
API_ACTIONS = (PAUSE, RESUME, RESTART_POD)  # the ones that act outside the status
FEED_PAUSE_REASON = "operator: market feed down (runbook 2)"
GATE_PAUSE_REASON = "operator: live prerequisites no longer met (runbook 11)"
GATE_PAUSED = "LiveGateClosedPaused"
_HOLDER = re.compile(r"instance is running: pod (\S+) pid")
# Runbook 6's retention steps: setting path → the value it is reduced to.
RETENTION_STEPS = {
    "monitoring.metrics_retention_hours": 24,
    "dashboard.thought_feed_max": 100,
    "analytics.buffer_maxlen": 5000,
    "trading.warmup_bars": 300,
}


CLOCK_SLACK_SECONDS = 0.1


def ts(when: datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def since_ts(when: datetime) -> str:
    """A moment a threshold counts from, to the millisecond: cut to the whole second, a
    5-second pauseAfter could pause after 4 s of feed down."""
    return when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z"


def parse_ts(text: Any) -> datetime | None:
    if not isinstance(text, str) or not text:
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None


def lock_holder(message: str) -> str | None:
    """The pod named in the bot's 'another instance is running: pod X pid N …' line."""
    found = _HOLDER.findall(message)
    return found[-1] if found else None


@dataclass(frozen=True)
class Action:
    kind: str
    reason: str  # CamelCase, for the Event and the history
    message: str
    pod: str = ""  # RestartPod: the pod, and its uid (the deletion's precondition)
    uid: str = ""
    id: str = ""  # one decision: its kind and when it was made

    def as_dict(self) -> dict[str, str]:
        return {"action": self.kind, "reason": self.reason, "message": self.message,
                "pod": self.pod, "uid": self.uid, "id": self.id}

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> Action:
        return cls(kind=str(raw.get("action")), reason=str(raw.get("reason") or ""),
                   message=str(raw.get("message") or ""), pod=str(raw.get("pod") or ""),
                   uid=str(raw.get("uid") or ""), id=str(raw.get("id") or ""))


@dataclass(frozen=True)
class Observation:
    now: datetime
    running: bool  # a bot pod is meant to run (not suspended, not gated)
    view: BotView | None  # None: not polled
    pod: PodView | None
    memory_limit: str  # the container's limit as the spec (or an earlier raise) sets it
    holder_exists: bool | None = None  # the lock holder's pod exists (asked when relevant)
    gate_hold: str | None = None  # status.liveGateHold: the gate closed under real money


@dataclass
class Decision:
    state: dict[str, Any]
    actions: list[Action] = field(default_factory=list)  # API actions, to run in order
    done: list[Action] = field(default_factory=list)  # status-only actions, already taken
    warnings: list[tuple[str, str]] = field(default_factory=list)  # (reason, message)
    reapply: bool = False  # the children change (memory, retention, lock clearing)
    # The next moment a threshold of this round's episode is reached (a feed pause, restart
    # or resume): a round then acts on time instead of at the poll after it.
    wake_at: datetime | None = None


def _restarts_in_hour(state: Mapping[str, Any], now: datetime) -> list[str]:
    hour_ago = now - timedelta(hours=1)
    return [t for t in state.get("restarts") or () if (parse_ts(t) or now) > hour_ago]


class _Planner:
    def __init__(self, policy: RemediationPolicy, obs: Observation,
                 state: Mapping[str, Any]) -> None:
        self.policy = policy
        self.obs = obs
        self.now = obs.now
        self.state: dict[str, Any] = {k: v for k, v in state.items() if k != "history"}
        self.state["restarts"] = _restarts_in_hour(state, obs.now)
        self.decision = Decision(state=self.state)

    def lasted(self, text: Any, threshold: float) -> bool:
        """Whether what began at `text` has lasted `threshold` seconds at this poll. Polls
        land on the clock, give or take the event loop: one landing a few milliseconds
        short of the threshold counts as reaching it, instead of costing a whole poll."""
        return self.seconds_since(text) + CLOCK_SLACK_SECONDS >= threshold

    def reached(self, text: Any, threshold: float) -> bool:
        """`lasted`, and when not yet, a round asked for the moment it will have."""
        if self.lasted(text, threshold):
            return True
        since = parse_ts(text)
        if since is not None:
            when = since + timedelta(seconds=threshold)
            current = self.decision.wake_at
            self.decision.wake_at = when if current is None else min(current, when)
        return False

    def seconds_since(self, text: Any) -> float:
        since = parse_ts(text)
        return 0.0 if since is None else (self.now - since).total_seconds()

    def handled(self, key: str, value: str) -> bool:
        """Whether `value` (one observed fault) was handled already; marks it handled."""
        marks = dict(self.state.get("handled") or {})
        if marks.get(key) == value:
            return True
        marks[key] = value
        self.state["handled"] = marks
        return False

    def restart(self, pod: PodView, reason: str, message: str) -> bool:
        """Restart `pod` if the hour's budget allows; else say the budget is spent."""
        limit = self.policy.max_restarts_per_hour
        if len(self.state["restarts"]) >= limit:
            blocked = {"reason": "RestartBudgetExhausted",
                       "message": f"{reason}: {message}; but the operator already restarted "
                       f"the pod {len(self.state['restarts'])} time(s) in the last hour "
                       f"(spec.remediation.restarts.maxPerHour: {limit}) and restarts no "
                       f"more. Look at the pod's logs (kubectl logs {pod.name} --previous) "
                       "and docs/runbooks.md, runbook 1"}
            if (self.state.get("blocked") or {}).get("reason") != blocked["reason"]:
                self.decision.warnings.append((blocked["reason"], blocked["message"]))
            self.state["blocked"] = blocked
            return False
        self.state["restarts"] = [*self.state["restarts"], ts(self.now)]
        self.decision.actions.append(Action(RESTART_POD, reason, message, pod.name, pod.uid,
                                            f"{RESTART_POD}@{ts(self.now)}"))
        return True

    # --- runbook 2: the market feed ----------------------------------------------------------
    def feed(self) -> None:
        view = self.obs.view
        feed = dict(self.state.get("feed") or {})
        if view is None or not view.reachable or not self.obs.running:
            return  # nothing known about the feed: keep the episode as it is
        holders = view.pause_holders
        p = self.policy.feed
        if not view.ws_connected:
            feed.setdefault("episode", ts(self.now))
            # From when the bot saw the feed go down, not from this poll: otherwise a
            # threshold comes up to a poll late (the bot's own breaker counts the same way).
            feed.setdefault("downSince", since_ts(view.feed_down_since or self.now))
            feed.pop("upSince", None)
            down = self.seconds_since(feed["downSince"])
            if ("operator" not in holders and "circuit_breaker" not in holders
                    and not feed.get("paused") and self.reached(feed["downSince"],
                                                                p.pause_after)):
                feed["paused"] = True
                self.decision.actions.append(Action(
                    PAUSE, "FeedDownPaused",
                    f"market feed down for {down:.0f}s (pauseAfter {p.pause_after}s): "
                    "trading paused by the operator", id=f"{PAUSE}@{ts(self.now)}"))
            pod = self.obs.pod
            if (feed.get("restarted") != feed["episode"] and pod is not None
                    and self.reached(feed["downSince"], p.restart_after)):
                feed["restarted"] = feed["episode"]  # once per episode, even when refused
                self.restart(pod, "FeedDownRestart",
                             f"market feed down for {down:.0f}s (restartAfter "
                             f"{p.restart_after}s): restarting pod {pod.name}")
        elif "episode" in feed or view.feed_breaker_paused:
            feed.pop("downSince", None)
            feed.setdefault("upSince", since_ts(view.feed_up_since or self.now))
            up = self.seconds_since(feed["upSince"])
            if self.reached(feed["upSince"], p.resume_after_healthy):
                ours = bool(feed.get("paused")) and "operator" in holders
                breaker = view.feed_breaker_paused  # runbook 2's manual resume, automated
                # The gate's pause shares the operator's slot: it outlives the feed episode.
                if (ours or breaker) and not self.state.get("gatePaused"):
                    lifted = " and ".join(name for name, held in (
                        ("the operator's pause", ours),
                        ("the feed circuit breaker's pause", breaker)) if held)
                    others = [h for h in holders if h not in ("operator", "circuit_breaker")]
                    still = (f"; still paused by {', '.join(others)}, which only they lift"
                             if others else "")
                    self.decision.actions.append(Action(
                        RESUME, "FeedHealthyResumed",
                        f"market feed healthy for {up:.0f}s (resumeAfterHealthy "
                        f"{p.resume_after_healthy}s): {lifted} lifted{still}",
                        id=f"{RESUME}@{ts(self.now)}"))
                feed = {}
        self.state["feed"] = feed

    # --- runbook 11: the live gate closed under a running canary/live bot ------------------
    def gate(self) -> None:
        view, hold = self.obs.view, self.obs.gate_hold
        holders = view.pause_holders if view is not None else ()
        if hold:
            if self.state.get("gatePaused") or view is None or not view.reachable:
                return  # paused already, or not reachable now: tried again next round
            self.state["gatePaused"] = True
            if "operator" not in holders:
                self.decision.actions.append(Action(
                    PAUSE, GATE_PAUSED, f"trading paused by the operator: {hold}",
                    id=f"{PAUSE}@{ts(self.now)}"))
            return
        if not self.state.pop("gatePaused", None):
            return
        feed_paused = (self.state.get("feed") or {}).get("paused")
        if (self.obs.running and view is not None and "operator" in holders
                and not feed_paused):
            self.decision.actions.append(Action(
                RESUME, "LiveGateReopenedResumed", "live prerequisites met again: the "
                "operator's pause lifted (anyone else's stays)", id=f"{RESUME}@{ts(self.now)}"))

    # --- runbooks 1 and 7: failing health, crash loops ---------------------------------------
    def health(self) -> None:
        view, pod = self.obs.view, self.obs.pod
        if not self.obs.running or pod is None:
            self.state.pop("unhealthySince", None)
            return
        failing = pod.running and view is not None and not view.healthy
        if not failing:
            self.state.pop("unhealthySince", None)
            return
        self.state.setdefault("unhealthySince", since_ts(self.now))
        down = self.seconds_since(self.state["unhealthySince"])
        if (self.lasted(self.state["unhealthySince"], self.policy.unhealthy_after)
                and not self.handled("health", pod.uid)):
            detail = view.error if view is not None and view.error else "not healthy"
            self.restart(pod, "HealthFailingRestart",
                         f"/api/v1/health failing for {down:.0f}s ({detail}) while pod "
                         f"{pod.name} runs: restarting it")

    def crashes(self) -> None:
        pod = self.obs.pod
        if not self.obs.running or pod is None or pod.last is None:
            return
        last = pod.last
        mark = f"{pod.uid}/{pod.restart_count}/{last.finished_at}"
        if last.reason == "OOMKilled":
            if not self.handled("oom", mark):
                self.oom(pod)
        elif last.exit_code == EXIT_LOCK_HELD:
            if not self.handled("lock", mark):
                self.lock(pod, last.message)
        elif pod.crash_looping and not self.handled("crash", mark):
            self.restart(pod, "CrashLoopRestart",
                         f"pod {pod.name} is in CrashLoopBackOff (last exit: "
                         f"{last.reason or 'Error'}, code {last.exit_code}): restarting it")

    # --- runbook 6: memory -------------------------------------------------------------------
    def oom(self, pod: PodView) -> None:
        current = self.obs.memory_limit
        raised = quantity.grow(current, self.policy.oom_growth_factor, self.policy.oom_ceiling)
        if raised is not None:
            self.state["memoryLimit"] = raised
            self.decision.reapply = True
            self.decision.done.append(Action(
                RAISE_MEMORY, "MemoryLimitRaised",
                f"pod {pod.name} was OOMKilled: memory limit {current} → {raised} "
                f"(×{self.policy.oom_growth_factor:g}, ceiling {self.policy.oom_ceiling})"))
        elif not self.state.get("retentionReduced"):
            self.state["retentionReduced"] = True
            self.decision.reapply = True
            steps = ", ".join(f"{k} → {v}" for k, v in RETENTION_STEPS.items())
            self.decision.done.append(Action(
                REDUCE_RETENTION, "RetentionReduced",
                f"pod {pod.name} was OOMKilled at the memory ceiling "
                f"{self.policy.oom_ceiling}: retention reduced (runbook 6): {steps}"))
        else:
            self.decision.warnings.append((
                "OOMAtCeiling",
                f"pod {pod.name} was OOMKilled again with the memory limit at the ceiling "
                f"{self.policy.oom_ceiling} and retention already reduced: raise "
                "spec.remediation.oom.ceiling or reduce spec.pairs (runbook 6)"))

    # --- runbook 1, cause 1: the instance lock -----------------------------------------------
    def lock(self, pod: PodView, message: str) -> None:
        holder = lock_holder(message)
        if not self.policy.stale_lock_enabled:
            self.decision.warnings.append((
                "InstanceLockHeld", f"pod {pod.name} exited 3: the instance lock is held "
                f"({holder or 'holder not recorded'}); spec.remediation.staleLock.enabled is "
                "false, so it is left as it is"))
            return
        if holder is None:
            self.decision.warnings.append((
                "InstanceLockHeld", f"pod {pod.name} exited 3 (instance lock held) but its "
                "log names no holder: check with `novapulse lock status` in the pod"))
            return
        if self.obs.holder_exists or holder == pod.name:
            self.decision.warnings.append((
                "TwoBotsAboutToRun", f"pod {pod.name} exited 3: the instance lock is held by "
                f"pod {holder}, which still exists; two bots on one account would place "
                "double orders, so the lock is left as it is (runbook 1)"))
            return
        self.state["lockClear"] = holder
        self.decision.reapply = True
        self.decision.done.append(Action(
            CLEAR_STALE_LOCK, "StaleLockCleared",
            f"pod {pod.name} exited 3 on an instance lock held by pod {holder}, which no "
            "longer exists: the pod restarts with `novapulse lock clear --if-stale` first"))


def decide(policy: RemediationPolicy, obs: Observation, state: Mapping[str, Any]) -> Decision:
    """What to do now. Pending actions (an interrupted run) are finished first, and nothing
    new is decided until they are."""
    planner = _Planner(policy, obs, state)
    pending = [Action.from_dict(a) for a in state.get("pending") or ()]
    if pending:
        planner.decision.actions = pending
        return planner.decision
    if len(planner.state["restarts"]) < policy.max_restarts_per_hour:
        planner.state.pop("blocked", None)  # the budget has room again
    planner.gate()
    planner.feed()
    planner.crashes()
    planner.health()
    return planner.decision


def with_history(state: Mapping[str, Any], entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The newest HISTORY_MAX entries, oldest first."""
    return [*(state.get("history") or ()), *entries][-HISTORY_MAX:]


def history_entry(action: Action, outcome: str, now: datetime) -> dict[str, Any]:
    entry = {"time": ts(now), "action": action.kind, "reason": action.reason,
             "outcome": outcome, "message": action.message}
    if action.pod:
        entry["pod"] = action.pod
    return entry
