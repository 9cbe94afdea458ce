"""The whole `novapulse backtest --json` over the six sample 5-minute files, as a process.

Wall time and peak resident memory (the child's ru_maxrss) of each run; median of `--repeat`
runs. `--report` measures the same run writing the HTML/CSV report too. Prints one JSON object."""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = sorted((ROOT / "data" / "sample").glob("*-5m.csv.gz"))


def run_once(extra: list[str]) -> tuple[float, float]:
    """(seconds, peak RSS in MB) of one backtest process."""
    cmd = [sys.executable, "-m", "novapulse.cli", "backtest", "--json", "--no-progress",
           "--data", *map(str, SAMPLES), *extra]
    with tempfile.TemporaryFile() as err:  # a file, not a pipe: nothing can block on it
        started = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
        elapsed = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode != 0:
            err.seek(0)
            raise SystemExit(f"backtest failed ({proc.returncode}): "
                             f"{err.read().decode()[-2000:]}")
    return elapsed, usage.ru_maxrss / 1024.0  # Linux: kilobytes


def measure(extra: list[str], repeat: int) -> dict[str, float]:
    runs = [run_once(extra) for _ in range(repeat)]
    return {"seconds_median": round(statistics.median(r[0] for r in runs), 3),
            "seconds_min": round(min(r[0] for r in runs), 3),
            "peak_rss_mb_median": round(statistics.median(r[1] for r in runs), 1)}


def import_seconds(repeat: int) -> float:
    """Time to import what the backtest command needs, in a fresh interpreter."""
    code = "import novapulse.cli as c; c.build_parser('backtest'); import novapulse.backtest"
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], check=True)
        times.append(time.perf_counter() - started)
    return round(statistics.median(times), 3)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--report", action="store_true",
                        help="also measure the run with --report and --export")
    args = parser.parse_args()
    result: dict[str, object] = {
        "benchmark": "backtest_process",
        "files": [p.name for p in SAMPLES],
        "aim_seconds": 1.0,
        "cpus": os.cpu_count(),
        "json_only": measure([], args.repeat),
        "startup_and_imports_seconds": import_seconds(args.repeat),
    }
    if args.report:
        with tempfile.TemporaryDirectory() as tmp:
            result["with_report_and_export"] = measure(
                ["--report", str(Path(tmp) / "report"), "--export", str(Path(tmp) / "t.csv")],
                args.repeat)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
