"""The .tflite the bot writes, run through LiteRT, equals the numpy model; training,
features, and files that are not models."""

from __future__ import annotations

import logging
import math
from pathlib import Path

import numpy as np
import pytest

from novapulse.backtest import load_files
from novapulse.config import Config
from novapulse.ml.dataset import collect
from novapulse.ml.features import FEATURE_NAMES, extract, vector
from novapulse.ml.model import auc, train
from novapulse.ml.predictor import Predictor, PredictorError
from novapulse.ml.retrain import clean
from novapulse.ml.tflite_writer import ModelFileError, network_to_tflite, read_card

pytest.importorskip("ai_edge_litert", reason="LiteRT (ai-edge-litert) not installed")
SAMPLE = Path(__file__).resolve().parents[2] / "data" / "sample" / "ETH_BTC-5m.csv.gz"
CARD = {"version": 1, "features": list(FEATURE_NAMES), "base_rate": 0.4}


@pytest.fixture(scope="module")
def real_rows() -> tuple[np.ndarray, np.ndarray]:
    """Features and outcomes of the trades one real sample file produces."""
    logging.getLogger("novapulse").setLevel(logging.ERROR)
    samples = collect(Config(), load_files([SAMPLE])).samples
    x, y, skipped = clean([(s.features, s.label) for s in samples])
    assert skipped == 0 and len(x) >= 20
    return x, y


@pytest.mark.parametrize("hidden", [0, 8])
def test_tflite_through_litert_equals_numpy_on_real_features(
        tmp_path: Path, real_rows: tuple[np.ndarray, np.ndarray], hidden: int) -> None:
    x, y = real_rows
    network = train(x, (y > 0).astype(float), hidden=hidden, epochs=150).network()
    path = tmp_path / "m.tflite"
    path.write_bytes(network_to_tflite(network, CARD))
    predictor = Predictor(path)
    assert predictor.runtime in ("ai-edge-litert", "tflite-runtime")
    litert = predictor.predict_many(x)
    numpy_p = network.predict(x)
    assert np.max(np.abs(litert - numpy_p)) <= 1e-6
    assert np.ptp(numpy_p) > 0.05  # a model that says the same for everything proves nothing


def test_the_file_carries_its_card_and_refuses_foreign_bytes() -> None:
    network = train(np.random.default_rng(0).normal(size=(50, len(FEATURE_NAMES))),
                    np.arange(50) % 2 == 0, epochs=5).network()
    assert read_card(network_to_tflite(network, CARD))["version"] == 1
    with pytest.raises(ModelFileError):
        read_card(b"not a model at all")


def test_corrupt_and_missing_files_say_why(tmp_path: Path) -> None:
    with pytest.raises(PredictorError, match="missing"):
        Predictor(tmp_path / "absent.tflite")
    bad = tmp_path / "bad.tflite"
    bad.write_bytes(b"\x00" * 64)
    with pytest.raises(PredictorError, match="corrupt"):
        Predictor(bad)


def test_training_separates_a_learnable_signal() -> None:
    rng = np.random.default_rng(3)
    x = rng.normal(size=(300, 4)) * [1.0, 50.0, 0.01, 3.0] + [0.0, 100.0, 1.0, -2.0]
    y = (x[:, 1] - 100.0 + rng.normal(scale=20.0, size=300) > 0).astype(float)
    model = train(x[:200], y[:200], epochs=200)
    assert auc(model.predict(x[200:]), y[200:]) > 0.8
    assert model.history[-1] < model.history[0]


def test_auc_known_values() -> None:
    assert auc(np.array([0.1, 0.2, 0.8, 0.9]), np.array([0, 0, 1, 1])) == 1.0
    assert auc(np.array([0.5, 0.5]), np.array([0, 1])) == 0.5
    assert math.isnan(auc(np.array([0.3]), np.array([1])))


def test_features_never_hold_nan(real_rows: tuple[np.ndarray, np.ndarray]) -> None:
    x, _ = real_rows
    assert x.shape[1] == len(FEATURE_NAMES) and np.all(np.isfinite(x))
    with pytest.raises(ValueError, match="not finite"):
        vector({**dict.fromkeys(FEATURE_NAMES, 0.0), "rsi": math.nan})


def test_extract_refuses_non_finite_indicators() -> None:
    from novapulse.indicators import PairIndicators
    from novapulse.models import Candle
    from novapulse.strategies.base import Signal
    from novapulse.strategies.ensemble import Decision

    ind = PairIndicators("ETH/BTC")  # nothing seen yet: every indicator NaN
    decision = Decision(1, 0.8, (Signal("ema_cross", 1, 0.8, "x"),), "buy")
    assert extract(decision, ind, Candle("ETH/BTC", 0, 1, 1, 1, 1, 1)) is None
