"""Phase and conditions (pure)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from novapulse_operator.livegate import GateResult
from novapulse_operator.status import (
    Observation,
    compute_status,
    get_condition,
    phase_of,
    ready_block,
    set_condition,
)

T0 = datetime(2026, 1, 1, tzinfo=UTC)
OPEN = GateResult(True, (), "PaperMode")
CLOSED = GateResult(False, ("Secret k lacks KRAKEN_API_SECRET",), "SecretsIncomplete")


def obs(**kw) -> Observation:  # type: ignore[no-untyped-def]
    base = {"generation": 3, "requested": "paper", "suspended": False, "config_errors": (),
            "gate": OPEN, "effective": "paper", "deployment_ready": True, "config_hash": "h"}
    return Observation(**{**base, **kw})


def test_last_transition_time_moves_only_on_change() -> None:
    conds = set_condition([], "Ready", False, "Starting", "m", 1, T0)
    later = T0 + timedelta(minutes=5)
    same = set_condition(conds, "Ready", False, "Starting", "other message", 2, later)
    assert same[0]["lastTransitionTime"] == "2026-01-01T00:00:00Z"
    assert same[0]["observedGeneration"] == 2 and same[0]["message"] == "other message"
    flipped = set_condition(same, "Ready", True, "Running", "m", 2, later)
    assert flipped[0]["lastTransitionTime"] == "2026-01-01T00:05:00Z"
    assert flipped[0]["status"] == "True"


@pytest.mark.parametrize(("kw", "phase"), [
    ({}, "Running"),
    ({"deployment_ready": False}, "Starting"),
    ({"suspended": True}, "Suspended"),
    ({"config_errors": ("risk.x: bad",)}, "ConfigInvalid"),
    ({"requested": "live", "gate": CLOSED, "effective": None}, "Blocked"),
    ({"requested": "live", "gate": CLOSED, "effective": "paper"}, "Degraded"),
])
def test_phase(kw, phase) -> None:  # type: ignore[no-untyped-def]
    assert phase_of(obs(**kw))[0] == phase


def test_compute_status_has_the_conventional_conditions() -> None:
    status = compute_status({}, obs(requested="live", gate=CLOSED, effective=None), T0)
    assert status["phase"] == "Blocked" and status["observedGeneration"] == 3
    types = [c["type"] for c in status["conditions"]]
    assert types == ["ConfigValid", "LivePrerequisitesMet", "Ready"]
    live = get_condition(status, "LivePrerequisitesMet")
    assert live is not None
    assert (live["status"], live["reason"]) == ("False", "SecretsIncomplete")
    assert live["message"] == "Secret k lacks KRAKEN_API_SECRET"
    for cond in status["conditions"]:
        assert {"type", "status", "reason", "message", "observedGeneration",
                "lastTransitionTime"} <= cond.keys()


def test_invalid_config_keeps_the_running_mode() -> None:
    prev = compute_status({}, obs(), T0)
    bad = compute_status(prev, obs(config_errors=("risk.x: bad",)), T0)
    assert "effectiveMode" not in bad  # merge-patched: the previous value stays
    assert get_condition(bad, "ConfigValid") == {
        "type": "ConfigValid", "status": "False", "reason": "InvalidConfig",
        "message": "risk.x: bad", "observedGeneration": 3,
        "lastTransitionTime": "2026-01-01T00:00:00Z"}


def test_canary_since_is_kept_while_canary_runs() -> None:
    first = compute_status({}, obs(requested="canary", effective="canary"), T0)
    assert first["canarySince"] == "2026-01-01T00:00:00Z"
    later = compute_status(first, obs(requested="canary", effective="canary"),
                           T0 + timedelta(hours=1))
    assert later["canarySince"] == "2026-01-01T00:00:00Z"
    assert compute_status(later, obs(), T0)["canarySince"] is None


BLOCKED = {"blocked": {"reason": "RestartBudgetExhausted", "message": "restarts no more"}}


@pytest.mark.parametrize(("ready", "remediation", "want"), [
    # A spent restart budget says so, whether the bot was Ready or never got there.
    ((True, "Running"), BLOCKED, ("False", "RestartBudgetExhausted")),
    ((False, "Starting"), BLOCKED, ("False", "RestartBudgetExhausted")),
    ((True, "Running"), {}, ("True", "Running")),
    # A refused child is the first thing to fix: its message stays.
    ((False, "ChildRefused"), BLOCKED, ("False", "ChildRefused")),
])
def test_ready_names_a_spent_restart_budget(ready, remediation, want) -> None:  # type: ignore[no-untyped-def]
    conds = set_condition([], "Ready", ready[0], ready[1], "m", 1, T0)
    out = ready_block(conds, remediation, 1, T0)
    cond = next(c for c in out if c["type"] == "Ready")
    assert (cond["status"], cond["reason"]) == want
