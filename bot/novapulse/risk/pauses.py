"""Who holds trading paused, and why: one slot per party.

A manual pause, a risk rule, the feed's circuit breaker and the operator each hold their own
slot. Trading runs only when no slot is held; a party's resume lifts only its own slot, so the
operator lifting its feed pause can never undo a human's pause (runbook 3). An admin's resume
lifts every slot, and says which.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class PausedBy(enum.StrEnum):
    MANUAL = "manual"
    OPERATOR = "operator"
    RISK_RULE = "risk_rule"
    CIRCUIT_BREAKER = "circuit_breaker"


# The order status shows holders in: what a human must act on first.
PAUSE_PRIORITY = (PausedBy.MANUAL, PausedBy.RISK_RULE, PausedBy.CIRCUIT_BREAKER,
                  PausedBy.OPERATOR)


@dataclass(frozen=True, slots=True)
class PauseHold:
    by: PausedBy
    reason: str
    since: float


class Pauses:
    """The pause slots. `paused`, `paused_by`, `reason` and `since` describe the holder a human
    should look at first; `holds` lists them all."""

    __slots__ = ("_holds",)

    def __init__(self) -> None:
        self._holds: dict[PausedBy, PauseHold] = {}

    @property
    def paused(self) -> bool:
        return bool(self._holds)

    @property
    def holds(self) -> list[PauseHold]:
        return [self._holds[by] for by in PAUSE_PRIORITY if by in self._holds]

    @property
    def primary(self) -> PauseHold | None:
        for by in PAUSE_PRIORITY:
            hold = self._holds.get(by)
            if hold is not None:
                return hold
        return None

    @property
    def paused_by(self) -> PausedBy | None:
        hold = self.primary
        return None if hold is None else hold.by

    @property
    def reason(self) -> str:
        hold = self.primary
        return "" if hold is None else hold.reason

    @property
    def since(self) -> float | None:
        hold = self.primary
        return None if hold is None else hold.since

    def held_by(self, by: PausedBy) -> bool:
        return by in self._holds

    def hold(self, by: PausedBy, reason: str, since: float) -> bool:
        """Take `by`'s slot; False when that party already holds it (its first reason stays)."""
        if by in self._holds:
            return False
        self._holds[by] = PauseHold(by, reason, since)
        return True

    def lift(self, by: PausedBy | None) -> list[PauseHold]:
        """Lift `by`'s slot, or every slot when `by` is None; returns what was lifted. The
        operator also lifts the circuit breaker's pause: runbook 2's manual resume once the
        feed is back, automated (the breaker pauses again if the feed is still down). It never
        lifts a manual or a risk-rule pause."""
        if by is None:
            lifted = self.holds
            self._holds.clear()
            return lifted
        parties = (PausedBy.OPERATOR, PausedBy.CIRCUIT_BREAKER) if by is PausedBy.OPERATOR \
            else (by,)
        return [hold for party in parties if (hold := self._holds.pop(party, None)) is not None]

    def snapshot(self) -> list[dict[str, object]]:
        return [{"by": str(h.by), "reason": h.reason, "since": h.since} for h in self.holds]

    def restore(self, saved: list[dict[str, object]]) -> None:
        self._holds.clear()
        for item in saved:
            since = item.get("since")
            self.hold(PausedBy(str(item["by"])), str(item.get("reason", "")),
                      float(since) if isinstance(since, int | float) else 0.0)
