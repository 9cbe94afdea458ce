"""The Kraken WS client against the replay server over real sockets, with runbook-2 faults."""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import signal
import sys
import time
import urllib.request
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from websockets.asyncio.server import ServerConnection, serve

from novapulse.config import FeedConfig
from novapulse.market import kraken_protocol as kp
from novapulse.market.candle_files import load_candles
from novapulse.market.kraken_ws import KrakenWsClient
from novapulse.market.replay_server import FaultSpecError, ReplayServer, parse_fault_schedule
from novapulse.models import Candle

pytestmark = pytest.mark.integration

DATA = Path(__file__).resolve().parents[2] / "data" / "sample"
ETH = DATA / "ETH_BTC-5m.csv.gz"
SPEED = 3000.0  # 5-minute candles -> one step every 0.1 s
CONFIG = FeedConfig(
    heartbeat_timeout_seconds=0.4,
    reconnect_initial_seconds=0.1,
    reconnect_max_seconds=2.0,
    backoff_1013_seconds=0.3,
)


async def eventually(predicate: Callable[[], bool], within: float = 5.0) -> None:
    deadline = time.monotonic() + within
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)


class Feed:
    """A running client and what it handed over."""

    def __init__(self, url: str, pairs: list[str], **kwargs: object) -> None:
        self.candles: list[Candle] = []
        self.client = KrakenWsClient(
            url, pairs, 5, self.candles.append, CONFIG, rng=lambda: 0.5, **kwargs  # type: ignore[arg-type]
        )
        self.task = asyncio.create_task(self.client.run())

    def of(self, pair: str) -> list[Candle]:
        return [c for c in self.candles if c.pair == pair]

    async def close(self) -> None:
        self.client.stop()
        await asyncio.wait_for(self.task, 5)


@pytest.fixture
async def server() -> AsyncIterator[ReplayServer]:
    replay = ReplayServer([(ETH, None), (ETH, "ALT/BTC")], speed=SPEED, start_index=100,
                          snapshot_size=20, heartbeat_interval=0.1)
    await replay.start()
    yield replay
    await replay.stop()


def assert_clean_sequence(candles: list[Candle], file_candles: list[Candle]) -> None:
    """Strictly increasing, consecutive and equal to the file, value for value."""
    by_ts = {c.ts: c for c in file_candles}
    assert candles, "no candles"
    for previous, current in itertools.pairwise(candles):
        assert current.ts == previous.ts + 300, (previous.ts, current.ts)
    for candle in candles:
        expected = by_ts[candle.ts]
        assert (candle.open, candle.high, candle.low, candle.close, candle.volume) == (
            expected.open, expected.high, expected.low, expected.close, expected.volume)


async def test_closed_candles_arrive_in_order_with_the_files_values(server: ReplayServer) -> None:
    feed = Feed(server.url, ["ETH/BTC", "ALT/BTC"])
    await eventually(lambda: len(feed.of("ALT/BTC")) >= 25)
    await feed.close()
    file_candles = load_candles(ETH)
    eth = feed.of("ETH/BTC")
    assert_clean_sequence(eth, file_candles)
    assert eth[0].ts == file_candles[100 - 19].ts  # the snapshot's oldest candle
    assert [c.ts for c in feed.of("ALT/BTC")][:20] == [c.ts for c in eth][:20]
    health = feed.client.health
    assert health.candles_emitted == len(feed.candles) and health.gaps == 0
    assert health.data_age("ETH/BTC", time.time()) is not None
    assert health.data_age("NOPE/BTC", time.time()) is None


