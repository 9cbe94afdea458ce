"""The model in a live run: loads it at start (never fatal), attaches it to the engine,
stores features and labels, and retrains every `ml.retrain_interval_hours` (or when asked,
`POST /api/v1/ml/retrain`). A background task of the runner: if it ends, trading goes on."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from novapulse.config import Config
from novapulse.engine import Engine
from novapulse.ml.confidence import ModelConfidence
from novapulse.ml.predictor import Predictor
from novapulse.ml.retrain import Outcome, retrain

log = logging.getLogger("novapulse.ml")
FLUSH_SECONDS = 5.0
TRAINING_ROWS = 100_000


class FeatureStore(Protocol):
    async def record_ml_features(self, trade_id: str, features: Any,
                                 label: float | None = None) -> None: ...

    async def labelled_ml_features(self, limit: int = ...
                                   ) -> list[tuple[str, dict[str, float], float]]: ...


class MLRuntime:
    def __init__(self, config: Config, engine: Engine,
                 store: Callable[[], FeatureStore | None]) -> None:
        self.config = config
        self.model = ModelConfidence(config.ml, config.risk.min_confidence)
        self._store = store
        self._lock = asyncio.Lock()
        self.last_retrain: dict[str, Any] | None = None
        self.store_errors = 0
        if config.ml.enabled:
            self.model.load()
            engine.confidence_model = self.model

    def status(self) -> dict[str, Any]:
        return {**self.model.status(), "last_retrain": self.last_retrain,
                "store_errors": self.store_errors}

    async def run(self) -> None:
        if not self.config.ml.enabled:
            return
        interval = self.config.ml.retrain_interval_hours * 3600.0
        next_retrain = time.monotonic() + interval
        while True:
            await asyncio.sleep(FLUSH_SECONDS)
            await self.flush()
            if time.monotonic() >= next_retrain:
                next_retrain = time.monotonic() + interval
                await self.retrain_now("schedule")

    async def flush(self) -> None:
        """Features at entry, labels at close, into `ml_features`; kept for the next try when
        the store fails."""
        store = self._store()
        rows = self.model.drain()
        if store is None or not rows:
            self.model.outbox[:0] = rows
            return
        for i, (trade_id, features, label) in enumerate(rows):
            try:
                await store.record_ml_features(trade_id, features, label)
            except Exception as exc:
                self.store_errors += 1
                self.model.outbox[:0] = rows[i:]
                log.warning("could not store ML features of %s: %s", trade_id, exc)
                return

    async def retrain_now(self, trigger: str = "manual") -> dict[str, Any]:
        """Retrain from the stored labelled samples; installs only a model no worse than the
        current one (see retrain.py). Never raises."""
        async with self._lock:
            started = time.time()
            try:
                await self.flush()
                store = self._store()
                if store is None:
                    raise RuntimeError("the store is not connected")
                rows = await store.labelled_ml_features(TRAINING_ROWS)
                samples = [(features, label) for _, features, label in rows]
                outcome: Outcome = await asyncio.to_thread(
                    retrain, samples, self.config.ml, self.config.risk.min_confidence,
                    self.model.predictor, Path(self.config.ml.model_path))
                if outcome.accepted:
                    predictor = await asyncio.to_thread(Predictor, self.config.ml.model_path)
                    self.model.use(predictor)
                result = {"accepted": outcome.accepted, "reason": outcome.reason,
                          "samples": len(samples)}
            except Exception as exc:
                log.exception("model retraining failed")
                result = {"accepted": False, "reason": f"retraining failed: {exc}"}
            result.update(trigger=trigger, at=started,
                          seconds=round(time.time() - started, 3))
            self.last_retrain = result
            log.info("model retraining (%s): %s", trigger, result["reason"])
            return result
