"""The LiteRT predictor: loads a `.tflite` this bot wrote and answers P(win) for one row of
features. `ai-edge-litert` first; `tflite_runtime` when that is what is installed and it
loads. Any failure to load raises `PredictorError` with the reason (the caller logs runbook
8's "TFLite predictor failed" and trades without the model)."""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from typing import Any

import numpy as np

from novapulse.ml.features import FEATURE_NAMES, FloatArray
from novapulse.ml.tflite_writer import ModelFileError, read_card, read_network

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # LiteRT's banner on stderr


class PredictorError(Exception):
    """The model cannot be used; the message says why."""


def interpreter_class() -> tuple[type[Any], str]:
    """The interpreter class and where it came from; PredictorError when none loads."""
    problems = []
    for module, label in (("ai_edge_litert.interpreter", "ai-edge-litert"),
                          ("tflite_runtime.interpreter", "tflite-runtime")):
        try:
            return importlib.import_module(module).Interpreter, label
        except Exception as exc:  # an ImportError, or a runtime that fails under numpy 2
            problems.append(f"{label}: {exc}")
    raise PredictorError("no TFLite interpreter: " + "; ".join(problems))


class Predictor:
    """One loaded model. Not thread-safe: one caller at a time (the engine's loop)."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            raise PredictorError(f"model file {self.path} missing") from None
        except OSError as exc:
            raise PredictorError(f"model file {self.path} unreadable: {exc}") from None
        try:
            self.card = read_card(data)
            self.network = read_network(data)
        except ModelFileError as exc:
            raise PredictorError(f"model file {self.path} corrupt: {exc}") from None
        names = tuple(self.card.get("features", ()))
        if names != FEATURE_NAMES:
            raise PredictorError(f"model file {self.path} was trained on other features "
                                 f"(version {self.card.get('feature_version')}); retrain it")
        cls, self.runtime = interpreter_class()
        try:
            self._interpreter = cls(model_content=data, num_threads=1)
            self._interpreter.allocate_tensors()
            inp = self._interpreter.get_input_details()[0]
            out = self._interpreter.get_output_details()[0]
        except Exception as exc:
            raise PredictorError(f"model file {self.path} refused by {self.runtime}: "
                                 f"{exc}") from None
        if tuple(inp["shape"]) != (1, len(FEATURE_NAMES)):
            raise PredictorError(f"model file {self.path} takes input {tuple(inp['shape'])}, "
                                 f"not (1, {len(FEATURE_NAMES)})")
        self._in = inp["index"]
        self._out = out["index"]
        self._row = np.zeros((1, len(FEATURE_NAMES)), dtype=np.float32)
        self._invoke = self._interpreter.invoke
        self._set = self._interpreter.set_tensor
        self._get = self._interpreter.get_tensor

    @property
    def version(self) -> int:
        return int(self.card.get("version", 0))

    def predict(self, row: FloatArray) -> float:
        """P(win) for one row of raw features in FEATURE_NAMES order."""
        buf = self._row
        buf[0, :] = row
        self._set(self._in, buf)
        self._invoke()
        return float(self._get(self._out)[0, 0])

    def predict_many(self, rows: FloatArray) -> FloatArray:
        return np.array([self.predict(r) for r in rows], dtype=np.float64)