async def test_drops_reconnect_with_growing_spacing_and_resubscribe(
    server: ReplayServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    feed = Feed(server.url, ["ETH/BTC"])
    health = feed.client.health
    await eventually(lambda: health.ws_connected and len(feed.candles) >= 3)
    spacings = []
    for attempt in range(1, 4):
        dropped_at = time.monotonic()
        server.drop_connections()
        await eventually(lambda: not health.ws_connected, 1.0)
        assert health.down_for(time.time()) >= 0.0 and health.last_close_code == 1006
        await eventually(lambda a=attempt: health.connects == a + 1)  # type: ignore[misc]
        spacings.append(time.monotonic() - dropped_at)
        assert health.ws_connected and health.down_for(time.time()) == 0.0
        await eventually(lambda: server.subscribe_requests == health.connects)
    count = len(feed.candles)
    await eventually(lambda: len(feed.candles) >= count + 3)
    await feed.close()
    assert spacings[0] < spacings[1] < spacings[2], spacings
    assert health.reconnects == 3
    assert_clean_sequence(feed.candles, load_candles(ETH))
    assert "WebSocket disconnected" in caplog.text


async def test_close_1013_backs_off_longer(
    server: ReplayServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    feed = Feed(server.url, ["ETH/BTC"])
    health = feed.client.health
    await eventually(lambda: health.ws_connected and len(feed.candles) >= 2)
    closed_at = time.monotonic()
    await server.close_all(1013, "Market data unavailable")
    await eventually(lambda: health.connects == 2)
    waited = time.monotonic() - closed_at
    assert health.last_close_code == 1013
    count = len(feed.candles)
    await eventually(lambda: len(feed.candles) >= count + 2)
    await feed.close()
    assert waited >= CONFIG.backoff_1013_seconds
    assert "Kraken WS 1013" in caplog.text
    assert_clean_sequence(feed.candles, load_candles(ETH))


async def test_silence_beyond_the_heartbeat_timeout_reconnects_and_recovers(
    server: ReplayServer,
) -> None:
    feed = Feed(server.url, ["ETH/BTC"])
    health = feed.client.health
    await eventually(lambda: health.ws_connected and len(feed.candles) >= 2)
    server.go_silent(0.8)
    await eventually(lambda: health.connects >= 2, 3.0)
    assert "heartbeat" in (health.last_error or "")
    count = len(feed.candles)
    await eventually(lambda: len(feed.candles) >= count + 10, 5.0)
    await feed.close()
    # Candles sent while silent come back in the snapshot: no gap, no duplicate.
    assert_clean_sequence(feed.candles, load_candles(ETH))
    assert health.gaps == 0
    assert server.subscribe_requests == health.connects


async def test_gap_is_logged_and_the_feed_continues(
    server: ReplayServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    feed = Feed(server.url, ["ETH/BTC"])
    await eventually(lambda: len(feed.candles) >= 3)
    server.skip(5)
    await eventually(lambda: feed.client.health.gaps == 1)
    count = len(feed.candles)
    await eventually(lambda: len(feed.candles) >= count + 3)
    await feed.close()
    assert "Gap in ETH/BTC candles: 5 missing" in caplog.text
    steps = {b.ts - a.ts for a, b in itertools.pairwise(feed.candles)}
    assert steps == {300, 6 * 300}


async def test_refused_connections_keep_the_feed_down_then_it_recovers(
    server: ReplayServer,
) -> None:
    feed = Feed(server.url, ["ETH/BTC"])
    health = feed.client.health
    await eventually(lambda: health.ws_connected)
    server.refuse_connections(0.6)
    server.drop_connections()
    await asyncio.sleep(0.4)
    assert not health.ws_connected and health.down_for(time.time()) >= 0.3
    assert "503" in (health.last_error or "")
    await eventually(lambda: health.ws_connected, 5.0)
    await feed.close()


async def test_never_connected_feed_counts_as_down() -> None:
    feed = Feed("ws://127.0.0.1:9/v2", ["ETH/BTC"])
    await asyncio.sleep(0.3)
    health = feed.client.health
    assert not health.ws_connected and health.connects == 0
    assert health.down_for(time.time()) >= 0.25
    await feed.close()


async def test_malformed_frames_and_a_failing_callback_do_not_stop_the_feed(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING)

    def candle(ts: int) -> Candle:
        return Candle("ETH/BTC", ts, 1.0, 2.0, 0.5, 1.5, 10.0, 300)

    async def garbage_server(ws: ServerConnection) -> None:
        await ws.recv()
        await ws.send(kp.ohlc_message([candle(0)], snapshot=True, now=0))
        await ws.send("{not json")
        await ws.send(kp.ohlc_message([candle(300)], snapshot=False, now=0).replace("1.5", "NaN"))
        for ts in (300, 600, 900):
            await ws.send(kp.ohlc_message([candle(ts)], snapshot=False, now=0))
        await ws.wait_closed()

    received: list[Candle] = []

    def on_candle(c: Candle) -> None:
        received.append(c)
        if c.ts == 0:
            raise RuntimeError("strategy blew up")

    async with serve(garbage_server, "127.0.0.1", 0) as garbage:
        port = next(iter(garbage.sockets)).getsockname()[1]
        client = KrakenWsClient(f"ws://127.0.0.1:{port}", ["ETH/BTC"], 5, on_candle, CONFIG)
        task = asyncio.create_task(client.run())
        await eventually(lambda: len(received) == 3)
        client.stop()
        await asyncio.wait_for(task, 5)
    assert [c.ts for c in received] == [0, 300, 600]
    assert client.health.malformed_messages == 2 and client.health.connects == 1
    assert "Skipping malformed Kraken WS message (not JSON" in caplog.text
    assert "on_candle failed" in caplog.text


async def test_unknown_pair_gets_an_error_ack(
    server: ReplayServer, caplog: pytest.LogCaptureFixture
) -> None:
    feed = Feed(server.url, ["ETH/BTC", "NOPE/BTC"])
    await eventually(lambda: feed.client.health.subscribe_errors == 1 and len(feed.candles) >= 2)
    await feed.close()
    assert "Currency pair not supported NOPE/BTC" in caplog.text


def http(url: str, body: dict[str, object] | None = None) -> tuple[int, dict[str, object]]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method="POST" if body is not None else "GET")
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


async def test_http_control_triggers_faults(server: ReplayServer) -> None:
    feed = Feed(server.url, ["ETH/BTC"])
    await eventually(lambda: len(feed.candles) >= 2)
    base = f"http://127.0.0.1:{server.port}/control"
    status, state = await asyncio.to_thread(http, f"{base}/state")
    assert status == 200 and state["connections"] == 1 and "ETH/BTC" in state["pairs"]  # type: ignore[operator]
    status, answer = await asyncio.to_thread(http, f"{base}/fault", {"kind": "gap", "steps": 4})
    assert status == 200 and answer["ok"] is True
    await eventually(lambda: feed.client.health.gaps == 1)
    status, _ = await asyncio.to_thread(http, f"{base}/fault", {"kind": "drop"})
    await eventually(lambda: feed.client.health.connects == 2)
    status, answer = await asyncio.to_thread(http, f"{base}/fault", {"kind": "meteor"})
    assert status == 400 and "meteor" in str(answer["error"])
    await feed.close()


async def test_scheduled_faults_fire_at_their_step() -> None:
    replay = ReplayServer([(ETH, None)], speed=SPEED, faults="drop@5,gap@8:3")
    await replay.start()
    feed = Feed(replay.url, ["ETH/BTC"])
    try:
        await eventually(lambda: feed.client.health.gaps == 1 and feed.client.health.connects == 2)
        assert replay.state()["pending_faults"] == []
    finally:
        await feed.close()
        await replay.stop()


def test_fault_schedule_parsing() -> None:
    faults = parse_fault_schedule("gap@400:5, drop@100,1013@200,silence@300:8")
    assert [(f.step, f.kind, f.amount) for f in faults] == [
        (100, "drop", None), (200, "1013", None), (300, "silence", 8.0), (400, "gap", 5.0)]
    for bad in ("boom@1", "drop", "drop@x", "gap@-1:2"):
        with pytest.raises(FaultSpecError):
            parse_fault_schedule(bad)


async def test_loop_restarts_with_increasing_timestamps(tmp_path: Path) -> None:
    short = tmp_path / "ETH_BTC-5m.csv"
    short.write_text("timestamp_ms,open,high,low,close,volume\n" + "".join(
        f"{(1_700_000_000 + i * 300) * 1000},1,2,0.5,1.5,{i + 1}\n" for i in range(4)))
    replay = ReplayServer([(short, None)], speed=SPEED, loop=True)
    await replay.start()
    feed = Feed(replay.url, ["ETH/BTC"])
    try:
        await eventually(lambda: len(feed.candles) >= 9)
    finally:
        await feed.close()
        await replay.stop()
    timestamps = [c.ts for c in feed.candles]
    assert timestamps == list(range(timestamps[0], timestamps[0] + 300 * len(timestamps), 300))
    assert [c.volume for c in feed.candles[:6]] == [1, 2, 3, 4, 1, 2]


async def test_replay_cli_serves_until_sigterm() -> None:
    code = (
        "import argparse, sys\n"
        "from novapulse.market import replay_cli\n"
        "parser = argparse.ArgumentParser()\n"
        "replay_cli.register(parser.add_subparsers())\n"
        "args = parser.parse_args(sys.argv[1:])\n"
        "sys.exit(args.func(args))\n"
    )
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", code, "replay-server", "--data", f"{ETH}=ALT/BTC",
        "--port", "0", "--speed", str(SPEED), stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert process.stdout is not None
        url = (await asyncio.wait_for(process.stdout.readline(), 10)).decode().strip()
        assert url.startswith("ws://127.0.0.1:")
        feed = Feed(url, ["ALT/BTC"])
        await eventually(lambda: len(feed.candles) >= 2)
        await feed.close()
        process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), 10) == 0
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def test_snapshot_backlog_is_history_and_live_candles_are_not() -> None:
    """After a (re)connect Kraken replays recent candles: the bot must warm up on them, not
    trade them. Only the candle that has just closed counts as live."""
    replay = ReplayServer([(ETH, None)], speed=SPEED, start_index=200, snapshot_size=60)
    await replay.start()
    seen: list[tuple[int, bool]] = []
    client: KrakenWsClient | None = None

    def record(candle: Candle) -> None:
        assert client is not None
        seen.append((candle.ts, client.is_history(candle)))

    client = KrakenWsClient(replay.url, ["ETH/BTC"], 5, record, CONFIG, rng=lambda: 0.5)
    task = asyncio.create_task(client.run())
    try:
        await eventually(lambda: sum(not h for _, h in seen) >= 5)
    finally:
        client.stop()
        await asyncio.wait_for(task, 5)
        await replay.stop()
    history = [ts for ts, h in seen if h]
    live = [ts for ts, h in seen if not h]
    assert len(history) >= 55
    assert max(history) < min(live)
    assert all(b - a == 300 for a, b in itertools.pairwise(live))



async def test_replayed_updates_carry_market_time_so_a_just_closed_candle_is_fresh(
        server: ReplayServer) -> None:
    lags: list[float] = []
    feed = Feed(server.url, ["ETH/BTC"])

    def record(candle: Candle) -> None:
        if not feed.client.is_history(candle):
            lags.append(feed.client.market_lag(candle))

    feed.client._on_candle = record  # what the bot's runner reads for each candle it decides on
    await eventually(lambda: len(lags) >= 5)
    await feed.close()
    # At 3000x, wall-clock ages would be meaningless; in market time each candle closed on time.
    assert lags[:5] == [0.0] * 5
