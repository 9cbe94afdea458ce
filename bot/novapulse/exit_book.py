"""Exits in progress: which attempt, why, how often it failed, and what has filled so far."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class ExitBook:
    attempt: dict[str, int] = field(default_factory=dict)
    reason: dict[str, str] = field(default_factory=dict)
    failures: dict[str, int] = field(default_factory=dict)
    # trade id -> [quantity sold, value sold (price x quantity), fees]
    progress: dict[str, list[float]] = field(default_factory=dict)
    last_error: dict[str, str] = field(default_factory=dict)

    def failed(self, trade_id: str) -> int:
        """Count one more failed exit order; returns how many have failed."""
        self.failures[trade_id] = self.failures.get(trade_id, 0) + 1
        return self.failures[trade_id]

    def record_fill(self, trade_id: str, quantity: float, price: float, fee: float) -> None:
        sold = self.progress.setdefault(trade_id, [0.0, 0.0, 0.0])
        sold[0] += quantity
        sold[1] += price * quantity
        sold[2] += fee

    def sold(self, trade_id: str) -> tuple[float, float, float]:
        sold = self.progress.get(trade_id)
        return (0.0, 0.0, 0.0) if sold is None else (sold[0], sold[1], sold[2])

    def finish(self, trade_id: str) -> tuple[float, float, float]:
        """(quantity, value, fees) of a completed exit; forgets the trade."""
        sold = self.sold(trade_id)
        for book in (self.attempt, self.failures, self.progress, self.last_error):
            book.pop(trade_id, None)
        return sold

    def reset(self, trade_id: str) -> None:
        """An admin sends the exit again: failures start over."""
        self.failures.pop(trade_id, None)

    def snapshot(self) -> dict[str, Any]:
        return {"attempt": dict(self.attempt), "reason": dict(self.reason),
                "failures": dict(self.failures),
                "progress": {k: list(v) for k, v in self.progress.items()},
                "last_error": dict(self.last_error)}

    @classmethod
    def restore(cls, saved: dict[str, Any]) -> ExitBook:
        return cls({k: int(v) for k, v in saved.get("attempt", {}).items()},
                   {k: str(v) for k, v in saved.get("reason", {}).items()},
                   {k: int(v) for k, v in saved.get("failures", {}).items()},
                   {k: [float(x) for x in v] for k, v in saved.get("progress", {}).items()},
                   {k: str(v) for k, v in saved.get("last_error", {}).items()})
