"""Training and retraining: fit on the older samples, judge on the newest (held out), and
install the result only when it is no worse than the model in use on the same held-out
samples. The new model is written beside the old as `<stem>.v<N>.tflite`, loaded back through
LiteRT and compared with numpy before it is copied over `model_path` with an atomic rename:
a reader sees the old file or the new one, never half of either.

Whether a model may act (mode `applied`) or only watch (`shadow`) is decided here, from its
held-out samples: AUC at least `ml.min_auc`, and the trades it would have kept (confidence ×
min(1, P/base) still at least `min_confidence`) returned more on average than all of them."""

from __future__ import annotations

import datetime as dt
import math
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from novapulse.config import MLConfig
from novapulse.ml.features import FEATURE_NAMES, FEATURE_VERSION, FloatArray, vector
from novapulse.ml.model import Network, auc, brier, calibration, train
from novapulse.ml.predictor import Predictor, PredictorError
from novapulse.ml.tflite_writer import network_to_tflite

LITERT_TOLERANCE = 1e-6


@dataclass(frozen=True, slots=True)
class Outcome:
    accepted: bool
    reason: str
    card: dict[str, Any] | None = None
    path: Path | None = None


def clean(samples: Sequence[tuple[dict[str, float], float]]
          ) -> tuple[FloatArray, FloatArray, int]:
    """Rows and labels of the usable samples, and how many were skipped (NaN/Inf, missing)."""
    rows, labels, skipped = [], [], 0
    for features, label in samples:
        try:
            row = vector(features)
        except ValueError:
            skipped += 1
            continue
        if label is None or not math.isfinite(label):
            skipped += 1
            continue
        rows.append(row)
        labels.append(float(label))
    x = np.array(rows).reshape(-1, len(FEATURE_NAMES))
    return x, np.array(labels, dtype=np.float64), skipped


def judge(p: FloatArray, x: FloatArray, returns: FloatArray, base_rate: float,
          min_confidence: float) -> dict[str, Any]:
    """What a model's predictions would have done on these samples."""
    confidence = x[:, FEATURE_NAMES.index("confidence")]
    wins = (returns > 0).astype(np.float64)
    kept = confidence * np.minimum(1.0, p / base_rate) >= min_confidence
    mean_all = float(returns.mean()) if len(returns) else math.nan
    mean_kept = float(returns[kept].mean()) if kept.any() else math.nan
    return {
        "n": len(returns), "auc": _round(auc(p, wins)), "brier": _round(brier(p, wins)),
        "win_rate": _round(float((returns > 0).mean())) if len(returns) else None,
        "kept": int(kept.sum()), "mean_return_all": _round(mean_all),
        "mean_return_kept": _round(mean_kept),
        "sum_return_all": _round(float(returns.sum())),
        "sum_return_kept": _round(float(returns[kept].sum())),
        "calibration": calibration(p, wins),
    }


def _round(value: float) -> float | None:
    return None if not math.isfinite(value) else round(value, 6)


def decide_mode(validation: dict[str, Any], config: MLConfig) -> tuple[str, str]:
    score = validation.get("auc")
    if score is None:
        return "shadow", "held-out samples hold one class only: AUC undefined"
    if score < config.min_auc:
        return "shadow", f"held-out AUC {score:.3f} < ml.min_auc {config.min_auc:.2f}"
    kept, everyone = validation["sum_return_kept"], validation["sum_return_all"]
    mean_kept, mean_all = validation["mean_return_kept"], validation["mean_return_all"]
    if (validation["kept"] == 0 or None in (kept, everyone, mean_kept, mean_all)
            or kept <= everyone or mean_kept <= mean_all):
        return "shadow", (f"held-out trades it would keep return {mean_kept} on average "
                          f"({kept} in sum) vs {mean_all} ({everyone}) for all: it would not "
                          "have helped")
    return "applied", (f"held-out AUC {score:.3f}; trades it keeps return {mean_kept} on "
                       f"average ({kept} in sum) vs {mean_all} ({everyone}) for all")


