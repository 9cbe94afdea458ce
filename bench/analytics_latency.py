"""Decision-loop latency with OpenSearch analytics healthy, down and stalled, and indexing
throughput into an OpenSearch-compatible server (osmem-server on loopback).

The decision loop is the runner's: candles arrive on a queue at a fixed rate (20 pairs, like
`tick_to_decision`), each goes through `Engine.on_candle`, then to the analytics sink's
hand-off, its thoughts through the thought log's subscription — while the sink's own task
bulk-indexes on the same event loop. Latency runs from a candle's arrival on the queue to
the end of its decision and hand-off. Prints one JSON object."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import statistics
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from novapulse.analytics.sink import AnalyticsSink
from novapulse.config import AnalyticsConfig, Config
from novapulse.engine import Engine
from novapulse.execution.paper import PaperExecutor
from novapulse.market.candle_files import load_candles
from novapulse.models import Candle
from novapulse.thoughts import ThoughtLog

SAMPLE_DIR = Path(__file__).resolve().parent.parent / "data" / "sample"
WARMUP = 300


def streams(pairs: int) -> list[list[Candle]]:
    files = sorted(SAMPLE_DIR.glob("*-5m.csv.gz"))
    return [load_candles(files[i % len(files)], f"P{i:02d}/BTC") for i in range(pairs)]


@contextlib.asynccontextmanager
async def stalled_server() -> AsyncIterator[str]:
    """Accepts connections and never answers."""
    held: list[asyncio.StreamWriter] = []

    async def hold(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    try:
        yield f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    finally:
        server.close()
        for writer in held:
            writer.close()


def closed_port_url() -> str:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"  # nothing listens there once closed


async def until(condition: Callable[[], bool], within: float) -> None:
    deadline = time.monotonic() + within
    while True:
        if condition() or time.monotonic() > deadline:
            return
        await asyncio.sleep(0.005)


def p(ms: list[float], q: float) -> float:
    return round(ms[min(len(ms) - 1, int(len(ms) * q))], 4)


async def decision_loop(url: str | None, pairs: int, seconds: float,
                        rate: float) -> dict[str, Any]:
    config = Config()
    thoughts = ThoughtLog(config.dashboard.thought_feed_max, keep_unsaved=False)
    engine = Engine(config, PaperExecutor(config.trading.fee_rate, config.trading.slippage_bps),
                    thoughts)
    data = streams(pairs)
    for step in range(WARMUP):
        for candles in data:
            engine.warm_up(candles[step])
    sink = None
    task = None
    if url is not None:
        sink = AnalyticsSink(AnalyticsConfig(enabled=True, url=url, request_timeout_seconds=2.0,
                                             reconnect_max_seconds=2.0))
        thoughts.subscribe(sink.thought)
        task = asyncio.create_task(sink.run())
    queue: asyncio.Queue[tuple[Candle, float]] = asyncio.Queue()
    latencies: list[float] = []

    async def feed() -> None:
        step = WARMUP
        interval = pairs / rate
        next_at = time.perf_counter()
        while step < min(len(c) for c in data):
            for candles in data:
                queue.put_nowait((candles[step], time.perf_counter()))
            step += 1
            next_at += interval
            await asyncio.sleep(max(0.0, next_at - time.perf_counter()))

    async def decide() -> None:
        while True:
            candle, received = await queue.get()
            engine.on_candle(candle, 0.0)
            if sink is not None:
                sink.candle(candle)
            latencies.append(time.perf_counter() - received)

    feeder = asyncio.create_task(feed())
    decider = asyncio.create_task(decide())
    await asyncio.sleep(seconds)
    for t in (feeder, decider, task):
        if t is not None:
            t.cancel()
    await asyncio.gather(*(t for t in (feeder, decider, task) if t is not None),
                         return_exceptions=True)
    ms = sorted(x * 1000 for x in latencies[pairs:])
    health = sink.health() if sink is not None else None
    return {"decisions": len(latencies), "p50_ms": round(statistics.median(ms), 4),
            "p99_ms": p(ms, 0.99), "max_ms": round(ms[-1], 4),
            "analytics": None if health is None else {
                "ok": health.ok, "indexed": health.indexed, "buffered": health.buffered,
                "dropped": health.dropped, "detail": health.detail[:160]}}


async def throughput(url: str, documents: int) -> dict[str, Any]:
    sink = AnalyticsSink(AnalyticsConfig(enabled=True, url=url, batch_size=1000,
                                         buffer_maxlen=max(documents, 100),
                                         request_timeout_seconds=30.0))
    task = asyncio.create_task(sink.run())
    await until(lambda: sink.health().ok is True, 30.0)
    candles = [c for s in streams(4) for c in s][:documents]
    started = time.perf_counter()
    for candle in candles:
        sink.candle(candle)
    await until(lambda: sink.indexed + sink.rejected >= len(candles), 300.0)
    elapsed = time.perf_counter() - started
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    return {"documents": sink.indexed, "seconds": round(elapsed, 3),
            "docs_per_second": round(sink.indexed / elapsed), "batch_size": 1000}


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    from osmem_server import OsmemServer

    server = OsmemServer.start(japanese=False)
    try:
        result: dict[str, Any] = {"benchmark": "analytics_latency", "pairs": args.pairs,
                                  "candles_per_second": args.rate, "seconds": args.seconds}
        result["no_analytics"] = await decision_loop(None, args.pairs, args.seconds, args.rate)
        result["opensearch_healthy"] = await decision_loop(server.url, args.pairs,
                                                           args.seconds, args.rate)
        result["opensearch_down"] = await decision_loop(closed_port_url(), args.pairs,
                                                        args.seconds, args.rate)
        async with stalled_server() as url:
            result["opensearch_stalled"] = await decision_loop(url, args.pairs, args.seconds,
                                                               args.rate)
        result["indexing"] = await throughput(server.url, args.documents)
        return result
    finally:
        server.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pairs", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--rate", type=float, default=200.0, help="candles per second fed")
    parser.add_argument("--documents", type=int, default=20_000)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(main_async(args)), indent=2))


if __name__ == "__main__":
    main()
