"""`make demo`'s local demo, as a user runs it: `scripts/demo.sh` (NOVAPULSE_DEMO=local) starts
the replay server and the bot (real sockets, the bot's embedded PostgreSQL in the demo's data
directory), Ctrl-C stops it. A second run continues after the last candle the first decided
on, at once, without replaying any candle before it; when the recorded candles are used up the
demo says so and how to start over, and `--reset` (`make demo-reset`) starts it over."""

from __future__ import annotations

import asyncio
import gzip
import os
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

from novapulse.store.embedded import start_embedded_postgres
from novapulse.store.postgres import Store
from support.bot_env import free_port

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "scripts" / "demo.sh"
SAMPLES = ROOT / "data" / "sample"
PAIRS = ("ETH/BTC", "LTC/BTC", "XMR/BTC")  # the demo's default files
INTERVAL = 300
ADMIN_KEY = "demo-admin-Zq8vN3kL1pX7rT5wB2mC9dF4"
T = TypeVar("T")


@pytest.fixture
def data_dir() -> Iterator[Path]:
    # Not under pytest's basetemp: as root the embedded server runs as another user (see
    # tests/conftest.py).
    base = Path(tempfile.mkdtemp(prefix="novapulse-demo-"))
    try:
        yield base / "demo"
    finally:
        shutil.rmtree(base, ignore_errors=True)


class Demo:
    """One `scripts/demo.sh` run in its own process group, as a terminal runs it."""

    def __init__(self, proc: asyncio.subprocess.Process, log_path: Path, port: int) -> None:
        self.proc = proc
        self.log_path = log_path
        self.url = f"http://127.0.0.1:{port}"

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    async def prices(self) -> dict[str, list[int]]:
        """The candles the bot has decided on this run, per pair: their start times."""
        async with httpx.AsyncClient(base_url=self.url, timeout=10) as client:
            answer = await client.get("/api/v1/prices", headers={"X-API-Key": ADMIN_KEY})
        answer.raise_for_status()
        pairs: dict[str, list[list[float]]] = answer.json()["pairs"]
        return {pair: [int(close_ts) - INTERVAL for close_ts, _ in points]
                for pair, points in pairs.items()}

    async def ctrl_c(self, within_s: float = 60.0) -> int:
        """SIGINT to the whole process group, as Ctrl-C in a terminal, then the exit code."""
        if self.proc.returncode is None:
            os.killpg(self.proc.pid, signal.SIGINT)
        return await asyncio.wait_for(self.proc.wait(), within_s)

    async def finished(self, within_s: float) -> int:
        try:
            return await asyncio.wait_for(self.proc.wait(), within_s)
        except TimeoutError:
            await self.ctrl_c()
            raise AssertionError(f"the demo did not end:\n{self.output()[-3000:]}") from None


async def start_demo(data_dir: Path, log_path: Path, speed: float, *extra: str,
                     **env_extra: str) -> Demo:
    port = free_port()
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("NOVAPULSE__", "DASHBOARD_")) and k != "DATABASE_URL"}
    env.update({"NOVAPULSE_DEMO": "local", "NOVAPULSE_PYTHON": sys.executable,
                "SPEED": str(speed), "DASHBOARD_ADMIN_KEY": ADMIN_KEY, **env_extra})
    with log_path.open("ab") as handle:
        proc = await asyncio.create_subprocess_exec(
            "bash", str(DEMO), "--data-dir", str(data_dir), "--port", str(port), *extra,
            env=env, stdout=handle, stderr=handle, start_new_session=True)
    return Demo(proc, log_path, port)


async def wait_for(condition: Callable[[], Awaitable[T | None]], within_s: float,
                   demo: Demo, what: str) -> T:
    """Poll `condition` until it returns something other than None (or the demo ends)."""
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        if demo.proc.returncode is not None:
            break
        try:
            value = await condition()
        except httpx.TransportError:  # the API is not up yet
            value = None
        if value is not None:
            return value
        await asyncio.sleep(0.2)
    await demo.ctrl_c()
    raise AssertionError(f"{what} (waited {within_s:.0f}s):\n{demo.output()[-4000:]}")


def last_decided(data_dir: Path) -> dict[str, int]:
    """The last candle decided on per pair, from the bot's checkpoint in the demo's database."""
    async def read() -> dict[str, Any] | None:
        server = await asyncio.to_thread(start_embedded_postgres, data_dir)
        try:
            store = await Store.connect(server.dsn, identity="default")
            try:
                return await store.load_checkpoint()
            finally:
                await store.close()
        finally:
            await asyncio.to_thread(server.stop)

    checkpoint = asyncio.run(read())
    assert checkpoint is not None, "the first run left no checkpoint"
    return {pair: int(ts) for pair, ts in checkpoint["last_candle_ts"].items()}


