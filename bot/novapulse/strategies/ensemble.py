"""Weighted vote of the strategies, with a hook for the ML model to adjust confidence."""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass

from novapulse.indicators import PairIndicators
from novapulse.models import Candle
from novapulse.strategies.base import NEUTRAL, Signal, Strategy, clamp01

log = logging.getLogger(__name__)

# How much of the confidence comes from the voters' own strength versus the share of
# all enabled weight that voted: one strong strategy alone can still clear a 0.55 bar,
# while agreement between several lifts confidence further.
STRENGTH_SHARE = 0.7
PARTICIPATION_SHARE = 1.0 - STRENGTH_SHARE


@dataclass(frozen=True, slots=True)
class Decision:
    direction: int
    confidence: float
    votes: tuple[Signal, ...]
    reason: str


NO_SIGNAL = Decision(NEUTRAL, 0.0, (), "no strategy signalled")

ConfidenceAdjuster = Callable[[Decision, PairIndicators], float]


class Ensemble:
    """Combines strategy signals into one decision.

    Each vote counts weight x strength for its side; the larger side wins (a tie is
    neutral). confidence = agreement x (0.7 x winners' mean strength + 0.3 x winners'
    share of the enabled weight), where agreement = |bull - bear| / (bull + bear).
    Disabled strategies, strategies of weight 0 and neutral signals do not vote."""

    def __init__(
        self,
        strategies: Sequence[Strategy],
        weights: Mapping[str, float] | None = None,
        confidence_adjuster: ConfidenceAdjuster | None = None,
    ) -> None:
        names = [s.name for s in strategies]
        if len(set(names)) != len(names):
            raise ValueError(f"strategy names must be unique: {names}")
        self.strategies = tuple(strategies)
        self.confidence_adjuster = confidence_adjuster
        self._weights: dict[str, float] = {}
        self._evaluators = tuple((s.name, s.evaluate) for s in self.strategies)
        self.update_weights(weights or {})

    @property
    def weights(self) -> dict[str, float]:
        return dict(self._weights)

    def update_weights(self, weights: Mapping[str, float]) -> None:
        """Weights default to 1.0 for strategies not named; negative weights are refused."""
        merged = {s.name: 1.0 for s in self.strategies}
        merged.update(self._weights)
        for name, weight in weights.items():
            if weight < 0.0:
                raise ValueError(f"weight of {name} must be >= 0, got {weight}")
            merged[name] = float(weight)
        self._weights = merged

    def evaluate_all(
        self, ind: PairIndicators, candle: Candle, disabled: Collection[str] = ()
    ) -> Decision:
        """Asks every enabled strategy (none before the indicators are ready) and decides."""
        if not ind.ready:
            return NO_SIGNAL
        signals = []
        for name, evaluate in self._evaluators:
            if disabled and name in disabled:
                continue
            signal = evaluate(ind, candle)
            if signal is not None:
                signals.append(signal)
        if not signals:
            return NO_SIGNAL
        decision = self.decide(signals, disabled)
        if decision.direction != NEUTRAL and self.confidence_adjuster is not None:
            return self._adjust(decision, ind)
        return decision

    def decide(self, signals: Iterable[Signal], disabled: Collection[str] = ()) -> Decision:
        weights = self._weights
        enabled_weight = sum(w for name, w in weights.items() if name not in disabled)
        bull = bear = bull_weight = bear_weight = 0.0
        votes: list[Signal] = []
        for signal in signals:
            weight = weights.get(signal.strategy, 0.0)
            if signal.direction == NEUTRAL or weight <= 0.0 or signal.strategy in disabled:
                continue
            votes.append(signal)
            if signal.direction > 0:
                bull += weight * signal.strength
                bull_weight += weight
            else:
                bear += weight * signal.strength
                bear_weight += weight
        if bull == bear:
            reason = "no strategy signalled" if not votes else "bullish and bearish votes cancel"
            return Decision(NEUTRAL, 0.0, tuple(votes), reason)
        direction = 1 if bull > bear else -1
        win_score, win_weight = (bull, bull_weight) if direction > 0 else (bear, bear_weight)
        agreement = abs(bull - bear) / (bull + bear)
        strength = win_score / win_weight
        participation = win_weight / enabled_weight if enabled_weight > 0.0 else 0.0
        confidence = clamp01(
            agreement * (STRENGTH_SHARE * strength + PARTICIPATION_SHARE * participation)
        )
        return Decision(direction, confidence, tuple(votes), _explain(direction, votes))

    def _adjust(self, decision: Decision, ind: PairIndicators) -> Decision:
        assert self.confidence_adjuster is not None
        try:
            adjusted = clamp01(float(self.confidence_adjuster(decision, ind)))
        except Exception as exc:  # the model is a soft dependency: never block a decision
            log.warning("confidence adjuster failed, keeping ensemble confidence: %s", exc)
            return decision
        if adjusted != adjusted:  # NaN from the model
            return decision
        return Decision(
            decision.direction, adjusted, decision.votes,
            f"{decision.reason}; model confidence {adjusted:.2f} (ensemble "
            f"{decision.confidence:.2f})",
        )


def _explain(direction: int, votes: Sequence[Signal]) -> str:
    side = "buy" if direction > 0 else "sell"
    winners = [v for v in votes if v.direction == direction]
    against = len(votes) - len(winners)
    parts = "; ".join(f"{v.strategy} ({v.strength:.2f}): {v.reason}" for v in winners)
    suffix = f"; {against} against" if against else ""
    return f"{side}: {parts}{suffix}"
