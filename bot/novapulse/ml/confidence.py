"""The engine's confidence model: features of each entry decision, the predictor's P(win),
and what the model is allowed to do with it.

- applied: an entry's confidence becomes `confidence × min(1, P(win) / base rate)`, the base
  rate being the win rate the model was trained on. The model can only lower confidence
  (and so veto an entry at the `min_confidence` gate): it has never seen the outcome of a
  signal the ensemble turned down, so it has no business raising one.
- shadow: P(win) is computed, logged and stored with the features, never applied.

Only decisions that would reach the gates (a buy for a pair with no position, confidence at
least `min_confidence`) are scored. Features and labels wait in `outbox` for the owner to
store (the engine does no I/O)."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from novapulse.config import MLConfig
from novapulse.indicators import PairIndicators
from novapulse.ml import PREDICTOR_FAILED
from novapulse.ml.features import FEATURE_NAMES, extract
from novapulse.ml.learner import ContinuousLearner
from novapulse.ml.model import Classifier
from novapulse.ml.predictor import Predictor, PredictorError
from novapulse.models import Candle, Trade
from novapulse.strategies.ensemble import Decision

log = logging.getLogger("novapulse.ml")
State = Literal["ok", "shadow", "failed", "disabled"]
PREDICTION_KEY = "model_p"  # stored beside the features, for judging a shadow model later


def trade_return(trade: Trade) -> float | None:
    """The label: net PnL as a fraction of what the entry cost (> 0 is a win)."""
    cost = trade.entry_price * trade.quantity
    if trade.pnl is None or not cost > 0:
        return None
    value = trade.pnl / cost
    return value if math.isfinite(value) else None


@dataclass(slots=True)
class Counters:
    scored: int = 0
    applied: int = 0
    lowered: int = 0
    bad_features: int = 0
    labelled: int = 0


class ModelConfidence:
    def __init__(self, config: MLConfig, min_confidence: float,
                 learner: bool = True) -> None:
        self.config = config
        self.min_confidence = min_confidence
        self.predictor: Predictor | None = None
        self.classifier: Classifier | None = None
        self.state: State = "disabled"
        self.reason = "ml.enabled is false" if not config.enabled else "no model loaded yet"
        self.force_mode: Literal["applied", "shadow"] | None = None
        self.pending: dict[str, tuple[dict[str, float], float | None]] = {}
        self.open: dict[str, dict[str, float]] = {}
        self.outbox: list[tuple[str, dict[str, float], float | None]] = []
        self.counters = Counters()
        self.learner = ContinuousLearner(lambda: self.classifier,
                                         config.learning_rate) if learner else None

    # --- the model ----------------------------------------------------------------------
    @property
    def applied(self) -> bool:
        return self.predictor is not None and self.state == "ok"

    def load(self, path: str | None = None) -> bool:
        """Load (or reload) the model file; on failure trade without it and say why."""
        if not self.config.enabled:
            self.predictor, self.state, self.reason = None, "disabled", "ml.enabled is false"
            return False
        target = path or self.config.model_path
        try:
            predictor = Predictor(target)
        except PredictorError as exc:
            self._failed(str(exc))
            return False
        self.use(predictor)
        return True

    def use(self, predictor: Predictor) -> None:
        card = predictor.card
        self.predictor = predictor
        self.classifier = Classifier.from_network(predictor.network)
        if self.learner is not None:
            self.learner.reset()
        mode = self.force_mode or ("shadow" if self.config.mode == "shadow" else
                                   card.get("mode", "shadow"))
        if mode == "applied":
            self.state, self.reason = "ok", "applied: its validation says it helps"
        else:
            self.state = "shadow"
            why = card.get("mode_reason", "its validation does not show it helps")
            self.reason = ("shadow: ml.mode is shadow" if self.config.mode == "shadow" else
                           f"shadow: {why}")
        log.info("ML model v%s loaded from %s (%s, %s)", predictor.version, predictor.path,
                 predictor.runtime, self.reason)

    def _failed(self, reason: str) -> None:
        self.predictor = None
        self.state, self.reason = "failed", reason
        log.error("%s: %s — trading on without AI confidence adjustments", PREDICTOR_FAILED,
                  reason)

    # --- the engine's hooks ---------------------------------------------------------------
    def adjust(self, decision: Decision, ind: PairIndicators, candle: Candle) -> Decision:
        if decision.confidence < self.min_confidence or not self.config.enabled:
            return decision
        features = extract(decision, ind, candle)
        if features is None:
            self.counters.bad_features += 1
            log.warning("ML features of %s not finite: sample skipped, decision unchanged",
                        candle.pair)
            return decision
        p = None
        predictor = self.predictor
        if predictor is not None:
            try:
                p = predictor.predict(np.fromiter(features.values(), np.float64,
                                                  len(FEATURE_NAMES)))
                if not 0.0 <= p <= 1.0:
                    raise ValueError(f"P(win) {p} outside 0..1")
            except Exception as exc:
                self._failed(f"prediction error: {type(exc).__name__}: {exc}")
                p = None
        self.pending[candle.pair] = (features, p)
        if p is None:
            return decision
        self.counters.scored += 1
        if not self.applied:
            return decision
        assert predictor is not None
        base = float(predictor.card.get("base_rate", 0.5)) or 0.5
        factor = min(1.0, p / base)
        self.counters.applied += 1
        if factor >= 1.0:
            return decision
        self.counters.lowered += 1
        adjusted = decision.confidence * factor
        return Decision(decision.direction, adjusted, decision.votes,
                        f"{decision.reason}; model P(win) {p:.2f} < base {base:.2f}: "
                        f"confidence {decision.confidence:.2f} → {adjusted:.2f}")

    def entered(self, trade: Trade) -> None:
        features, p = self.pending.pop(trade.pair, (None, None))
        if features is None:
            return
        stored = dict(features)
        if p is not None:
            stored[PREDICTION_KEY] = p
        self.open[trade.trade_id] = stored
        self.outbox.append((trade.trade_id, stored, None))

    def closed(self, trade: Trade) -> None:
        features = self.open.pop(trade.trade_id, None)
        label = trade_return(trade)
        if features is None or label is None:
            return
        self.counters.labelled += 1
        self.outbox.append((trade.trade_id, features, label))
        if self.learner is not None:
            self.learner.update(features, label)

    def drain(self) -> list[tuple[str, dict[str, float], float | None]]:
        rows, self.outbox = self.outbox, []
        return rows

    # --- status -------------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        card = self.predictor.card if self.predictor is not None else {}
        validation = card.get("validation", {})
        return {
            "state": self.state,
            "reason": self.reason,
            "mode": None if self.predictor is None else (
                "applied" if self.state == "ok" else "shadow"),
            "version": card.get("version"),
            "trained_at": card.get("trained_at"),
            "samples": card.get("samples"),
            "validation_score": validation.get("auc"),
            "validation": validation,
            "runtime": self.predictor.runtime if self.predictor is not None else None,
            "predictions": self.counters.scored,
            "confidence_lowered": self.counters.lowered,
            "features_skipped": self.counters.bad_features,
            "learner": self.learner.stats.as_dict() if self.learner is not None else None,
        }
