"""Backtest throughput through the full engine, per sample file and all pairs together.

Prints one JSON object. `--profile` adds the functions that dominate (cProfile, cumulative)."""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import pstats
from pathlib import Path

from novapulse.backtest import load_files, run_backtest
from novapulse.config import Config

SAMPLE_DIR = Path(__file__).resolve().parent.parent / "data" / "sample"
SAMPLES = sorted(SAMPLE_DIR.glob("*-5m.csv.gz"))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--repeat", type=int, default=3, help="best of N runs per file")
    args = parser.parse_args()
    config = Config()
    per_file = {}
    for path in SAMPLES:
        candles = load_files([path])
        best = max(run_backtest(config, candles)[0].candles_per_second for _ in range(args.repeat))
        per_file[path.name] = best
    all_pairs = run_backtest(config, load_files(SAMPLES))[0]
    result: dict[str, object] = {
        "benchmark": "backtest_throughput",
        "aim_candles_per_second_single_pair": 50_000,
        "single_pair_candles_per_second": per_file,
        "single_pair_median": sorted(per_file.values())[len(per_file) // 2],
        "all_pairs": {"pairs": len(SAMPLES), "candles": all_pairs.candles,
                      "candles_per_second": all_pairs.candles_per_second},
    }
    if args.profile:
        profiler = cProfile.Profile()
        profiler.enable()
        run_backtest(config, load_files(SAMPLES[:1]))
        profiler.disable()
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(12)
        result["profile_tottime_top"] = out.getvalue().splitlines()[-16:]
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
