"""`novapulse model train|eval`. Only argparse here: the model's imports (numpy, LiteRT) load
when a command runs."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path
from typing import Any

EXIT_BAD_INPUT = 2


def register(sub: Any) -> None:
    model = sub.add_parser("model", help="train and evaluate the confidence model (docs/ml.md)")
    model_sub = model.add_subparsers(dest="model_command", required=True)
    train = model_sub.add_parser("train", help="train on candle files, write a .tflite model")
    train.add_argument("--data", nargs="+", required=True, help="candle files (csv or csv.gz)")
    train.add_argument("--out", default="models/trade_predictor.tflite")
    train.add_argument("--config", help="YAML config file (ml.* and risk settings)")
    train.add_argument("--hidden", type=int, help="hidden units (0 = logistic regression)")
    train.add_argument("--min-samples", type=int, help="override ml.min_samples")
    train.add_argument("--json", action="store_true")
    train.set_defaults(func=cmd_train)
    ev = model_sub.add_parser("eval", help="AUC, calibration, backtest with vs without")
    ev.add_argument("--model", required=True)
    ev.add_argument("--data", nargs="+", required=True)
    ev.add_argument("--config", help="YAML config file")
    ev.add_argument("--walk-forward", action="store_true",
                    help="also train/judge walk-forward on the files (time split, pair holdout)")
    ev.add_argument("--json", action="store_true")
    ev.set_defaults(func=cmd_eval)


def _load(args: argparse.Namespace) -> tuple[Any, Any] | None:
    from novapulse.backtest import load_files
    from novapulse.config import ConfigError, load_config
    from novapulse.market.candle_files import CandleFileError

    # The thought log's lines (one per blocked signal) are not what a model run is about.
    logging.getLogger("novapulse").setLevel(logging.ERROR)
    try:
        config = load_config(Path(args.config) if args.config else None)
        candles = load_files([Path(p) for p in args.data])
    except (ConfigError, CandleFileError, OSError) as exc:
        print(f"novapulse model: {exc}", file=sys.stderr)
        return None
    return config, candles


def cmd_train(args: argparse.Namespace) -> int:
    loaded = _load(args)
    if loaded is None:
        return EXIT_BAD_INPUT
    config, candles = loaded
    from novapulse.ml.dataset import collect
    from novapulse.ml.predictor import Predictor, PredictorError
    from novapulse.ml.retrain import retrain

    update: dict[str, Any] = {"model_path": args.out}
    if args.hidden is not None:
        update["hidden_units"] = args.hidden
    if args.min_samples is not None:
        update["min_samples"] = args.min_samples
    ml = config.ml.model_copy(update=update)
    started = time.perf_counter()
    samples = collect(config, candles).samples
    collected = time.perf_counter()
    current = None
    if Path(args.out).exists():
        try:
            current = Predictor(args.out)
        except PredictorError as exc:
            print(f"novapulse model: the existing {args.out} is not usable ({exc}); "
                  "it will be replaced", file=sys.stderr)
    outcome = retrain([(s.features, s.label) for s in samples], ml,
                      config.risk.min_confidence, current, Path(args.out))
    report = {"accepted": outcome.accepted, "reason": outcome.reason, "path": args.out,
              "collected_samples": len(samples),
              "collect_seconds": round(collected - started, 3),
              "train_seconds": round(time.perf_counter() - collected, 3),
              "card": {k: v for k, v in (outcome.card or {}).items()
                       if k not in ("features",)}}
    if args.json:
        print(json.dumps(report))
    else:
        print(outcome.reason)
        validation = (outcome.card or {}).get("validation", {})
        print(f"samples {len(samples)} (train {report['card'].get('samples')}, held out "
              f"{report['card'].get('holdout')}); held-out AUC {validation.get('auc')}, "
              f"Brier {validation.get('brier')}")
    return 0 if outcome.accepted else 1


def cmd_eval(args: argparse.Namespace) -> int:
    loaded = _load(args)
    if loaded is None:
        return EXIT_BAD_INPUT
    config, candles = loaded
    from novapulse.ml.evaluate import evaluate, walk_forward
    from novapulse.ml.predictor import Predictor, PredictorError

    try:
        predictor = Predictor(args.model)
    except PredictorError as exc:
        print(f"novapulse model: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    report = {"model": {k: predictor.card.get(k) for k in
                        ("version", "trained_at", "samples", "mode", "mode_reason")},
              **evaluate(config, predictor, candles)}
    if args.walk_forward:
        report["walk_forward"] = walk_forward(config, candles,
                                              hidden=int(predictor.card.get("hidden_units", 0)))
    if args.json:
        print(json.dumps(report))
        return 0
    pred = report["predictions"]
    print(f"model v{report['model']['version']} ({report['model']['mode']}), "
          f"{pred.get('n', 0)} trades judged")
    print(f"AUC {pred.get('auc')}  Brier {pred.get('brier')}  win rate {pred.get('win_rate')}")
    for row in pred.get("calibration", []):
        print(f"  P(win) {row['from']:.1f}-{row['to']:.1f}: {row['n']:4d} trades, predicted "
              f"{row['predicted']:.3f}, observed {row['observed']:.3f}")
    for arm in ("backtest_without_model", "backtest_with_model"):
        a = report[arm]
        print(f"{arm.replace('_', ' '):24s} trades {a['trades']:4d}  win rate "
              f"{a['win_rate'] * 100:5.1f}%  return {a['total_return_pct']:+.2f}%  "
              f"max drawdown {a['max_drawdown_pct']:.2f}%")
    if args.walk_forward:
        print(json.dumps(report["walk_forward"], indent=1))
    return 0
