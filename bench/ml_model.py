"""The confidence model, measured: LiteRT inference latency per prediction (p50/p99), training
time on the sample data, single-pair backtest throughput with the model on (applied and
shadow) vs off, and the walk-forward with vs without the model (time split and
leave-one-pair-out). Prints one JSON object. Backtests here use the research config (the
span-ending risk pauses relaxed, docs/ml.md) for both arms."""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from novapulse.backtest import load_files
from novapulse.config import Config
from novapulse.ml.confidence import ModelConfidence
from novapulse.ml.dataset import collect, research_config, run
from novapulse.ml.evaluate import walk_forward
from novapulse.ml.predictor import Predictor
from novapulse.ml.retrain import clean, retrain

SAMPLE_DIR = Path(__file__).resolve().parent.parent / "data" / "sample"
SAMPLES = sorted(SAMPLE_DIR.glob("*-5m.csv.gz"))


def latency(predictor: Predictor, rows: np.ndarray, n: int) -> dict[str, float]:
    times = []
    for i in range(n):
        row = rows[i % len(rows)]
        t = time.perf_counter_ns()
        predictor.predict(row)
        times.append(time.perf_counter_ns() - t)
    times.sort()
    return {"n": n, "p50_us": round(times[n // 2] / 1000, 2),
            "p99_us": round(times[int(n * 0.99)] / 1000, 2),
            "mean_us": round(statistics.fmean(times) / 1000, 2)}


def throughput(config: Config, candles: list[Any], model_path: Path | None,
               mode: str | None, repeat: int) -> float:
    best = 0.0
    for _ in range(repeat):
        model = None
        if model_path is not None:
            model = ModelConfidence(config.ml.model_copy(update={"enabled": True}),
                                    config.risk.min_confidence, learner=True)
            model.force_mode = mode  # type: ignore[assignment]
            model.load(str(model_path))
        best = max(best, run(config, candles, model).summary.candles_per_second)
    return best


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--hidden", type=int, default=0, help="0 = logistic regression")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--no-walk-forward", action="store_true")
    args = parser.parse_args()
    logging.getLogger("novapulse").setLevel(logging.ERROR)
    config = Config()
    candles = load_files(SAMPLES)
    result: dict[str, Any] = {"benchmark": "ml_model", "hidden_units": args.hidden}
    with tempfile.TemporaryDirectory(prefix="novapulse-ml-bench-") as tmp:
        path = Path(tmp) / "trade_predictor.tflite"
        t0 = time.perf_counter()
        samples = collect(config, candles).samples
        t1 = time.perf_counter()
        ml = config.ml.model_copy(update={"hidden_units": args.hidden, "min_samples": 50})
        outcome = retrain([(s.features, s.label) for s in samples], ml,
                          config.risk.min_confidence, None, path)
        t2 = time.perf_counter()
        assert outcome.accepted, outcome.reason
        result["training"] = {
            "files": len(SAMPLES), "samples": len(samples),
            "collect_seconds": round(t1 - t0, 3),
            "train_write_verify_seconds": round(t2 - t1, 3),
            "holdout_auc": outcome.card["validation"]["auc"] if outcome.card else None,
            "mode": outcome.card["mode"] if outcome.card else None,
        }
        predictor = Predictor(path)
        x, _, _ = clean([(s.features, s.label) for s in samples])
        latency(predictor, x, 2_000)  # warm
        result["inference"] = {"runtime": predictor.runtime, "aim_p99_us": 50,
                               **latency(predictor, x, 20_000)}
        research = research_config(config)
        single = load_files(SAMPLES[2:3])  # ETH/BTC
        result["backtest_single_pair"] = {
            "file": SAMPLES[2].name, "config": "research", "aim_with_model": 40_000,
            "candles_per_second_without_model": throughput(research, single, None, None,
                                                           args.repeat),
            "candles_per_second_model_applied": throughput(research, single, path, "applied",
                                                           args.repeat),
            "candles_per_second_model_shadow": throughput(research, single, path, "shadow",
                                                          args.repeat),
        }
    if not args.no_walk_forward:
        result["walk_forward"] = walk_forward(config, candles, hidden=args.hidden)
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
