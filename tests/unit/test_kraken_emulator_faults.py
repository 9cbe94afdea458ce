"""Fault specs and per-call fault plans of the Kraken emulator."""

from __future__ import annotations

import pytest

from novapulse.emulators.kraken_faults import Fault, FaultPlan, FaultSpecError, ScheduledFault

PUBLIC = ("Time", "OHLC")
PRIVATE = ("Balance", "AddOrder")


def _plan() -> FaultPlan:
    return FaultPlan(PUBLIC, PRIVATE)


def _calls(plan: FaultPlan, endpoint: str, count: int) -> list[Fault | None]:
    return [plan.on_call(endpoint) for _ in range(count)]


def test_a_spec_names_calls_of_each_endpoint() -> None:
    plan = _plan()
    plan.schedule("AddOrder:timeout_after_accept@2, AddOrder:insufficient_funds@5,Balance:5xx@1")
    assert _calls(plan, "AddOrder", 6) == [
        None, Fault.TIMEOUT_AFTER_ACCEPT, None, None, Fault.INSUFFICIENT_FUNDS, None]
    assert _calls(plan, "Balance", 2) == [Fault.SERVER_ERROR, None]


def test_a_range_fails_every_call_in_it() -> None:
    plan = _plan()
    plan.schedule("OHLC:rate_limit@2-4")
    assert _calls(plan, "OHLC", 5) == [None, Fault.RATE_LIMIT, Fault.RATE_LIMIT,
                                       Fault.RATE_LIMIT, None]


def test_inject_arms_the_next_calls_from_now() -> None:
    plan = _plan()
    _calls(plan, "AddOrder", 3)
    armed = plan.inject("AddOrder", "drop_after_accept", times=2)
    assert armed == [ScheduledFault("AddOrder", 4, Fault.DROP_AFTER_ACCEPT),
                     ScheduledFault("AddOrder", 5, Fault.DROP_AFTER_ACCEPT)]
    assert _calls(plan, "AddOrder", 3) == [Fault.DROP_AFTER_ACCEPT, Fault.DROP_AFTER_ACCEPT, None]
    assert [f.call for f in plan.fired] == [4, 5]


def test_report_counts_calls_and_lists_pending_and_fired_faults() -> None:
    plan = _plan()
    plan.schedule("Balance:invalid_key@1,Balance:5xx@3")
    _calls(plan, "Balance", 2)
    assert plan.report() == {
        "calls": {"Balance": 2},
        "pending": [{"endpoint": "Balance", "call": 3, "fault": "5xx"}],
        "fired": [{"endpoint": "Balance", "call": 1, "fault": "invalid_key"}],
    }
    plan.clear()
    assert plan.pending() == []


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("AddOrder:5xx", "expected ENDPOINT:FAULT@CALL"),
        ("5xx@1", "expected ENDPOINT:FAULT@CALL"),
        ("Withdraw:5xx@1", "unknown endpoint 'Withdraw'"),
        ("AddOrder:explode@1", "unknown fault 'explode'"),
        ("Balance:insufficient_funds@1", "applies to AddOrder only"),
        ("OHLC:invalid_key@1", "applies to private endpoints only"),
        ("AddOrder:5xx@x", "must be integers"),
        ("AddOrder:5xx@0", "calls count from 1"),
        ("AddOrder:5xx@4-2", "FIRST <= LAST"),
        ("AddOrder:5xx@2,AddOrder:rate_limit@1-3", "call 2 of AddOrder already has a fault"),
    ],
)
def test_a_bad_spec_is_refused_with_the_reason(spec: str, message: str) -> None:
    with pytest.raises(FaultSpecError, match=message):
        _plan().schedule(spec)


def test_a_refused_spec_arms_nothing() -> None:
    plan = _plan()
    with pytest.raises(FaultSpecError):
        plan.schedule("Balance:5xx@1,Balance:nope@2")
    assert plan.pending() == []


def test_inject_refuses_zero_times() -> None:
    with pytest.raises(FaultSpecError, match="at least 1"):
        _plan().inject("Balance", "5xx", times=0)
