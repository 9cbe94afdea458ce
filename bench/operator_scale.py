"""Operator scale bench on a real API server: 1,000 TradingBots created at once.

Real parts: kube-apiserver + kube-controller-manager + etcd (envtest, `KUBEBUILDER_ASSETS`,
see `make envtest`) and the operator as its own process (`novapulse-operator run`, kopf),
with its auto-pilot polling every bot (its defaults). Prints one JSON object; without
KUBEBUILDER_ASSETS one JSON line saying the bench was skipped and why (exit 0).

    python bench/operator_scale.py [--bots 1000] [--concurrency 32] [--idle-seconds 20]
                                   [--answering-bots]

1. The API server's write floor, measured in the same run, two ways:
   - as many small ConfigMaps as the operator will write children, created as fast as the
     API server takes them (`--concurrency` at a time) → creates/s; the floor for the batch
     is the number of child writes it needs (bots × children per bot) at that rate;
   - the very children the batch needs (the operator's own manifests for as many paper bots,
     without an owner, two generated Secrets each), server-side applied bot by bot,
     `--concurrency` bots at a time, with the controller-manager making each Deployment's
     ReplicaSet and Pod meanwhile → seconds: what the API server needs for these writes
     alone, with no operator in between. Measured after the batch, the operator stopped
     (measured before it, its objects slowed the batch by a quarter).
2. The batch: every TradingBot created through the API at once (each bot's API a closed
   local port, as no kubelet runs it; with `--answering-bots`, one local server answering
   for all of them as healthy paper bots); a watch on Deployments
   stamps when each bot's Deployment appeared (lag from its creation) and a final list
   checks that every child of every bot is there. Goal: the whole batch within 2× the
   floor, p99 lag under 30 s.
3. The operator's RSS and CPU during the batch and afterwards, idle but for its auto-pilot
   polling every bot. Goal: RSS under 200 MB.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import psutil
from aiohttp import web

from envtest_bench import (
    api_breakdown,
    api_requests,
    operator_process,
    process_cpu,
    run_on_control_plane,
)
from novapulse_operator import manifests, rendering
from novapulse_operator.kube import APPLY_PATCH, object_path
from novapulse_operator.spec import parse_spec
from support.envtest import ControlPlane, free_port
from support.local_http import serving

NS = "bench"
BOTS = f"/apis/novapulse.io/v1alpha1/namespaces/{NS}/tradingbots"
DEPLOYMENTS = f"/apis/apps/v1/namespaces/{NS}/deployments"
# What the operator writes for one paper bot: the children it applies (ServiceAccount,
# ConfigMap, PVC, Service, NetworkPolicy, Deployment) and the two generated Secrets.
CHILDREN = {
    "/api/v1/namespaces/{ns}/serviceaccounts": "{name}",
    "/api/v1/namespaces/{ns}/configmaps": "{name}-config",
    "/api/v1/namespaces/{ns}/persistentvolumeclaims": "{name}-data",
    "/api/v1/namespaces/{ns}/services": "{name}",
    "/api/v1/namespaces/{ns}/secrets": "{name}-dashboard",
    "/apis/networking.k8s.io/v1/namespaces/{ns}/networkpolicies": "{name}",
    "/apis/apps/v1/namespaces/{ns}/deployments": "{name}",
}
CHILD_WRITES_PER_BOT = len(CHILDREN) + 1  # + the generated password's own Secret


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))], 2)


class Api:
    """An aiohttp session to the envtest API server as its admin."""

    def __init__(self, plane: ControlPlane, concurrency: int) -> None:
        self.plane = plane
        self.http = aiohttp.ClientSession(
            plane.url, headers={"Authorization": f"Bearer {plane.admin_token}"},
            connector=aiohttp.TCPConnector(ssl=plane.ssl_context(), limit=concurrency))

    async def post(self, path: str, body: dict[str, Any]) -> None:
        async with self.http.post(path, json=body) as resp:
            if resp.status >= 300:
                raise RuntimeError(f"POST {path}: {resp.status} {await resp.text()}")

    async def names(self, path: str) -> set[str]:
        async with self.http.get(path) as resp:
            listing = await resp.json()
        return {item["metadata"]["name"] for item in listing.get("items", [])}


async def create_all(api: Api, path: str, bodies: list[dict[str, Any]], concurrency: int,
                     stamps: dict[str, float] | None = None) -> float:
    """Create every body (`concurrency` at a time); seconds from the first to the last."""
    gate = asyncio.Semaphore(concurrency)

    async def create(body: dict[str, Any]) -> None:
        async with gate:
            if stamps is not None:
                stamps[body["metadata"]["name"]] = time.monotonic()
            await api.post(path, body)

    started = time.monotonic()
    await asyncio.gather(*(create(body) for body in bodies))
    return time.monotonic() - started


async def write_floor(api: Api, count: int, concurrency: int) -> float:
    """Creates per second the API server takes: ConfigMaps the size of a bot's own."""
    await api.post("/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace",
                                          "metadata": {"name": "floor"}})
    config = "x" * 1500
    bodies = [{"apiVersion": "v1", "kind": "ConfigMap",
               "metadata": {"name": f"cm-{i:05d}", "namespace": "floor"},
               "data": {"config.yaml": config}} for i in range(count)]
    seconds = await create_all(api, "/api/v1/namespaces/floor/configmaps", bodies, concurrency)
    return count / seconds