def fit(samples: Sequence[tuple[dict[str, float], float]], config: MLConfig,
        min_confidence: float, version: int, seed: int = 0
        ) -> tuple[Network, dict[str, Any], FloatArray, FloatArray]:
    """Train on the older samples; the card and the held-out rows and labels.
    ValueError when there are too few usable samples."""
    x, returns, skipped = clean(samples)
    if len(returns) < config.min_samples:
        raise ValueError(f"{len(returns)} usable labelled samples, ml.min_samples is "
                         f"{config.min_samples}" + (f" ({skipped} skipped)" if skipped else ""))
    cut = round(len(returns) * (1.0 - config.holdout_fraction))
    x_train, y_train, x_hold, y_hold = x[:cut], returns[:cut], x[cut:], returns[cut:]
    if len(np.unique(y_train > 0)) < 2:
        raise ValueError("training samples hold one class only (all wins or all losses)")
    classifier = train(x_train, (y_train > 0).astype(np.float64),
                       hidden=config.hidden_units, seed=seed)
    network = classifier.network()
    base_rate = float((y_train > 0).mean())
    validation = judge(network.predict(x_hold), x_hold, y_hold, base_rate, min_confidence)
    mode, why = decide_mode(validation, config)
    card = {
        "version": version, "trained_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "samples": cut, "holdout": len(y_hold), "skipped": skipped,
        "features": list(FEATURE_NAMES), "feature_version": FEATURE_VERSION,
        "hidden_units": config.hidden_units, "base_rate": round(base_rate, 6),
        "validation": validation, "mode": mode, "mode_reason": why,
    }
    return network, card, x_hold, y_hold


def write_verified(network: Network, card: dict[str, Any], path: Path,
                   check_rows: FloatArray) -> Predictor:
    """Write the file (atomically) and load it back through LiteRT; PredictorError when the
    interpreter's answers differ from numpy's by more than LITERT_TOLERANCE."""
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, network_to_tflite(network, card))
    predictor = Predictor(path)
    if len(check_rows):
        diff = float(np.max(np.abs(predictor.predict_many(check_rows)
                                   - network.predict(check_rows))))
        if diff > LITERT_TOLERANCE:
            raise PredictorError(f"{path}: LiteRT differs from numpy by {diff:.2e}")
    return predictor


def atomic_write(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def versioned_path(model_path: Path, version: int) -> Path:
    return model_path.with_name(f"{model_path.stem}.v{version}{model_path.suffix}")


def retrain(samples: Sequence[tuple[dict[str, float], float]], config: MLConfig,
            min_confidence: float, current: Predictor | None,
            model_path: Path | None = None) -> Outcome:
    """Train a candidate and install it over `model_path` unless the current model does
    better on the candidate's held-out samples."""
    path = Path(model_path or config.model_path)
    version = (current.version if current is not None else _latest_version(path)) + 1
    try:
        network, card, x_hold, y_hold = fit(samples, config, min_confidence, version)
    except ValueError as exc:
        return Outcome(False, f"not retrained: {exc}")
    new_score = card["validation"]["auc"]
    if current is not None:
        old = judge(current.predict_many(x_hold), x_hold, y_hold,
                    float(current.card.get("base_rate", 0.5)), min_confidence)
        card["replaced"] = {"version": current.version, "holdout_auc": old["auc"]}
        if new_score is None or (old["auc"] is not None and new_score < old["auc"]):
            return Outcome(False, f"candidate v{version} refused: held-out AUC {new_score} < "
                           f"{old['auc']} of the current v{current.version}", card)
    candidate = versioned_path(path, version)
    try:
        write_verified(network, card, candidate, x_hold)
        atomic_write(path, candidate.read_bytes())
    except (OSError, PredictorError) as exc:
        return Outcome(False, f"candidate v{version} not installed: {exc}", card)
    return Outcome(True, f"v{version} installed ({card['mode']}: {card['mode_reason']})",
                   card, path)


def _latest_version(path: Path) -> int:
    versions = []
    for p in path.parent.glob(f"{path.stem}.v*{path.suffix}"):
        tail = p.name[len(path.stem) + 2:-len(path.suffix) or None]
        if tail.isdigit():
            versions.append(int(tail))
    return max(versions, default=0)
