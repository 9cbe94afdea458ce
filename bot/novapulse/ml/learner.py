"""The continuous learner: one online gradient step per closed trade, on a copy of the
current model's weights (standardised space, so a step means the same for every feature).

It scores itself prequentially — each sample is predicted *before* it is learned — next to
the frozen model on the same samples, so its progress is measured, never assumed. It never
changes the model that trades: its weights are offered to retraining as one more candidate,
judged on held-out samples like any other (`retrain.py`). A bad sample is skipped with a log
line; a failure logs "Continuous learner update failed" and the learner starts again from the
current model on the next close (runbook 8)."""

from __future__ import annotations

import copy
import logging
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from novapulse.ml import LEARNER_FAILED
from novapulse.ml.features import vector
from novapulse.ml.model import Classifier

log = logging.getLogger("novapulse.ml.learner")
EPS = 1e-12


def _logloss(p: float, y: float) -> float:
    return -math.log(p + EPS) if y > 0.5 else -math.log(1.0 - p + EPS)


@dataclass(slots=True)
class LearnerStats:
    updates: int = 0
    skipped: int = 0
    failures: int = 0
    reinitialised: int = 0
    learner_logloss: float = 0.0  # sums; divided by updates when shown
    frozen_logloss: float = 0.0
    last_error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        n = max(self.updates, 1)
        return {"updates": self.updates, "skipped": self.skipped, "failures": self.failures,
                "reinitialised": self.reinitialised,
                "prequential_logloss": round(self.learner_logloss / n, 5) if self.updates
                else None,
                "frozen_logloss": round(self.frozen_logloss / n, 5) if self.updates else None,
                "last_error": self.last_error}


class ContinuousLearner:
    def __init__(self, source: Callable[[], Classifier | None], lr: float = 0.01) -> None:
        """`source` gives the current model (None while there is none to learn from)."""
        self._source = source
        self.lr = lr
        self.model: Classifier | None = None
        self._frozen: Classifier | None = None
        self.stats = LearnerStats()

    def reset(self) -> None:
        """Start again from the current model (after a retrain swapped it, or a failure)."""
        self.model = None

    def update(self, features: Mapping[str, float], label: float) -> bool:
        """Learn one closed trade (label > 0 = a win). False when skipped or failed."""
        try:
            row = vector(features)
            if not math.isfinite(label):
                raise ValueError(f"label not finite: {label}")
        except ValueError as exc:
            self.stats.skipped += 1
            log.warning("Continuous learner skipped a bad sample: %s", exc)
            return False
        try:
            return self._update(row, label)
        except Exception as exc:
            self.stats.failures += 1
            self.stats.last_error = f"{type(exc).__name__}: {exc}"
            self.model = None  # reinitialised from the current model on the next close
            log.exception(LEARNER_FAILED)
            return False

    def _update(self, row: np.ndarray, label: float) -> bool:
        if self.model is None:
            current = self._source()
            if current is None:
                return False
            self.model = copy.deepcopy(current)
            self._frozen = current
            self.stats.reinitialised += 1
        x = row[None, :]
        y = np.array([1.0 if label > 0 else 0.0])
        p_learner = float(self.model.predict(x)[0])
        assert self._frozen is not None
        p_frozen = float(self._frozen.predict(x)[0])
        _, grads = self.model.gradients(x, y)
        self.model.step(grads, self.lr)
        if not all(np.all(np.isfinite(la.weights)) for la in self.model.layers):
            raise FloatingPointError("weights diverged to NaN/Inf")
        self.stats.updates += 1
        self.stats.learner_logloss += _logloss(p_learner, y[0])
        self.stats.frozen_logloss += _logloss(p_frozen, y[0])
        return True
