"""Operator scale bench: CR creation → all children present, and the operator's memory.

The operator runs as its own process (`python -m novapulse_operator.cli run --standalone`),
logging in through a KUBECONFIG that points at kmock's Kubernetes emulator, which runs on a
thread of this process. Prints one JSON object.

    python bench/operator_scale.py [--first 200] [--total 1000] [--concurrency 20]

Latency is measured for the first batch (created as a burst with bounded concurrency, so it
includes queueing in the operator); memory is the operator's RSS with `--first` and with
`--total` TradingBots reconciled. The emulator scans all objects on every request, so
the absolute latency is the emulator's as much as the operator's.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.integration.operator.emulator import EmulatorThread  # noqa: E402

BOTS = "/apis/novapulse.io/v1alpha1/namespaces/bench/tradingbots"
DEPLOYMENTS = "/apis/apps/v1/namespaces/bench/deployments"
CHILD_LISTS = [
    *(f"/api/v1/namespaces/bench/{plural}" for plural in (
        "configmaps", "services", "serviceaccounts", "persistentvolumeclaims", "secrets")),
    "/apis/networking.k8s.io/v1/namespaces/bench/networkpolicies",
    DEPLOYMENTS,
]


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    return float("nan")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return round(ordered[index] * 1000, 1)


EMULATOR: EmulatorThread | None = None


async def names(http: aiohttp.ClientSession, path: str) -> set[str]:
    """Names of the objects listed at `path`, read from the emulator's memory (a list over
    HTTP of 1,000 Deployments every 50 ms would load the emulator more than the operator)."""
    assert EMULATOR is not None
    plural = path.rsplit("/", 1)[-1]
    emulator = EMULATOR

    async def collect() -> set[str]:
        return {name for (res, _, name), obj in list(emulator.emulator.objects.items())
                if res.plural == plural and not obj.deleted}

    future = asyncio.run_coroutine_threadsafe(collect(), emulator.loop)
    return await asyncio.wrap_future(future)


async def create_and_wait(http: aiohttp.ClientSession, start: int, count: int,
                          concurrency: int, within: float) -> dict[str, float]:
    """Create bots start..start+count; return name → seconds until its Deployment showed."""
    created: dict[str, float] = {}
    done: dict[str, float] = {}
    gate = asyncio.Semaphore(concurrency)

    async def create(i: int) -> None:
        name = f"bot-{i:05d}"
        body = {"apiVersion": "novapulse.io/v1alpha1", "kind": "TradingBot",
                "metadata": {"name": name, "namespace": "bench"},
                "spec": {"mode": "paper", "config": {"risk": {"risk_per_trade_pct": 1}}}}
        async with gate:
            created[name] = time.monotonic()
            async with http.post(BOTS, json=body) as resp:
                resp.raise_for_status()

    async def watch() -> None:
        deadline = time.monotonic() + within
        while len(done) < count and time.monotonic() < deadline:
            seen = await names(http, DEPLOYMENTS)
            now = time.monotonic()
            for name in seen:
                if name in created and name not in done:
                    done[name] = now - created[name]
            await asyncio.sleep(0.1)

    watcher = asyncio.create_task(watch())
    await asyncio.gather(*(create(i) for i in range(start, start + count)))
    await watcher
    return done


async def all_children_present(http: aiohttp.ClientSession, total: int) -> bool:
    for path in CHILD_LISTS:
        if len(await names(http, path)) < total:
            return False
    return True


async def run(first: int, total: int, concurrency: int) -> dict[str, Any]:
    global EMULATOR
    emulator = EMULATOR = EmulatorThread()
    emulator.start()
    with tempfile.TemporaryDirectory() as tmp:
        kubeconfig = Path(tmp) / "kubeconfig"
        kubeconfig.write_text(yaml.safe_dump({
            "apiVersion": "v1", "kind": "Config", "current-context": "e",
            "clusters": [{"name": "e", "cluster": {"server": emulator.url}}],
            "users": [{"name": "u", "user": {"token": "bench"}}],
            "contexts": [{"name": "e", "context": {"cluster": "e", "user": "u"}}]}))
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "novapulse_operator.cli", "run", "--standalone",
            "--metrics-port", "0", "--liveness", "", "--resync-seconds", "3600",
            env={**os.environ, "KUBECONFIG": str(kubeconfig)},
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
        try:
            async with aiohttp.ClientSession(emulator.url) as http:
                await asyncio.sleep(2)
                idle = rss_mib(proc.pid)
                started = time.monotonic()
                latencies = await create_and_wait(http, 0, first, concurrency, 600)
                first_wall = time.monotonic() - started
                complete_first = await all_children_present(http, first)
                rss_first = rss_mib(proc.pid)
                rest = await create_and_wait(http, first, total - first, concurrency, 1800)
                complete_total = await all_children_present(http, total)
                await asyncio.sleep(2)
                rss_total = rss_mib(proc.pid)
        finally:
            proc.terminate()
            await asyncio.wait_for(proc.wait(), 30)
            emulator.stop()
    values = list(latencies.values())
    return {
        "bench": "operator_scale",
        "tradingbots_timed": first,
        "reconciled": len(values),
        "creation_to_children_ms": {
            "p50": percentile(values, 0.50),
            "p99": percentile(values, 0.99),
            "max": percentile(values, 1.0),
            "mean": round(statistics.fmean(values) * 1000, 1) if values else None,
        },
        "burst_wall_s": round(first_wall, 2),
        "burst_concurrency": concurrency,
        "all_children_present": {str(first): complete_first, str(total): complete_total},
        "operator_rss_mib": {"idle": idle, str(first): rss_first, str(total): rss_total},
        "reconciled_after_first": len(rest),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--first", type=int, default=200)
    parser.add_argument("--total", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=20)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(run(args.first, args.total, args.concurrency)), indent=2))


if __name__ == "__main__":
    main()
