"""Status by Kubernetes conventions: phase and conditions (pure)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from novapulse_operator.database import DATABASE_READY, DatabaseState
from novapulse_operator.livegate import GateResult
from novapulse_operator.spec import Mode

READY = "Ready"
CONFIG_VALID = "ConfigValid"
LIVE_PREREQUISITES_MET = "LivePrerequisitesMet"
MANUAL_INTERVENTION = "ManualInterventionRequired"

Condition = dict[str, Any]


def timestamp(now: datetime) -> str:
    return now.strftime("%Y-%m-%dT%H:%M:%SZ")


def set_condition(
    conditions: Sequence[Mapping[str, Any]],
    type_: str,
    status: bool | None,
    reason: str,
    message: str,
    generation: int,
    now: datetime,
) -> list[Condition]:
    """The conditions with one set; lastTransitionTime moves only when the status changes."""
    value = "Unknown" if status is None else ("True" if status else "False")
    previous = next((c for c in conditions if c.get("type") == type_), None)
    since = timestamp(now)
    if previous is not None and previous.get("status") == value:
        since = str(previous.get("lastTransitionTime") or since)
    new: Condition = {
        "type": type_,
        "status": value,
        "reason": reason,
        "message": message,
        "observedGeneration": generation,
        "lastTransitionTime": since,
    }
    others = [dict(c) for c in conditions if c.get("type") != type_]
    return sorted([*others, new], key=lambda c: str(c.get("type")))


def get_condition(status: Mapping[str, Any], type_: str) -> Mapping[str, Any] | None:
    for cond in status.get("conditions") or ():
        if cond.get("type") == type_:
            return dict(cond)
    return None


@dataclass(frozen=True)
class Observation:
    """What one reconcile saw and decided."""

    generation: int
    requested: Mode
    suspended: bool
    config_errors: tuple[str, ...]
    gate: GateResult
    effective: Mode | None
    deployment_ready: bool
    config_hash: str | None
    exchange_account: str | None = None  # keyed hash of the API key (accounts.account_hash)
    refused: str | None = None  # the API server refused a child: its message
    held: str | None = None  # gate closed under a real-money bot kept running (livegate)
    database: DatabaseState | None = None  # where the bot's database is; None: not looked at


def phase_of(obs: Observation) -> tuple[str, str]:
    """(phase, why) in one word and one sentence."""
    if obs.config_errors:
        return "ConfigInvalid", "the config is invalid; the last valid one keeps running"
    if obs.refused:
        return "Failed", obs.refused
    if obs.suspended:
        return "Suspended", "spec.suspended is true: no pod runs, the data volume is kept"
    if obs.held:
        return "Degraded", obs.held
    db = obs.database
    if obs.effective is None and db is not None and not db.ready:
        return "Blocked", f"the {obs.requested} bot waits for its database ({db.problem}); " \
            "no pod runs"
    if obs.effective is None:
        return "Blocked", f"{obs.requested} mode waits for its prerequisites; no pod runs"
    if obs.effective != obs.requested:
        return "Degraded", (f"{obs.requested} mode waits for its prerequisites; "
                            f"{obs.effective} mode keeps running")
    if not obs.deployment_ready:
        return "Starting", f"the {obs.effective} bot is starting"
    return "Running", f"the {obs.effective} bot is running"


def canary_since(prev: Mapping[str, Any], effective: Mode | None, now: datetime) -> str | None:
    if effective != "canary":
        return None
    if prev.get("effectiveMode") == "canary" and prev.get("canarySince"):
        return str(prev["canarySince"])
    return timestamp(now)


def ready_block(conds: list[Condition], remediation: Mapping[str, Any], generation: int,
                now: datetime) -> list[Condition]:
    """Ready=False while the auto-pilot has given up (its restart budget is spent), with that
    reason: it says what a human must look at, whatever the phase alone would say (a
    crash-looping bot never was Ready, so its Ready said only "starting")."""
    blocked = remediation.get("blocked") or {}
    ready = next((c for c in conds if c.get("type") == READY), None)
    if not blocked or ready is None or ready.get("reason") == "ChildRefused":
        return conds
    return set_condition(conds, READY, False, str(blocked.get("reason")),
                         str(blocked.get("message")), generation, now)


def compute_status(prev: Mapping[str, Any], obs: Observation, now: datetime) -> dict[str, Any]:
    """The new `.status` (the keys this operator owns) from the previous one and `obs`."""
    gen = obs.generation
    conds: list[Condition] = [dict(c) for c in prev.get("conditions") or ()]
    if obs.config_errors:
        conds = set_condition(conds, CONFIG_VALID, False, "InvalidConfig",
                              "; ".join(obs.config_errors), gen, now)
    else:
        conds = set_condition(conds, CONFIG_VALID, True, "Valid", "spec.config is valid", gen, now)
    conds = set_condition(conds, LIVE_PREREQUISITES_MET, obs.gate.met, obs.gate.reason,
                          obs.gate.message, gen, now)
    if obs.database is not None:
        conds = set_condition(conds, DATABASE_READY, obs.database.ready, obs.database.reason,
                              obs.database.message, gen, now)
    phase, why = phase_of(obs)
    reason = "ChildRefused" if obs.refused else phase
    conds = set_condition(conds, READY, phase == "Running", reason, why, gen, now)
    conds = ready_block(conds, prev.get("remediation") or {}, gen, now)
    status: dict[str, Any] = {
        "phase": phase,
        "observedGeneration": gen,
        "conditions": conds,
        "canarySince": canary_since(prev, obs.effective, now),
        "liveGateHold": obs.held,
    }
    if not obs.config_errors:
        status["effectiveMode"] = obs.effective
        status["configHash"] = obs.config_hash
        status["exchangeAccount"] = obs.exchange_account
    return status


def merge_diff(old: Any, new: Any) -> Any:
    """The JSON merge patch (RFC 7386) that turns `old` into `new`: changed keys, nulls for
    removed ones; lists are replaced whole. `old == new` gives {}."""
    if not isinstance(old, Mapping) or not isinstance(new, Mapping):
        return new
    diff: dict[str, Any] = {k: None for k in old if k not in new}
    for key, value in new.items():
        if key not in old:
            diff[key] = value
        elif old[key] != value:
            diff[key] = merge_diff(old[key], value) if isinstance(value, Mapping) else value
    return diff
