#!/usr/bin/env python3
"""`make demo` without a cluster: the bot in paper mode on recorded candles, continuing where
the last run stopped.

Two processes, as in production: `novapulse replay-server` plays the sample files over the
Kraken WebSocket v2 protocol, and `novapulse run --feed ws://...` trades on them in paper mode,
with its embedded PostgreSQL in the demo's data directory (`data/demo/`). Before they start,
the bot's checkpoint — the last candle it decided on, per pair — is read from that database
and the replay begins right after it: a second `make demo` decides new candles at once instead
of replaying, silently, candles already decided. The replay's clock waits for the bot to
subscribe, so no candle is skipped while the bot starts. Once the files are played to their
end the demo says so and stops; `make demo-reset` (`--reset`) removes the data directory, and
the next run starts again at the first candle.

    .venv/bin/python scripts/local_demo.py [--speed 600] [--port 8090] [--data-dir data/demo]
    .venv/bin/python scripts/local_demo.py --reset
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import contextlib
import os
import shutil
import signal
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from novapulse.config import Config, ConfigError, load_config
from novapulse.instance_lock import HolderInfo, InstanceAlreadyRunning, InstanceLock
from novapulse.market.candle_files import CandleFileError, describe_file, load_candles
from novapulse.store.embedded import PGDATA_DIR, start_embedded_postgres
from novapulse.store.postgres import Store

DEFAULT_DATA_DIR = Path("data/demo")
DEFAULT_FILES = tuple(Path("data/sample") / f"{coin}_BTC-5m.csv.gz"
                      for coin in ("ETH", "LTC", "XMR"))
MARKER = ".novapulse-demo"  # written into the data directory: only such a directory is reset
SAY = "make demo:"
RESET_HINT = "`make demo-reset` starts over at the first candle"
URL_WAIT_S = 60.0
# After the replay's last candle, time for the bot to decide what it has received before it is
# stopped (a step takes it milliseconds): the next run then finds the data used up.
LAST_CANDLES_GRACE_S = 1.0
EXIT_OK = 0
EXIT_USAGE = 2
EXIT_RUNNING = 3


def say(message: str) -> None:
    print(f"{SAY} {message}", file=sys.stderr, flush=True)


def utc(ts: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(ts))


def duration(seconds: float) -> str:
    if seconds < 90:
        return f"about {seconds:.0f} s"
    if seconds < 5400:
        return f"about {seconds / 60:.0f} min"
    return f"about {seconds / 3600:.1f} h"


@dataclass(frozen=True)
class Plan:
    """Where the replay begins: its arguments, what to tell the user, and whether any candle
    is left to decide at all."""

    replay_args: list[str]
    message: str
    exhausted: bool


def plan_replay(times: dict[str, list[int]], decided: dict[str, int], warmup: int,
                interval_s: int, speed: float) -> Plan:
    """`times`: each pair's candle start times; `decided`: the newest candle the bot decided on
    per pair (its checkpoint), empty on a fresh start. The replay resumes after the oldest of
    those, so no pair skips a candle (a pair ahead sees one or two it already decided, which
    the engine ignores). A candle is decided once the next one begins, so the newest candle of
    a file is never decided: a pair is done when only that one is left."""
    known = [ts for pair, ts in decided.items() if pair in times]
    if known:
        after = min(known)
        starts = {pair: bisect.bisect_right(ts_list, after) for pair, ts_list in times.items()}
        args = ["--start-after", str(after)]
    else:
        starts = dict.fromkeys(times, warmup)
        args = ["--start-index", str(warmup)]
    left = max(len(times[pair]) - 1 - start for pair, start in starts.items())
    if left <= 0 and not known:
        return Plan(args, f"the candle files hold nothing to trade after the {warmup} candles "
                          "that warm the indicators (trading.warmup_bars)", True)
    if left <= 0:
        newest = max(ts_list[-1] for ts_list in times.values())
        return Plan(args, f"the recorded candles are used up: the bot has decided on every "
                          f"candle up to the end of the data ({utc(newest)}). {RESET_HINT} (it "
                          "deletes the demo's data directory: its paper trades and its "
                          "database).", True)
    pace = f"{duration(left * interval_s / speed)} at {speed:g}x" if speed > 0 else "at full speed"
    if known:
        message = (f"continuing after the last candle decided on ({utc(min(known))}): {left} "
                   f"candles left, {pace}; {RESET_HINT}.")
    else:
        begin = min(ts_list[warmup] for ts_list in times.values() if len(ts_list) > warmup)
        message = (f"a fresh start: {warmup} candles warm the indicators, then trading from "
                   f"{utc(begin)} on ({left} candles, {pace}).")
    return Plan(args, message, False)


async def read_checkpoint(config: Config, data_dir: Path) -> dict[str, Any] | None:
    """The bot's checkpoint from the demo's embedded PostgreSQL (started and stopped again;
    the bot starts it itself), or None before the first run."""
    if not (data_dir / PGDATA_DIR / "PG_VERSION").exists():
        return None
    embedded = await asyncio.to_thread(start_embedded_postgres, data_dir)
    try:
        store = await Store.connect(embedded.dsn, identity=config.instance.identity,
                                    lock_timeout_s=config.database.lock_timeout_seconds)
        try:
            await store.migrate()
            return await store.load_checkpoint()
        finally:
            await store.close()
    finally:
        await asyncio.to_thread(embedded.stop)


def demo_environment(pairs: list[str], interval_s: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env["NOVAPULSE__TRADING__PAIRS"] = "[" + ", ".join(pairs) + "]"
    env["NOVAPULSE__TRADING__TIMEFRAME_MINUTES"] = str(interval_s // 60)
    env["PYTHONUNBUFFERED"] = "1"
    return env


async def terminate(proc: asyncio.subprocess.Process, within_s: float = 60.0) -> int:
    """SIGTERM (each program stops cleanly on it), then its exit code; SIGKILL if it hangs."""
    if proc.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
    try:
        return await asyncio.wait_for(proc.wait(), within_s)
    except TimeoutError:
        proc.kill()
        return await proc.wait()


async def start_replay(files: list[Path], plan: Plan, speed: float, snapshot: int,
                       env: dict[str, str]) -> tuple[asyncio.subprocess.Process, str]:
    data = [arg for path in files for arg in ("--data", str(path))]
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "novapulse.cli", "replay-server", *data, "--port", "0",
        "--speed", str(speed), "--snapshot-size", str(snapshot), "--start-on-subscribe",
        "--exit-when-done", *plan.replay_args, env=env, stdout=asyncio.subprocess.PIPE)
    assert proc.stdout is not None
    try:
        line = await asyncio.wait_for(proc.stdout.readline(), URL_WAIT_S)
    except TimeoutError:
        line = b""
    url = line.decode().strip()
    if not url.startswith("ws://"):
        await terminate(proc)
        raise RuntimeError(f"the replay server did not start (exit code {proc.returncode})")
    return proc, url


@dataclass(frozen=True)
class Demo:
    plan: Plan
    files: list[Path]
    env: dict[str, str]
    data_dir: Path
    warmup: int


def prepare(args: argparse.Namespace) -> Demo | int:
    """Read the files and the bot's checkpoint, and plan the replay; an exit code when the
    demo cannot (or need not) run."""
    data_dir: Path = args.data_dir
    files: list[Path] = args.data
    try:
        described = [describe_file(path) for path in files]
        times = {pair: [c.ts for c in load_candles(path, pair)]
                 for path, (pair, _) in zip(files, described, strict=True)}
    except (CandleFileError, OSError) as exc:
        say(f"cannot read the candle files: {exc}")
        return EXIT_USAGE
    pairs = list(times)
    interval_s = described[0][1]
    if os.environ.get("DATABASE_URL"):
        say(f"DATABASE_URL is not used: the demo keeps its own embedded PostgreSQL in {data_dir}")
    env = demo_environment(pairs, interval_s)
    try:
        config = load_config(None, environ=env, overrides={
            "trading": {"mode": "paper"}, "instance": {"data_dir": str(data_dir)}})
    except ConfigError as exc:
        say(f"refusing to start: {exc}")
        return EXIT_USAGE
    data_dir.mkdir(parents=True, exist_ok=True)
    (data_dir / MARKER).write_text("The local demo's data (make demo); make demo-reset "
                                   "removes this directory.\n")
    guard = InstanceLock(data_dir / "instance.lock",
                         HolderInfo.current(config.instance.identity))
    try:
        guard.acquire()  # no bot may run on this data while its checkpoint is read
    except InstanceAlreadyRunning as exc:
        say(f"a demo is already running on {data_dir}: {exc}")
        return EXIT_RUNNING
    try:
        checkpoint = asyncio.run(read_checkpoint(config, data_dir))
    finally:
        guard.release()
    decided = {str(pair): int(ts) for pair, ts in
               (checkpoint or {}).get("last_candle_ts", {}).items()}
    plan = plan_replay(times, decided, config.trading.warmup_bars, interval_s, args.speed)
    say(plan.message)
    if plan.exhausted:
        return EXIT_OK
    return Demo(plan, files, env, data_dir, config.trading.warmup_bars)


async def run_demo(demo: Demo, speed: float, port: int | None) -> int:
    """The replay server and the bot, until Ctrl-C, the bot's exit or the end of the data."""
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stopping.set)
    try:
        replay, url = await start_replay(demo.files, demo.plan, speed, demo.warmup, demo.env)
    except RuntimeError as exc:
        say(str(exc))
        return 1
    bot_args = ["run", "--mode", "paper", "--feed", url, "--data-dir", str(demo.data_dir)]
    if port is not None:
        bot_args += ["--port", str(port)]
    bot = await asyncio.create_subprocess_exec(sys.executable, "-m", "novapulse.cli",
                                               *bot_args, env=demo.env)
    waits = {asyncio.ensure_future(w) for w in (bot.wait(), replay.wait(), stopping.wait())}
    try:
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in waits:
            task.cancel()
    if stopping.is_set():  # Ctrl-C: the bot first, so its last checkpoint is written
        code = await terminate(bot)
        await terminate(replay)
        return code
    if bot.returncode is not None:
        await terminate(replay)
        if bot.returncode != 0:
            say(f"the bot stopped with exit code {bot.returncode} (its log above says why)")
        return bot.returncode
    if replay.returncode == 0:
        say(f"the recorded candles are used up: every file is played to its end; stopping the "
            f"bot. {RESET_HINT}.")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(bot.wait(), LAST_CANDLES_GRACE_S)
        await terminate(bot)
        return EXIT_OK
    say(f"the replay server stopped with exit code {replay.returncode}; stopping the bot")
    await terminate(bot)
    return replay.returncode or 1


