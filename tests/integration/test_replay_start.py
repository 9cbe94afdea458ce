"""Where a replay begins and how it ends: `start_after` puts each pair at its own first candle
after a time (how the demo resumes after the bot's last decided candle), `start_on_subscribe`
holds the clock until a client subscribes (so a bot starting after the server misses
nothing), and a replay played to its end says so (`--exit-when-done` then exits 0)."""

from __future__ import annotations

import asyncio
import bisect
import itertools
import logging
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from websockets.asyncio.client import connect

from novapulse.config import FeedConfig
from novapulse.market.candle_files import load_candles
from novapulse.market.kraken_ws import KrakenWsClient
from novapulse.market.replay_server import ReplayServer
from novapulse.models import Candle

pytestmark = pytest.mark.integration

SAMPLES = Path(__file__).resolve().parents[2] / "data" / "sample"
ETH = SAMPLES / "ETH_BTC-5m.csv.gz"
ETC = SAMPLES / "ETC_BTC-5m.csv.gz"  # one candle fewer than ETH: the files do not line up
SNAPSHOT = 20


async def until(predicate: object, within: float = 30.0) -> None:
    assert callable(predicate)
    deadline = time.monotonic() + within
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)


async def test_start_after_holds_the_clock_and_plays_each_pair_to_its_end(
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="novapulse.market.replay_server")
    files = {"ETH/BTC": load_candles(ETH), "ETC/BTC": load_candles(ETC)}
    after = files["ETH/BTC"][-150].ts + 60  # inside a candle: the next one begins after it
    server = ReplayServer([(ETH, None), (ETC, None)], speed=300_000, start_after=after,
                          start_on_subscribe=True, snapshot_size=SNAPSHOT,
                          heartbeat_interval=0.2)
    await server.start()
    try:
        starts = {pair: bisect.bisect_right([c.ts for c in candles], after)
                  for pair, candles in files.items()}
        state = server.state()
        for pair, candles in files.items():
            assert state["pairs"][pair]["ts"] == candles[starts[pair]].ts > after
        # A client connects and talks without subscribing: at a candle every millisecond the
        # clock would have moved on by now, were it not held.
        async with connect(server.url) as ws:
            await ws.recv()  # the status message
            await ws.send('{"method": "ping", "req_id": 1}')
            await ws.recv()
        assert server.step == 0

        received: list[Candle] = []
        client = KrakenWsClient(server.url, list(files), 5, received.append, FeedConfig())
        task = asyncio.create_task(client.run())
        try:
            await asyncio.wait_for(server.finished.wait(), 60)
            # every candle but each file's newest (never closed: no later one begins)
            expected = {pair: candles[starts[pair] - SNAPSHOT + 1:-1]
                        for pair, candles in files.items()}
            await until(lambda: len(received) == sum(map(len, expected.values())))
        finally:
            client.stop()
            await asyncio.wait_for(task, 5)
    finally:
        await server.stop()
    for pair, candles in expected.items():
        got = [c.ts for c in received if c.pair == pair]
        assert got == [c.ts for c in candles], pair  # from the snapshot on, none skipped
        assert all(b > a for a, b in itertools.pairwise(got))
    assert server.state()["finished"] is True
    assert "Replay finished: every candle file is played to its end" in caplog.text


def test_cli_exits_when_done_and_reads_iso_times() -> None:
    candles = load_candles(ETH)
    iso = datetime.fromtimestamp(candles[-4].ts, UTC).strftime("%Y-%m-%dT%H:%M")
    done = subprocess.run(
        [sys.executable, "-m", "novapulse.cli", "replay-server", "--data", str(ETH),
         "--speed", "30000", "--start-after", iso, "--exit-when-done"],
        capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("ws://127.0.0.1:")
    assert "Replay finished" in done.stderr

    bad = subprocess.run(
        [sys.executable, "-m", "novapulse.cli", "replay-server", "--data", str(ETH),
         "--start-after", "yesterday"], capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2
    assert "'yesterday' is neither epoch seconds nor an ISO 8601 time" in bad.stderr
