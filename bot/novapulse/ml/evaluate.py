"""Judging a model on candle files: AUC and calibration of its predictions on the trades the
files produce, and the backtest with vs without it acting. And the walk-forward that decides
whether a model earns its place: train on earlier data, judge on later data and on pairs it
never saw. Every backtest here uses `dataset.research_config` (span-ending risk pauses
relaxed) for both arms, so the two differ only by the model."""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from novapulse.config import Config
from novapulse.ml.confidence import ModelConfidence
from novapulse.ml.dataset import Run, collect, research_config, run, split_by_time
from novapulse.ml.features import FEATURE_NAMES
from novapulse.ml.predictor import Predictor
from novapulse.ml.retrain import clean, fit, judge, write_verified
from novapulse.models import Candle


def _arm(run_: Run) -> dict[str, Any]:
    s = run_.summary
    return {"trades": s.trades, "win_rate": s.win_rate, "profit_factor": s.profit_factor,
            "total_return_pct": s.total_return_pct, "max_drawdown_pct": s.max_drawdown_pct}


def backtest_with_model(config: Config, predictor: Predictor,
                        candles: Sequence[list[Candle]],
                        warmup: Sequence[list[Candle]] = ()) -> Run:
    cfg = research_config(config)
    model = ModelConfidence(cfg.ml.model_copy(update={"enabled": True}),
                            cfg.risk.min_confidence, learner=False)
    model.force_mode = "applied"
    model.use(predictor)
    return run(cfg, candles, model, warmup)


def evaluate(config: Config, predictor: Predictor, candles: Sequence[list[Candle]],
             warmup: Sequence[list[Candle]] = (), baseline: Run | None = None
             ) -> dict[str, Any]:
    """The model's predictions on the trades of `candles`, and both backtests."""
    without = baseline or collect(config, candles, warmup)
    x, returns, _ = clean([(s.features, s.label) for s in without.samples])
    p = predictor.predict_many(x) if len(x) else np.zeros(0)
    with_model = backtest_with_model(config, predictor, candles, warmup)
    return {
        "predictions": judge(p, x, returns, float(predictor.card.get("base_rate", 0.5)),
                             config.risk.min_confidence) if len(x) else {"n": 0},
        "backtest_without_model": _arm(without),
        "backtest_with_model": _arm(with_model),
    }


def _train_on(config: Config, samples: Run, workdir: Path, name: str,
              hidden: int) -> tuple[Predictor | None, dict[str, Any]]:
    ml = config.ml.model_copy(update={"hidden_units": hidden, "min_samples": 20})
    try:
        network, card, x_hold, _ = fit([(s.features, s.label) for s in samples.samples], ml,
                                       config.risk.min_confidence, version=1)
    except ValueError as exc:
        return None, {"error": str(exc)}
    predictor = write_verified(network, card, workdir / f"{name}.tflite", x_hold)
    return predictor, {"samples": card["samples"], "holdout_auc": card["validation"]["auc"],
                       "mode": card["mode"], "mode_reason": card["mode_reason"]}


def walk_forward(config: Config, candles: Sequence[list[Candle]], *, fraction: float = 0.6,
                 hidden: int = 0) -> dict[str, Any]:
    """Time split (train before the cut, judge after it, indicators warmed on the earlier
    part) and leave-one-pair-out (train on the other files, judge on the one left out)."""
    result: dict[str, Any] = {"features": len(FEATURE_NAMES), "hidden_units": hidden}
    with tempfile.TemporaryDirectory(prefix="novapulse-wf-") as tmp:
        workdir = Path(tmp)
        early, late = split_by_time(candles, fraction)
        predictor, trained = _train_on(config, collect(config, early), workdir, "time", hidden)
        later: dict[str, Any] = {"train_fraction": fraction, "trained": trained}
        if predictor is not None:
            later.update(evaluate(config, predictor, late, warmup=early))
        result["time_split"] = later
        pairs = []
        for i, held_out in enumerate(candles):
            others = [c for j, c in enumerate(candles) if j != i]
            predictor, trained = _train_on(config, collect(config, others), workdir,
                                           f"pair{i}", hidden)
            entry: dict[str, Any] = {"pair": held_out[0].pair if held_out else "?",
                                     "trained": trained}
            if predictor is not None:
                entry.update(evaluate(config, predictor, [held_out]))
            pairs.append(entry)
        result["pair_holdout"] = pairs
    return result