def paper_bot_children(name: str, namespace: str) -> list[dict[str, Any]]:
    """What the operator writes for one new paper bot, from its own manifests, without the
    owner reference (no TradingBot owns them here: the garbage collector would take them)."""
    owner = manifests.Owner(name, namespace, f"floor-{name}")
    spec = parse_spec({"mode": "paper"})
    rendered = rendering.render(spec, "paper", f"{namespace}/{name}")
    secret_hash = "$2b$04$" + "x" * 53
    children = [manifests.dashboard_secret(owner, "k" * 32, "s" * 32, secret_hash),
                manifests.login_secret(owner, "p" * 24),
                *manifests.children(owner, spec, rendered, "paper")]
    for child in children:
        child["metadata"].pop("ownerReferences", None)
    return children


async def children_floor(api: Api, bots: int, concurrency: int) -> float:
    """Seconds the API server takes to accept every child of `bots` paper bots, applied as
    the operator applies them (server-side apply, each bot's in order)."""
    await api.post("/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace",
                                          "metadata": {"name": "floor-children"}})
    gate = asyncio.Semaphore(concurrency)

    async def one_bot(index: int) -> None:
        async with gate:
            for child in paper_bot_children(f"bot-{index:05d}", "floor-children"):
                path = object_path(child["apiVersion"], child["kind"], "floor-children",
                                   child["metadata"]["name"])
                async with api.http.patch(
                        path, data=json.dumps(child),
                        params={"fieldManager": "bench", "force": "true"},
                        headers={"Content-Type": APPLY_PATCH}) as resp:
                    if resp.status >= 300:
                        raise RuntimeError(f"apply {path}: {resp.status} {await resp.text()}")

    started = time.monotonic()
    await asyncio.gather(*(one_bot(i) for i in range(bots)))
    return time.monotonic() - started


async def watch_deployments(api: Api, seen: dict[str, float]) -> None:
    """Stamp each Deployment when first seen: a list, then a watch from its version (so the
    bench adds no list load), listed and watched again whenever the watch ends or fails."""
    while True:
        try:
            async with api.http.get(DEPLOYMENTS) as resp:
                listing = await resp.json()
            now = time.monotonic()
            for item in listing.get("items", []):
                seen.setdefault(item["metadata"]["name"], now)
            version = listing["metadata"]["resourceVersion"]
            async with api.http.get(DEPLOYMENTS, params={
                    "watch": "1", "resourceVersion": version, "allowWatchBookmarks": "true"},
                    timeout=aiohttp.ClientTimeout(total=None, sock_read=60)) as resp:
                async for line in resp.content:
                    event = json.loads(line)
                    if event.get("type") == "ADDED":
                        seen.setdefault(event["object"]["metadata"]["name"], time.monotonic())
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # reported, then listed and watched again
            print(f"deployment watch: {exc!r}; listing again", file=sys.stderr)


