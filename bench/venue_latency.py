"""Submit → acknowledged latency of the Kraken venue against the Kraken REST emulator on loopback.

Each order is a market order through `KrakenVenue.submit`: rounding and minimum checks, the
client-side rate limiter's bookkeeping, ccxt's signing, one HTTP round trip to the emulator
(which checks the signature and fills the order) and the parse of its answer. ~200 orders in
a burst would hit Kraken's per-pair matching-engine limit, so the limiter's waits are recorded
rather than slept (`rate_limited_burst_s`: how long it would spread the burst over): they are
Kraken's limits, not the venue's latency. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import statistics
import time
import uuid
from decimal import Decimal
from pathlib import Path

from novapulse.emulators.kraken_rest import KrakenRestEmulator
from novapulse.execution.kraken import KrakenVenue
from novapulse.execution.venue import OrderIntent, OrderState
from novapulse.market.candle_files import load_candles
from novapulse.models import OrderKind, Side

SAMPLE = Path(__file__).resolve().parent.parent / "data" / "sample" / "ETH_BTC-5m.csv.gz"
KEY = "bench-key"
SECRET = base64.b64encode(b"bench secret for the emulated Kraken account").decode()


def percentile(samples: list[float], pct: float) -> float:
    ordered = sorted(samples)
    index = min(len(ordered) - 1, max(0, round(pct / 100 * len(ordered)) - 1))
    return ordered[index]


async def measure(orders: int, warmup: int) -> dict[str, object]:
    candles = load_candles(SAMPLE)
    now = candles[-1].ts + 120
    price = candles[-1].close
    emulator = KrakenRestEmulator([(SAMPLE, None)], now=lambda: now, api_key=KEY,
                                  api_secret=SECRET,
                                  balances={"BTC": Decimal(1000), "ETH": Decimal(0)})
    await emulator.start()
    waits: list[float] = []

    async def record_wait(seconds: float) -> None:
        waits.append(seconds)

    venue = KrakenVenue(KEY, SECRET, rest_url=emulator.url, rate_limit_per_second=50.0,
                        sleep=record_wait)
    latencies_ms: list[float] = []
    try:
        await venue.load_markets()
        for i in range(warmup + orders):
            intent = OrderIntent(client_order_id=str(uuid.uuid4()), trade_id=f"bench-{i}",
                                 pair="ETH/BTC", side=Side.BUY, kind=OrderKind.ENTRY,
                                 quantity=0.05, price=price, ts=float(now))
            started = time.perf_counter()
            report = await venue.submit(intent)
            elapsed = (time.perf_counter() - started) * 1000
            if report.state is not OrderState.ACKNOWLEDGED:
                raise RuntimeError(f"order {i} not acknowledged: {report}")
            if i >= warmup:
                latencies_ms.append(elapsed)
        placed = len(emulator.orders())
    finally:
        await venue.close()
        await emulator.stop()
    return {
        "benchmark": "venue_submit_to_ack_latency",
        "venue": "kraken (ccxt async) -> Kraken REST emulator, loopback",
        "orders": orders,
        "orders_on_exchange": placed,
        "p50_ms": round(statistics.median(latencies_ms), 3),
        "p99_ms": round(percentile(latencies_ms, 99), 3),
        "max_ms": round(max(latencies_ms), 3),
        "mean_ms": round(statistics.fmean(latencies_ms), 3),
        "rate_limited_burst_s": round(max(waits, default=0.0), 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=10)
    args = parser.parse_args()
    if args.orders < 1 or args.warmup < 0:
        parser.error("--orders must be at least 1 and --warmup at least 0")
    print(json.dumps(asyncio.run(measure(args.orders, args.warmup))))


if __name__ == "__main__":
    main()