def reset(data_dir: Path) -> int:
    """Remove the demo's data directory — its paper trades, checkpoint and database — after
    stopping an embedded PostgreSQL a killed bot may have left running in it."""
    say_reset = "make demo-reset:"
    if not data_dir.exists():
        print(f"{say_reset} nothing to remove: {data_dir} does not exist", file=sys.stderr)
        return EXIT_OK
    if not (data_dir / MARKER).exists():
        print(f"{say_reset} {data_dir} is not the demo's data directory (no {MARKER} in it): "
              "left alone", file=sys.stderr)
        return EXIT_USAGE
    guard = InstanceLock(data_dir / "instance.lock", HolderInfo.current("demo-reset"))
    try:
        guard.acquire()
    except InstanceAlreadyRunning as exc:
        print(f"{say_reset} the demo is running ({exc}): stop it first (Ctrl-C)",
              file=sys.stderr)
        return EXIT_RUNNING
    try:
        if (data_dir / PGDATA_DIR / "PG_VERSION").exists():
            start_embedded_postgres(data_dir).stop()  # adopts a running server, then stops it
        shutil.rmtree(data_dir)
    finally:
        guard.release()
    print(f"{say_reset} removed {data_dir} (the demo's paper trades, checkpoint and database); "
          "the next `make demo` starts at the first candle", file=sys.stderr)
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR,
                        help=f"the demo's database, lock and login (default {DEFAULT_DATA_DIR})")
    parser.add_argument("--data", type=Path, nargs="+", default=list(DEFAULT_FILES),
                        metavar="FILE", help="candle files to replay, one pair each")
    parser.add_argument("--speed", type=float, default=600.0,
                        help="replay speed: 600 plays a 5-minute candle every half second")
    parser.add_argument("--port", type=int, help="the bot's API and dashboard port (8090)")
    parser.add_argument("--reset", action="store_true",
                        help="remove the demo's data directory: the next run starts over")
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")  # the embedded server's
    if args.reset:
        return reset(args.data_dir)
    demo = prepare(args)
    if isinstance(demo, int):
        return demo
    return asyncio.run(run_demo(demo, args.speed, args.port))


if __name__ == "__main__":
    sys.exit(main())