async def missing_children(api: Api, names: list[str]) -> int:
    missing = 0
    for collection, pattern in CHILDREN.items():
        present = await api.names(collection.format(ns=NS))
        missing += sum(1 for name in names if pattern.format(name=name) not in present)
    return missing


def cpu_seconds(process: psutil.Process) -> float:
    times = process.cpu_times()
    return float(times.user + times.system)


# What a healthy paper bot answers to GET /api/v1/status (--answering-bots).
BOT_STATUS = {
    "mode": "paper", "account_currency": "BTC", "paused": False, "pause_reason": None,
    "paused_by": None, "ws_connected": True, "ws_down_s": 0.0, "ws_up_s": 600.0,
    "feed": {"ETH/BTC": 0.4}, "open_positions": 0, "equity": 1.0, "daily_pnl": 0.0,
    "bankroll": 1.0, "strategies_disabled": [], "error_trades": 0, "error_trade_list": [],
    "pauses": [], "closing": [], "exchange": None, "db_ok": True, "analytics_ok": None,
    "analytics_detail": "disabled", "ml_ok": None, "ml_detail": "disabled",
    "version": "bench", "instance": "bench", "uptime_s": 600.0, "healthy": True,
    "health_detail": "ok"}


@contextlib.asynccontextmanager
async def bots_endpoint(answering: bool) -> AsyncIterator[str]:
    """Where every bot's API is. No kubelet runs the bots, so either a closed local port
    (refused at once, as a Service without a ready pod is) or one local server answering
    for all of them as a healthy paper bot — both without the machine's DNS answering for
    a thousand cluster names."""
    if not answering:
        yield f"http://127.0.0.1:{free_port()}"
        return

    answer = json.dumps(BOT_STATUS).encode()  # serialized once: the bench's CPU is the
    # machine's too, and real bots answer from other nodes

    async def status(_: web.Request) -> web.Response:
        return web.Response(body=answer, content_type="application/json")

    app = web.Application()
    app.router.add_get("/api/v1/status", status)
    async with serving(app) as url:
        yield url


