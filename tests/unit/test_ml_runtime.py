"""Runbook 8 in the engine: a missing or corrupt model, NaN features, a failing learner, and
retraining — the bot keeps trading through all of them and says why."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest

from novapulse.backtest import load_files
from novapulse.config import Config
from novapulse.ml.confidence import ModelConfidence
from novapulse.ml.dataset import Sample, collect, research_config, run
from novapulse.ml.features import FEATURE_NAMES
from novapulse.ml.model import Classifier
from novapulse.ml.predictor import Predictor
from novapulse.ml.retrain import retrain

pytest.importorskip("ai_edge_litert", reason="LiteRT (ai-edge-litert) not installed")
SAMPLE = Path(__file__).resolve().parents[2] / "data" / "sample" / "ETH_BTC-5m.csv.gz"


@pytest.fixture(scope="module")
def candles() -> list:
    logging.getLogger("novapulse").setLevel(logging.ERROR)
    return load_files([SAMPLE])


@pytest.fixture(scope="module")
def samples(candles: list) -> list[Sample]:
    return collect(Config(), candles).samples


def _model(tmp: Path, **ml: object) -> ModelConfidence:
    config = Config().ml.model_copy(update={"model_path": str(tmp / "tp.tflite"), **ml})
    return ModelConfidence(config, min_confidence=0.55)


@pytest.mark.parametrize("content", [None, b"garbage" * 10])
def test_missing_or_corrupt_model_trades_on_and_says_why(
        tmp_path: Path, candles: list, content: bytes | None,
        caplog: pytest.LogCaptureFixture) -> None:
    model = _model(tmp_path)
    if content is not None:
        (tmp_path / "tp.tflite").write_bytes(content)
    with caplog.at_level(logging.ERROR, logger="novapulse.ml"):
        assert model.load() is False
    assert "TFLite predictor failed" in caplog.text
    status = model.status()
    assert status["state"] == "failed"
    assert ("missing" if content is None else "corrupt") in status["reason"]
    cfg = research_config()
    baseline = run(cfg, candles)
    with_broken = run(cfg, candles, model)
    assert with_broken.summary.trades == baseline.summary.trades > 0


def test_nan_features_are_skipped_with_a_log_line(caplog: pytest.LogCaptureFixture) -> None:
    from novapulse.indicators import PairIndicators
    from novapulse.models import Candle
    from novapulse.strategies.base import Signal
    from novapulse.strategies.ensemble import Decision

    model = ModelConfidence(Config().ml, 0.55)
    decision = Decision(1, 0.9, (Signal("ema_cross", 1, 0.9, "x"),), "buy")
    with caplog.at_level(logging.WARNING, logger="novapulse.ml"):
        out = model.adjust(decision, PairIndicators("ETH/BTC"), Candle("ETH/BTC", 0, 1, 1, 1, 1, 1))
    assert out is decision
    assert "not finite" in caplog.text and model.counters.bad_features == 1
    assert not model.pending


def test_retrain_installs_then_refuses_worse_and_restart_keeps_version(
        tmp_path: Path, samples: list[Sample], caplog: pytest.LogCaptureFixture) -> None:
    ml = Config().ml.model_copy(update={"model_path": str(tmp_path / "tp.tflite"),
                                        "min_samples": 20})
    rows = [(s.features, s.label) for s in samples]
    first = retrain(rows, ml, 0.55, None)
    assert first.accepted, first.reason
    model = _model(tmp_path, min_samples=20)
    assert model.load() and model.status()["version"] == 1
    assert model.status()["mode"] in ("applied", "shadow")
    assert (tmp_path / "tp.v1.tflite").exists()
    # The predictor the bot now uses answers like the file it was given.
    x = np.array([[s.features[n] for n in FEATURE_NAMES] for s in samples])
    assert np.max(np.abs(model.predictor.predict_many(x)  # type: ignore[union-attr]
                         - Predictor(tmp_path / "tp.v1.tflite").predict_many(x))) == 0.0
    # A candidate taught the opposite of every training outcome, judged on the same (true)
    # held-out samples as the current model, is refused.
    assert first.card is not None and first.card["validation"]["auc"] > 0.5, "precondition"
    cut = first.card["samples"]
    inverted = [(f, -lab if i < cut else lab) for i, (f, lab) in enumerate(rows)]
    worse = retrain(inverted, ml, 0.55, model.predictor)
    assert not worse.accepted and "refused" in worse.reason
    assert Predictor(tmp_path / "tp.tflite").version == 1
    # A restart loads what is installed.
    again = _model(tmp_path)
    assert again.load() and again.status()["version"] == 1


def test_too_few_samples_is_said_not_trained(tmp_path: Path, samples: list[Sample]) -> None:
    ml = Config().ml.model_copy(update={"model_path": str(tmp_path / "tp.tflite")})
    outcome = retrain([(s.features, s.label) for s in samples[:10]], ml, 0.55, None)
    assert not outcome.accepted and "ml.min_samples" in outcome.reason
    assert not (tmp_path / "tp.tflite").exists()


def test_learner_skips_bad_samples_and_survives_a_failure(
        tmp_path: Path, samples: list[Sample], caplog: pytest.LogCaptureFixture,
        monkeypatch: pytest.MonkeyPatch) -> None:
    ml = Config().ml.model_copy(update={"model_path": str(tmp_path / "tp.tflite"),
                                        "min_samples": 20})
    assert retrain([(s.features, s.label) for s in samples], ml, 0.55, None).accepted
    model = _model(tmp_path)
    assert model.load()
    learner = model.learner
    assert learner is not None
    good = samples[0]
    assert learner.update(good.features, good.label)
    with caplog.at_level(logging.WARNING, logger="novapulse.ml"):
        assert not learner.update({**good.features, "rsi": float("nan")}, 1.0)
    assert "skipped a bad sample" in caplog.text and learner.stats.skipped == 1

    def boom(*_: object) -> None:
        raise RuntimeError("forced")

    with monkeypatch.context() as patch, caplog.at_level(logging.ERROR, logger="novapulse.ml"):
        patch.setattr(Classifier, "gradients", boom)
        assert not learner.update(good.features, good.label)
    assert "Continuous learner update failed" in caplog.text
    assert learner.stats.failures == 1 and learner.model is None
    # Reinitialised from the current model on the next close.
    assert learner.update(good.features, good.label)
    assert learner.stats.reinitialised == 2 and learner.stats.updates == 2


def test_engine_survives_a_model_that_raises(candles: list,
                                             caplog: pytest.LogCaptureFixture) -> None:
    class Broken:
        def adjust(self, *_: object) -> object:
            raise RuntimeError("interpreter crashed")

        def entered(self, *_: object) -> None:
            raise RuntimeError("learner crashed")

        def closed(self, *_: object) -> None:
            raise RuntimeError("learner crashed")

    cfg = research_config()
    baseline = run(cfg, candles)
    with caplog.at_level(logging.ERROR, logger="novapulse.engine"):
        broken = run(cfg, candles, Broken())  # type: ignore[arg-type]
    assert broken.summary.trades == baseline.summary.trades
    assert "TFLite predictor failed" in caplog.text
    assert "Continuous learner update failed" in caplog.text


def test_applied_model_can_only_lower_confidence(tmp_path: Path, candles: list,
                                                 samples: list[Sample]) -> None:
    ml = Config().ml.model_copy(update={"model_path": str(tmp_path / "tp.tflite"),
                                        "min_samples": 20})
    assert retrain([(s.features, s.label) for s in samples], ml, 0.55, None).accepted
    shadow, applied = _model(tmp_path), _model(tmp_path)
    applied.force_mode = "applied"
    shadow.force_mode = "shadow"
    assert shadow.load() and applied.load()
    cfg = research_config()
    baseline = run(cfg, candles)
    watched = run(cfg, candles, shadow)
    acted = run(cfg, candles, applied)
    assert watched.summary.trades == baseline.summary.trades  # shadow changes nothing
    assert shadow.status()["mode"] == "shadow" and shadow.counters.scored > 0
    assert acted.summary.trades <= baseline.summary.trades
    assert applied.counters.lowered > 0
