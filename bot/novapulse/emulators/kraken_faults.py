"""Fault injection for the Kraken emulator, per endpoint and per call.

A spec names calls by their number on one endpoint since the emulator started (the first
call is 1): `AddOrder:timeout_after_accept@2,AddOrder:insufficient_funds@5,Balance:5xx@1-3`.
At run time `FaultPlan.inject` arms the next calls instead.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from enum import StrEnum

from novapulse.emulators import kraken_errors as errors


class Fault(StrEnum):
    INVALID_KEY = "invalid_key"
    INVALID_SIGNATURE = "invalid_signature"
    INVALID_NONCE = "invalid_nonce"
    INSUFFICIENT_FUNDS = "insufficient_funds"
    INVALID_VOLUME = "invalid_volume"
    INVALID_PRICE = "invalid_price"
    ORDER_MINIMUM = "order_minimum"
    RATE_LIMIT = "rate_limit"
    SERVER_ERROR = "5xx"
    # The request is never processed and never answered: the client times out.
    TIMEOUT_BEFORE_ACCEPT = "timeout_before_accept"
    # The request is processed (an order is placed and fills), then never answered.
    TIMEOUT_AFTER_ACCEPT = "timeout_after_accept"
    # The request is processed, then the connection is closed without an answer.
    DROP_AFTER_ACCEPT = "drop_after_accept"


# What Kraken answers for each fault that is an error response.
FAULT_ERRORS: dict[Fault, str] = {
    Fault.INVALID_KEY: errors.INVALID_KEY,
    Fault.INVALID_SIGNATURE: errors.INVALID_SIGNATURE,
    Fault.INVALID_NONCE: errors.INVALID_NONCE,
    Fault.INSUFFICIENT_FUNDS: errors.INSUFFICIENT_FUNDS,
    Fault.INVALID_VOLUME: errors.invalid_argument("volume"),
    Fault.INVALID_PRICE: errors.invalid_argument("price"),
    Fault.ORDER_MINIMUM: errors.ORDER_MINIMUM,
    Fault.RATE_LIMIT: errors.RATE_LIMIT,
    Fault.SERVER_ERROR: errors.UNAVAILABLE,
}
ORDER_FAULTS = frozenset(
    {Fault.INSUFFICIENT_FUNDS, Fault.INVALID_VOLUME, Fault.INVALID_PRICE, Fault.ORDER_MINIMUM}
)
AUTH_FAULTS = frozenset({Fault.INVALID_KEY, Fault.INVALID_SIGNATURE, Fault.INVALID_NONCE})
ORDER_ENDPOINTS = frozenset({"AddOrder"})


class FaultSpecError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class ScheduledFault:
    endpoint: str
    call: int
    fault: Fault

    def as_dict(self) -> dict[str, str | int]:
        return {"endpoint": self.endpoint, "call": self.call, "fault": self.fault.value}


class FaultPlan:
    """Which call of which endpoint fails how; counts the calls as they arrive."""

    def __init__(self, public: Collection[str], private: Collection[str]) -> None:
        self._public = frozenset(public)
        self._private = frozenset(private)
        self._calls: dict[str, int] = {}
        self._armed: dict[tuple[str, int], Fault] = {}
        self.fired: list[ScheduledFault] = []

    # --- arming -----------------------------------------------------------------------

    def schedule(self, spec: str | None) -> list[ScheduledFault]:
        """Arm every fault of a spec string (call numbers count from the emulator's start)."""
        faults = self.parse(spec)
        for item in faults:
            self._armed[(item.endpoint, item.call)] = item.fault
        return faults

    def inject(self, endpoint: str, fault: str, times: int = 1) -> list[ScheduledFault]:
        """Arm the next `times` calls of `endpoint`."""
        if times < 1:
            raise FaultSpecError(f"times must be at least 1, not {times}")
        kind = self._check(endpoint, fault)
        first = self._calls.get(endpoint, 0) + 1
        armed = [ScheduledFault(endpoint, call, kind) for call in range(first, first + times)]
        for item in armed:
            self._armed[(endpoint, item.call)] = kind
        return armed

    def clear(self) -> None:
        self._armed.clear()

    def parse(self, spec: str | None) -> list[ScheduledFault]:
        faults: list[ScheduledFault] = []
        seen: set[tuple[str, int]] = set()
        for raw in (spec or "").split(","):
            item = raw.strip()
            if not item:
                continue
            target, at, calls = item.partition("@")
            endpoint, colon, fault = target.partition(":")
            if not at or not colon:
                raise FaultSpecError(
                    f"bad fault {item!r}: expected ENDPOINT:FAULT@CALL or ENDPOINT:FAULT@FIRST-LAST"
                )
            kind = self._check(endpoint, fault)
            for call in _call_range(item, calls):
                if (endpoint, call) in seen:
                    raise FaultSpecError(f"bad fault {item!r}: call {call} of {endpoint} "
                                         "already has a fault")
                seen.add((endpoint, call))
                faults.append(ScheduledFault(endpoint, call, kind))
        return faults

    def _check(self, endpoint: str, fault: str) -> Fault:
        known = self._public | self._private
        if endpoint not in known:
            names = ", ".join(sorted(known))
            raise FaultSpecError(f"unknown endpoint {endpoint!r}; one of {names}")
        try:
            kind = Fault(fault)
        except ValueError:
            names = ", ".join(f.value for f in Fault)
            raise FaultSpecError(f"unknown fault {fault!r}; one of {names}") from None
        if kind in ORDER_FAULTS and endpoint not in ORDER_ENDPOINTS:
            raise FaultSpecError(f"{kind.value} applies to AddOrder only, not {endpoint}")
        if kind in AUTH_FAULTS and endpoint not in self._private:
            raise FaultSpecError(f"{kind.value} applies to private endpoints only, not {endpoint}")
        return kind

    # --- serving ----------------------------------------------------------------------

    def on_call(self, endpoint: str) -> Fault | None:
        """Count one call of `endpoint`; the fault armed for it, if any (used up)."""
        call = self._calls.get(endpoint, 0) + 1
        self._calls[endpoint] = call
        fault = self._armed.pop((endpoint, call), None)
        if fault is not None:
            self.fired.append(ScheduledFault(endpoint, call, fault))
        return fault

    def calls(self, endpoint: str) -> int:
        return self._calls.get(endpoint, 0)

    def pending(self) -> list[ScheduledFault]:
        return [ScheduledFault(e, c, f) for (e, c), f in sorted(self._armed.items())]

    def report(self) -> dict[str, object]:
        return {
            "calls": dict(sorted(self._calls.items())),
            "pending": [f.as_dict() for f in self.pending()],
            "fired": [f.as_dict() for f in self.fired],
        }


def _call_range(item: str, calls: str) -> range:
    first_text, dash, last_text = calls.partition("-")
    try:
        first = int(first_text)
        last = int(last_text) if dash else first
    except ValueError:
        raise FaultSpecError(f"bad fault {item!r}: call numbers must be integers") from None
    if first < 1 or last < first:
        raise FaultSpecError(f"bad fault {item!r}: calls count from 1 and FIRST <= LAST")
    return range(first, last + 1)