async def run(plane: ControlPlane, workdir: Path, bots: int, concurrency: int,
              idle_seconds: float, within: float, answering: bool) -> dict[str, Any]:
    api = Api(plane, concurrency)
    try:
        floor_rate = await write_floor(api, bots * CHILD_WRITES_PER_BOT, concurrency)
        print(f"write floor: {floor_rate:.0f} creates/s", file=sys.stderr)
        await api.post("/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace",
                                              "metadata": {"name": NS}})
        async with bots_endpoint(answering) as endpoint, operator_process(
                plane, workdir / "operator.log", "--allow-bot-endpoint-annotation") as proc:
            process = psutil.Process(proc.pid)
            await asyncio.sleep(3)  # its start-up (imports, login, first list)
            rss_idle = process.memory_info().rss / 2**20
            names = [f"bot-{i:05d}" for i in range(bots)]
            bodies = [{"apiVersion": "novapulse.io/v1alpha1", "kind": "TradingBot",
                       "metadata": {"name": name, "namespace": NS, "annotations": {
                           "novapulse.io/bot-endpoint": endpoint}},
                       "spec": {"mode": "paper"}} for name in names]
            created: dict[str, float] = {}
            appeared: dict[str, float] = {}
            watcher = asyncio.create_task(watch_deployments(api, appeared))
            cpu_before = cpu_seconds(process)
            requests_before = api_requests(plane)
            plane_cpu_before = process_cpu(plane.pids())
            started = time.monotonic()
            create_seconds = await create_all(api, BOTS, bodies, concurrency, created)
            rss_peak = 0.0
            deadline = started + within
            reported = 0.0
            while len(appeared) < bots and time.monotonic() < deadline:
                rss_peak = max(rss_peak, process.memory_info().rss / 2**20)
                if time.monotonic() - reported >= 10:
                    reported = time.monotonic()
                    print(f"{reported - started:.0f} s: {len(appeared)}/{bots} Deployments, "
                          f"operator RSS {rss_peak:.0f} MiB", file=sys.stderr)
                await asyncio.sleep(0.5)
            all_deployments = time.monotonic() - started
            requests = api_breakdown(requests_before, api_requests(plane))
            plane_cpu = {name: round(seconds - plane_cpu_before.get(name, 0.0), 1)
                         for name, seconds in process_cpu(plane.pids()).items()}
            missing = await missing_children(api, names)
            batch_seconds = time.monotonic() - started
            batch_cpu = cpu_seconds(process) - cpu_before
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await watcher
            cpu_idle_before = cpu_seconds(process)
            await asyncio.sleep(idle_seconds)
            idle_cpu = (cpu_seconds(process) - cpu_idle_before) / idle_seconds
            rss_after = process.memory_info().rss / 2**20
        # After the batch, the operator stopped: before it, a thousand more bots' objects
        # in the server (and the controller-manager still at them) slowed the batch itself.
        floor_children_s = await children_floor(api, bots, concurrency)
        print(f"the batch's children applied directly: {floor_children_s:.1f} s",
              file=sys.stderr)
    finally:
        await api.http.close()
    lags = [appeared[name] - created[name] for name in names if name in appeared]
    floor_seconds = bots * CHILD_WRITES_PER_BOT / floor_rate
    return {
        "bench": "operator_scale",
        "api_server": "kube-apiserver (envtest), etcd without fsync",
        "tradingbots": bots,
        "bots_answer": "as healthy paper bots" if answering else "no (a closed port)",
        "api_server_creates_per_s": round(floor_rate, 1),
        "write_floor_s": round(floor_seconds, 1),
        "creating_the_tradingbots_s": round(create_seconds, 1),
        "all_deployments_s": round(all_deployments, 1),
        "batch_vs_floor": round(all_deployments / floor_seconds, 2),
        "same_children_applied_directly_s": round(floor_children_s, 1),
        "batch_vs_same_children_floor": round(all_deployments / floor_children_s, 2),
        "deployments": len(lags),
        "children_missing_at_end": missing,
        "batch_with_child_check_s": round(batch_seconds, 1),
        "creation_to_deployment_s": {"p50": percentile(lags, 0.5),
                                     "p99": percentile(lags, 0.99),
                                     "max": percentile(lags, 1.0)},
        "operator_rss_mib": {"idle_no_bots": round(rss_idle, 1),
                             "peak_during_batch": round(rss_peak, 1),
                             f"{bots}_bots_polled": round(rss_after, 1)},
        "operator_cpu": {"batch_cpu_s": round(batch_cpu, 1),
                         "batch_cores": round(batch_cpu / max(all_deployments, 1e-9), 2),
                         f"cores_idle_polling_{bots}_bots": round(idle_cpu, 2)},
        "control_plane_cpu_s_during_batch": plane_cpu,
        "api_server_requests_during_batch": requests,
        "goals": {"batch_within_2x_floor": all_deployments <= 2 * floor_seconds,
                  "batch_within_2x_same_children_floor": all_deployments <= 2 * floor_children_s,
                  "p99_lag_under_30s": (percentile(lags, 0.99) or 1e9) < 30,
                  "rss_under_200mb": max(rss_peak, rss_after) * 2**20 < 200e6},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bots", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--idle-seconds", type=float, default=20.0)
    parser.add_argument("--answering-bots", action="store_true",
                        help="every bot's API answers as a healthy paper bot (one local "
                        "server) instead of refusing the connection")
    parser.add_argument("--within", type=float, default=600.0,
                        help="give up waiting for the Deployments after this many seconds")
    args = parser.parse_args()
    run_on_control_plane("operator_scale", lambda plane, workdir: run(
        plane, workdir, args.bots, args.concurrency, args.idle_seconds, args.within,
        args.answering_bots))

if __name__ == "__main__":
    main()