async def test_a_second_demo_continues_where_the_first_stopped(data_dir: Path) -> None:
    log_path = data_dir.parent / "demo.log"
    first = await start_demo(data_dir, log_path, 6_000)  # 20 candles a second
    try:
        async def decided_150_each() -> dict[str, list[int]] | None:
            seen = await first.prices()
            return seen if all(len(seen.get(p, [])) >= 150 for p in PAIRS) else None

        await wait_for(decided_150_each, 90, first, "the first run never decided 150 candles")
    finally:
        assert await first.ctrl_c() == 0, first.output()[-3000:]
    assert "a fresh start" in first.output()

    stopped_at = await asyncio.to_thread(last_decided, data_dir)
    resume = min(stopped_at[p] for p in PAIRS)
    log_path.write_text("")
    # At 300x a candle a second: replaying the first run's 150+ candles again would take
    # minutes before anything new could be decided.
    second = await start_demo(data_dir, log_path, 300)
    started = time.monotonic()
    try:
        async def new_candle_each() -> dict[str, list[int]] | None:
            seen = await second.prices()
            new = all(any(ts > stopped_at[p] for ts in seen.get(p, [])) for p in PAIRS)
            return seen if new else None

        seen = await wait_for(new_candle_each, 60, second,
                              "the second run decided no new candle")
        elapsed = time.monotonic() - started
    finally:
        assert await second.ctrl_c() == 0, second.output()[-3000:]
    output = second.output()
    assert "make demo: continuing after the last candle decided on" in output, output[-3000:]
    assert "make demo-reset" in output
    for pair in PAIRS:
        # Nothing before where the first run stopped comes again; the first new candle is
        # the one right after the last decided on: none skipped.
        assert min(seen[pair]) >= resume, (pair, seen[pair][:5], resume)
        first_new = min(ts for ts in seen[pair] if ts > stopped_at[pair])
        assert first_new == stopped_at[pair] + INTERVAL, (pair, first_new, stopped_at[pair])
    print(f"second run: a new candle for every pair {elapsed:.1f}s after `make demo`")
    after = await asyncio.to_thread(last_decided, data_dir)
    assert all(after[p] > stopped_at[p] for p in PAIRS)


def short_files(directory: Path, candles: int) -> list[Path]:
    """The first `candles` candles of two sample files, under the names that give the pairs."""
    directory.mkdir(parents=True, exist_ok=True)
    files = []
    for name in ("ETH_BTC-5m.csv.gz", "LTC_BTC-5m.csv.gz"):
        with gzip.open(SAMPLES / name, "rt") as source:
            lines = [next(source) for _ in range(candles + 1)]  # with the header
        path = directory / name
        with gzip.open(path, "wt") as target:
            target.writelines(lines)
        files.append(path)
    return files


async def test_used_up_data_is_announced_and_reset_starts_over(data_dir: Path) -> None:
    files = [str(p) for p in short_files(data_dir.parent / "candles", 130)]
    warmup = {"NOVAPULSE__TRADING__WARMUP_BARS": "50"}
    log_path = data_dir.parent / "demo.log"

    demo = await start_demo(data_dir, log_path, 3_000, "--data", *files, **warmup)
    assert await demo.finished(90) == 0
    output = demo.output()
    assert "a fresh start: 50 candles warm the indicators" in output, output[-3000:]
    assert "make demo: the recorded candles are used up" in output, output[-3000:]
    assert "`make demo-reset` starts over" in output

    log_path.write_text("")
    again = await start_demo(data_dir, log_path, 3_000, "--data", *files, **warmup)
    assert await again.finished(60) == 0
    output = again.output()
    assert "make demo: the recorded candles are used up" in output, output[-3000:]
    assert "`make demo-reset` starts over" in output
    assert "Replay server on" not in output and "API listening" not in output  # nothing ran

    stranger = data_dir.parent / "not-the-demo"
    stranger.mkdir()
    refused = await asyncio.create_subprocess_exec(
        sys.executable, str(ROOT / "scripts" / "local_demo.py"), "--reset", "--data-dir",
        str(stranger), stderr=asyncio.subprocess.PIPE)
    _, err = await refused.communicate()
    assert refused.returncode == 2 and stranger.is_dir(), err.decode()

    reset = await asyncio.create_subprocess_exec(
        sys.executable, str(ROOT / "scripts" / "local_demo.py"), "--reset", "--data-dir",
        str(data_dir), stderr=asyncio.subprocess.PIPE)
    _, err = await reset.communicate()
    assert reset.returncode == 0, err.decode()
    assert "the next `make demo` starts at the first candle" in err.decode()
    assert not await asyncio.to_thread(data_dir.exists)

    log_path.write_text("")
    fresh = await start_demo(data_dir, log_path, 3_000, "--data", *files, **warmup)
    assert await fresh.finished(90) == 0
    output = fresh.output()
    assert "a fresh start" in output and "the recorded candles are used up" in output, \
        output[-3000:]
