"""Per-candle cost of the indicators and of indicators + strategies + ensemble.

Prints JSON. Each sample file is replayed from scratch (warm-up included) several times; the
best run per file counts, as the least disturbed by other processes on the machine.
"""

from __future__ import annotations

import json
import platform
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from novapulse.indicators import PairIndicators
from novapulse.market.candle_files import load_candles
from novapulse.models import Candle
from novapulse.strategies import Ensemble, default_strategies

SAMPLES = Path(__file__).resolve().parents[1] / "data" / "sample"
REPEATS = 5


def indicators_only(candles: Sequence[Candle]) -> float:
    ind = PairIndicators(candles[0].pair)
    update = ind.update
    started = time.perf_counter()
    for candle in candles:
        update(candle)
    return time.perf_counter() - started


def full_path(candles: Sequence[Candle]) -> float:
    ind = PairIndicators(candles[0].pair)
    ensemble = Ensemble(default_strategies(), {})
    update, evaluate_all = ind.update, ensemble.evaluate_all
    disabled: set[str] = set()
    started = time.perf_counter()
    for candle in candles:
        update(candle)
        evaluate_all(ind, candle, disabled)
    return time.perf_counter() - started


def measure(run: Callable[[Sequence[Candle]], float],
            files: dict[str, list[Candle]]) -> dict[str, float]:
    total_candles, total_seconds = 0, 0.0
    for candles in files.values():
        total_seconds += min(run(candles) for _ in range(REPEATS))
        total_candles += len(candles)
    return {
        "candles": total_candles,
        "candles_per_s": round(total_candles / total_seconds),
        "us_per_candle": round(1e6 * total_seconds / total_candles, 3),
    }


def main() -> None:
    files = {p.name: load_candles(p) for p in sorted(SAMPLES.glob("*.csv.gz"))}
    result = {
        "benchmark": "strategy_throughput",
        "python": sys.version.split()[0],
        "machine": platform.machine(),
        "files": sorted(files),
        "repeats_best_of": REPEATS,
        "indicators": measure(indicators_only, files),
        "indicators_strategies_ensemble": measure(full_path, files),
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
