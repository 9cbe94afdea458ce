"""Canary → live promotion (pure): how much canary time counts towards `canary.minDuration`.

Only time the canary pod was Ready and the bot was trading counts: reachable, feed connected,
no pause held. An error trade or a ManualInterventionRequired condition during the canary
starts the count again — the canary must run `minDuration` clean, not merely exist that long
(a crash-looping canary earns nothing). The auto-pilot calls `progress` on every poll and keeps
the result in `status.canary`; the live gate reads `creditedSeconds`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from novapulse_operator.autopilot import parse_ts
from novapulse_operator.botview import BotView

# A gap between two polls longer than this (an operator restart, a stalled loop) is not
# credited: nobody looked at the canary then.
MAX_STEP_SECONDS = 30.0


def not_counting(view: BotView | None, pod_ready: bool | None) -> str | None:
    """Why this moment of canary does not count (None: it does)."""
    if not pod_ready:
        return "the canary pod is not Ready"
    if view is None or view.status is None:
        return "the bot's API did not answer"
    if not view.ws_connected:
        return "the market feed is down"
    if view.status.get("paused"):
        return f"trading is paused by {', '.join(view.pause_holders) or 'someone'}"
    return None


def spoiled(view: BotView | None, conditions: Sequence[Mapping[str, Any]]) -> str | None:
    """What restarts the count: error trades, or a human asked to step in."""
    if view is not None and view.status is not None:
        count = int(view.status.get("error_trades") or len(view.error_trades))
        if count:
            return f"{count} error trade(s)"
    for cond in conditions:
        if cond.get("type") == "ManualInterventionRequired" and cond.get("status") == "True":
            return f"ManualInterventionRequired ({cond.get('reason')})"
    return None


def progress(prev: Mapping[str, Any] | None, *, effective: str | None, now: datetime,
             view: BotView | None, pod_ready: bool | None,
             conditions: Sequence[Mapping[str, Any]]) -> dict[str, Any] | None:
    """The new `status.canary`; None when no canary runs (the count starts afresh next time)."""
    if effective != "canary":
        return None
    prev = prev or {}
    credited = float(prev.get("creditedSeconds") or 0.0)
    last = parse_ts(prev.get("checkedAt"))
    step = 0.0 if last is None else max(0.0, (now - last).total_seconds())
    out: dict[str, Any] = {"checkedAt": now.isoformat().replace("+00:00", "Z")}
    reset = spoiled(view, conditions)
    paused = not_counting(view, pod_ready)
    if reset is not None:
        credited = 0.0
        out["notCounting"] = f"count restarted: {reset} during the canary"
    elif paused is not None:
        out["notCounting"] = paused
    elif step <= MAX_STEP_SECONDS:
        credited += step
    out["creditedSeconds"] = round(credited, 1)
    return out
