"""Per-strategy results, the runtime guardrail (runbook 9) and the weight auto-tuner.

Pure bookkeeping: time is always passed in, nothing is logged here. The caller logs each
`GuardrailEvent` (its `log_line()` starts with the message the runbook greps for).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from novapulse.config import AIConfig

DISABLED_MESSAGE = "Strategy auto-disabled by runtime guardrail"
REENABLED_MESSAGE = "Strategy re-enabled after guardrail cooldown"

# Profit factor reported when there are wins and no losses (keeps JSON finite).
PROFIT_FACTOR_CAP = 100.0
# Tuned weights stay within these multiples of the configured weight.
MIN_WEIGHT_FACTOR = 0.25
MAX_WEIGHT_FACTOR = 2.0
# Each new result moves the weight this fraction of the way to its target.
TUNE_SMOOTHING = 0.2
SNAPSHOT_VERSION = 1


@dataclass(frozen=True, slots=True)
class StrategyStats:
    """Lifetime `trades`/`wins`/`win_rate`/`profit_factor`; `recent_*` is the window the
    guardrail judges (emptied when it disables the strategy)."""

    trades: int
    wins: int
    win_rate: float
    profit_factor: float
    weight: float
    runtime_disabled: bool
    disabled_until: float | None
    recent_trades: int = 0
    recent_win_rate: float = 0.0
    recent_profit_factor: float = 0.0
    gross_profit: float = 0.0
    gross_loss: float = 0.0
    weight_reason: str = ""
    weight_changed_at: float | None = None


@dataclass(frozen=True, slots=True)
class WeightChange:
    """One move of the auto-tuner, with the numbers that made it."""

    strategy: str
    old: float
    new: float
    reason: str
    at: float

    def message(self) -> str:
        return f"Strategy weight {self.strategy} {self.old:.2f} -> {self.new:.2f}: {self.reason}"


@dataclass(frozen=True, slots=True)
class GuardrailEvent:
    strategy: str
    kind: Literal["disabled", "re_enabled"]
    message: str
    at: float
    until: float | None = None
    win_rate: float | None = None
    profit_factor: float | None = None
    trades: int | None = None

    def log_line(self) -> str:
        if self.kind == "re_enabled":
            return f"{self.message}: strategy={self.strategy}"
        return (
            f"{self.message}: strategy={self.strategy} win_rate={self.win_rate:.2f} "
            f"profit_factor={self.profit_factor:.2f} trades={self.trades} until={self.until:.0f}"
        )


def profit_factor(gross_profit: float, gross_loss: float) -> float:
    if gross_loss > 0.0:
        return min(gross_profit / gross_loss, PROFIT_FACTOR_CAP)
    return PROFIT_FACTOR_CAP if gross_profit > 0.0 else 0.0


def _window_stats(results: Iterable[float]) -> tuple[int, float, float]:
    """(trades, win rate, profit factor) of a run of pnls."""
    pnls = list(results)
    if not pnls:
        return 0, 0.0, 0.0
    wins = sum(1 for p in pnls if p > 0.0)
    gross_profit = sum(p for p in pnls if p > 0.0)
    gross_loss = -sum(p for p in pnls if p < 0.0)
    return len(pnls), wins / len(pnls), profit_factor(gross_profit, gross_loss)


class _Record:
    __slots__ = ("disabled_until", "gross_loss", "gross_profit", "recent", "trades", "weight",
                 "weight_changed_at", "weight_reason", "wins")

    def __init__(self, weight: float, window: int) -> None:
        self.trades = 0
        self.wins = 0
        self.gross_profit = 0.0
        self.gross_loss = 0.0
        self.recent: deque[float] = deque(maxlen=window)
        self.weight = weight
        self.weight_reason = "configured weight"
        self.weight_changed_at: float | None = None
        self.disabled_until: float | None = None


class StrategyBook:
    """Results per strategy, which strategies the guardrail has disabled, and their weights.

    Guardrail: once a strategy has `guardrail_min_trades` recent results and their win rate
    is below `guardrail_min_win_rate` or their profit factor below
    `guardrail_min_profit_factor`, `tick` disables it for `strategy_guardrails_disable_minutes`
    and forgets those results, so after the cooldown it is judged on fresh trades only.

    Auto-tune: after each result (with enough recent trades) the weight moves
    `TUNE_SMOOTHING` of the way toward configured weight x recent profit factor, kept within
    [0.25, 2.0] x configured weight. With auto-tune off, weights are the configured ones."""

    def __init__(
        self, names: Iterable[str], ai_config: AIConfig, recent_window: int | None = None
    ) -> None:
        self.config = ai_config
        self.recent_window = recent_window or max(20, 2 * ai_config.guardrail_min_trades)
        if self.recent_window < ai_config.guardrail_min_trades:
            raise ValueError("recent_window must hold at least guardrail_min_trades results")
        self._records: dict[str, _Record] = {}
        self._changes: list[WeightChange] = []
        for name in names:
            self._record(name)

    @property
    def names(self) -> list[str]:
        return list(self._records)

    def base_weight(self, name: str) -> float:
        return float(self.config.strategy_weights.get(name, 1.0))

    def _record(self, name: str) -> _Record:
        record = self._records.get(name)
        if record is None:
            record = _Record(self.base_weight(name), self.recent_window)
            self._records[name] = record
        return record

    def record_result(self, strategies: str | Iterable[str], pnl: float, now: float) -> None:
        """Attributes one closed trade's pnl to each strategy that voted for it."""
        names = [strategies] if isinstance(strategies, str) else list(strategies)
        for name in dict.fromkeys(names):
            record = self._record(name)
            record.trades += 1
            if pnl > 0.0:
                record.wins += 1
                record.gross_profit += pnl
            elif pnl < 0.0:
                record.gross_loss -= pnl
            record.recent.append(pnl)
            if self.config.auto_tune_enabled:
                self._tune(name, record, now)

    def _tune(self, name: str, record: _Record, now: float) -> None:
        trades, _, recent_pf = _window_stats(record.recent)
        if trades < self.config.guardrail_min_trades:
            return
        base = self.base_weight(name)
        low, high = MIN_WEIGHT_FACTOR * base, MAX_WEIGHT_FACTOR * base
        target = min(max(base * recent_pf, low), high)
        tuned = record.weight + TUNE_SMOOTHING * (target - record.weight)
        old = record.weight
        record.weight = min(max(tuned, low), high)
        if abs(record.weight - old) < 1e-9:
            return
        bound = " (floor 0.25x)" if target == low else " (cap 2x)" if target == high else ""
        pf = "no losses" if recent_pf >= PROFIT_FACTOR_CAP else f"{recent_pf:.2f}"
        reason = (f"recent profit factor {pf} over {trades} trades: target {target:.2f} = "
                  f"configured {base:.2f} x profit factor{bound}; moved "
                  f"{TUNE_SMOOTHING:.0%} of the way")
        record.weight_reason = reason
        record.weight_changed_at = now
        self._changes.append(WeightChange(name, old, record.weight, reason, now))

    def drain_weight_changes(self) -> list[WeightChange]:
        """The tuner's moves since the last call, oldest first."""
        changes, self._changes = self._changes, []
        return changes

    def weight(self, name: str) -> float:
        if not self.config.auto_tune_enabled:
            return self.base_weight(name)
        return self._record(name).weight

    def weights(self) -> dict[str, float]:
        return {name: self.weight(name) for name in self._records}

    def _is_disabled(self, record: _Record, now: float) -> bool:
        until = record.disabled_until
        return self.config.strategy_guardrails_enabled and until is not None and now < until

    def disabled(self, now: float) -> set[str]:
        """Strategies that must not vote at `now` (always empty with guardrails off)."""
        return {name for name, r in self._records.items() if self._is_disabled(r, now)}

    def next_reenable_at(self) -> float:
        """When the earliest guardrail cooldown ends (infinity when none runs)."""
        if not self.config.strategy_guardrails_enabled:
            return math.inf
        return min((r.disabled_until for r in self._records.values()
                    if r.disabled_until is not None), default=math.inf)

    def stats(self, name: str, now: float | None = None) -> StrategyStats:
        """`now` decides whether an expired cooldown still shows; None = until `tick` ends it."""
        record = self._record(name)
        if now is None:
            disabled = self.config.strategy_guardrails_enabled and record.disabled_until is not None
        else:
            disabled = self._is_disabled(record, now)
        recent_trades, recent_win_rate, recent_pf = _window_stats(record.recent)
        return StrategyStats(
            trades=record.trades,
            wins=record.wins,
            win_rate=record.wins / record.trades if record.trades else 0.0,
            profit_factor=profit_factor(record.gross_profit, record.gross_loss),
            weight=self.weight(name),
            runtime_disabled=disabled,
            disabled_until=record.disabled_until if disabled else None,
            recent_trades=recent_trades,
            recent_win_rate=recent_win_rate,
            recent_profit_factor=recent_pf,
            gross_profit=record.gross_profit,
            gross_loss=record.gross_loss,
            weight_reason=(record.weight_reason if self.config.auto_tune_enabled
                           else "configured weight (auto-tune off)"),
            weight_changed_at=record.weight_changed_at if self.config.auto_tune_enabled else None,
        )

    def tick(self, now: float) -> list[GuardrailEvent]:
        """Ends expired cooldowns and disables degrading strategies; returns what changed."""
        config = self.config
        if not config.strategy_guardrails_enabled:
            return []
        events: list[GuardrailEvent] = []
        for name, record in self._records.items():
            if record.disabled_until is not None:
                if now >= record.disabled_until:
                    record.disabled_until = None
                    events.append(GuardrailEvent(name, "re_enabled", REENABLED_MESSAGE, now))
                continue
            trades, win_rate, pf = _window_stats(record.recent)
            if trades < config.guardrail_min_trades:
                continue
            if win_rate < config.guardrail_min_win_rate or pf < config.guardrail_min_profit_factor:
                until = now + 60.0 * config.strategy_guardrails_disable_minutes
                record.disabled_until = until
                record.recent.clear()
                events.append(GuardrailEvent(
                    name, "disabled", DISABLED_MESSAGE, now, until, win_rate, pf, trades
                ))
        return events

    def snapshot(self) -> dict[str, Any]:
        """JSON-ready state, for `restore` after a restart."""
        return {
            "version": SNAPSHOT_VERSION,
            "strategies": {
                name: {
                    "trades": r.trades,
                    "wins": r.wins,
                    "gross_profit": r.gross_profit,
                    "gross_loss": r.gross_loss,
                    "recent": list(r.recent),
                    "weight": r.weight,
                    "disabled_until": r.disabled_until,
                    "weight_reason": r.weight_reason,
                    "weight_changed_at": r.weight_changed_at,
                }
                for name, r in self._records.items()
            },
        }

    def restore(self, snapshot: Mapping[str, Any]) -> None:
        """Loads a `snapshot()`; strategies missing from it keep their current state."""
        if snapshot.get("version") != SNAPSHOT_VERSION:
            raise ValueError(f"unknown strategy book snapshot version {snapshot.get('version')!r}")
        for name, data in snapshot["strategies"].items():
            record = self._record(name)
            record.trades = int(data["trades"])
            record.wins = int(data["wins"])
            record.gross_profit = float(data["gross_profit"])
            record.gross_loss = float(data["gross_loss"])
            record.recent.clear()
            record.recent.extend(float(p) for p in data["recent"])
            base = self.base_weight(name)
            weight = float(data["weight"])
            record.weight = min(max(weight, MIN_WEIGHT_FACTOR * base), MAX_WEIGHT_FACTOR * base)
            record.weight_reason = str(data.get("weight_reason", record.weight_reason))
            changed = data.get("weight_changed_at")
            record.weight_changed_at = None if changed is None else float(changed)
            until = data.get("disabled_until")
            record.disabled_until = None if until is None else float(until)
