"""Tick-to-decision latency with 20 pairs on the replay feed.

The real client reads the replay server over a loopback WebSocket; each closed candle goes
through the same queue and `Engine.on_candle` as `novapulse run`. Latency runs from the moment
the frame that closes a candle is handed to the client's parser to the end of the decision.
Prints one JSON object."""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from pathlib import Path

from novapulse.config import Config
from novapulse.engine import Engine
from novapulse.execution.paper import PaperExecutor
from novapulse.market.kraken_ws import KrakenWsClient
from novapulse.market.replay_server import ReplayServer
from novapulse.models import Candle
from novapulse.thoughts import ThoughtLog

SAMPLE_DIR = Path(__file__).resolve().parent.parent / "data" / "sample"


class TimedClient(KrakenWsClient):
    """Notes when each frame reaches the parser, so latency includes parsing and closing."""

    frame_received = 0.0

    def _handle_frame(self, frame: str | bytes) -> None:
        self.frame_received = time.perf_counter()
        super()._handle_frame(frame)


def sources(pairs: int) -> list[tuple[Path, str | None]]:
    files = sorted(SAMPLE_DIR.glob("*-5m.csv.gz"))
    out: list[tuple[Path, str | None]] = []
    for i in range(pairs):
        path = files[i % len(files)]
        out.append((path, f"P{i:02d}/BTC"))
    return out


async def measure(pairs: int, seconds: float, speed: float) -> dict[str, object]:
    config = Config()
    server = ReplayServer(sources(pairs), speed=speed, start_index=300, snapshot_size=300,
                          heartbeat_interval=1.0)
    await server.start()
    engine = Engine(config, PaperExecutor(config.trading.fee_rate, config.trading.slippage_bps),
                    ThoughtLog(config.dashboard.thought_feed_max, keep_unsaved=False))
    queue: asyncio.Queue[tuple[Candle, bool, float]] = asyncio.Queue()
    client: TimedClient

    def on_candle(candle: Candle) -> None:
        queue.put_nowait((candle, client.is_history(candle), client.frame_received))

    client = TimedClient(server.url, server.pairs, 5, on_candle, config.feed)
    latencies: list[float] = []
    decisions = 0

    async def decide() -> None:
        nonlocal decisions
        while True:
            candle, history, received = await queue.get()
            if history:
                engine.warm_up(candle)
                continue
            engine.on_candle(candle)
            latencies.append(time.perf_counter() - received)
            decisions += 1

    feed = asyncio.create_task(client.run())
    decider = asyncio.create_task(decide())
    await asyncio.sleep(seconds)
    client.stop()
    decider.cancel()
    await asyncio.gather(feed, decider, return_exceptions=True)
    await server.stop()
    ms = sorted(x * 1000 for x in latencies[pairs:])  # skip the first step's cold caches
    if not ms:
        raise SystemExit("no decisions measured: the feed produced no closed candles")
    return {
        "benchmark": "tick_to_decision",
        "pairs": pairs,
        "candles_per_second_fed": round(pairs * speed / 300, 1),
        "decisions": decisions,
        "p50_ms": round(statistics.median(ms), 4),
        "p99_ms": round(ms[int(len(ms) * 0.99) - 1], 4),
        "max_ms": round(ms[-1], 4),
        "aim_p99_ms": 1.0,  # the floor that must not regress
        "trades_opened": engine.closed_count + len(engine.positions),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pairs", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--speed", type=float, default=3000.0,
                        help="3000: each pair closes a 5-minute candle every 100 ms")
    args = parser.parse_args()
    print(json.dumps(asyncio.run(measure(args.pairs, args.seconds, args.speed)), indent=2))


if __name__ == "__main__":
    main()
