"""Feed-loss bench (runbook 2): how long after the market feed is lost the operator has paused
trading, and how long after it returns it has resumed — against spec.remediation.feed.

Real parts: a kube-apiserver + kube-controller-manager (envtest, `KUBEBUILDER_ASSETS`, see
`make envtest`), the operator as its own process (`novapulse-operator run`, kopf), the real
`novapulse run` bots (paper mode, embedded PostgreSQL) on replay feeds, reached through the
endpoint annotation (no kubelet). Several bots run side by side, each with its own feed, so
that the injections fit in a few minutes. Prints one JSON object; without KUBEBUILDER_ASSETS,
one JSON line saying the bench was skipped and why (exit 0).

    python bench/feed_loss.py [--bots 4] [--injections 20] [--bot-poll-seconds 1]

One injection: the bot's feed goes silent and reconnects are refused (the replay server's
fault control); "paused" is the moment the bot's API first shows the operator's pause. Then
the feed returns; "resumed" is the moment the operator's pause is gone. Both are measured
from the fault (what a user sees) and, for the pause, also from the moment the bot itself
reported the feed down (the operator's threshold counts from there; the bot notices a silent
socket after its heartbeat timeout). Goal: within the threshold + 2 s.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import math
import shutil
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

import aiohttp  # noqa: E402
import httpx  # noqa: E402
from tests.integration.operator.conftest import Cluster  # noqa: E402
from tests.integration.operator.faults_support import (  # noqa: E402
    DASHBOARD,
    FAST_FEED,
    bot_launch,
    replay_server,
    restore_feed,
    silence_feed,
)

from envtest_bench import operator_process, run_on_control_plane  # noqa: E402
from support.bot_process import BotProcess  # noqa: E402
from support.envtest import ControlPlane  # noqa: E402

# The smallest values the CRD allows: the bench is as short as the operator lets it be.
PAUSE_AFTER, RESUME_AFTER = 5, 1
RESTART_AFTER = "1h"  # out of the way: restarts are not what is measured
GOAL_MARGIN = 2.0
SAMPLE_EVERY = 0.05  # how often the bench reads each bot's status


def percentile(values: list[float], q: float) -> float:
    """Nearest rank."""
    ordered = sorted(values)
    return round(ordered[max(0, math.ceil(q * len(ordered)) - 1)], 2)


def summary(values: list[float], threshold: float | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"p50_s": percentile(values, 0.5), "p95_s": percentile(values, 0.95),
                           "min_s": round(min(values), 2), "max_s": round(max(values), 2)}
    if threshold is not None:
        out["goal_s"] = threshold + GOAL_MARGIN
        out["within_goal_p95"] = out["p95_s"] <= threshold + GOAL_MARGIN
    return out


@dataclass
class Samples:
    pause_from_fault: list[float] = field(default_factory=list)
    pause_from_bot_down: list[float] = field(default_factory=list)
    resume_from_return: list[float] = field(default_factory=list)
    resume_from_bot_up: list[float] = field(default_factory=list)


class Watched:
    """One bot's status, read over one HTTP connection."""

    def __init__(self, bot: BotProcess) -> None:
        self.client = httpx.AsyncClient(base_url=bot.url, timeout=10,
                                        headers={"X-API-Key": DASHBOARD["DASHBOARD_ADMIN_KEY"]})

    async def status(self) -> dict[str, Any]:
        resp = await self.client.get("/api/v1/status")
        resp.raise_for_status()
        return dict(resp.json())

    async def until(self, what: str, within: float, **want: bool) -> float:
        """The monotonic time the status first showed `want` (connected=, operator=)."""
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            status = await self.status()
            seen = {"connected": bool(status["ws_connected"]),
                    "operator": "operator" in [p["by"] for p in status.get("pauses") or []]}
            if all(seen[k] == v for k, v in want.items()):
                return time.monotonic()
            await asyncio.sleep(SAMPLE_EVERY)
        raise TimeoutError(f"timed out after {within:.0f}s waiting for {what}")


async def injections(bot: BotProcess, replay: Any, count: int, delay: float,
                     samples: Samples) -> None:
    watched = Watched(bot)
    await asyncio.sleep(delay)  # the bots' injections spread over time
    try:
        for _ in range(count):
            await watched.until("a healthy, unpaused bot", 60, connected=True, operator=False)
            await asyncio.sleep(1.0)  # the operator sees it healthy too
            lost = time.monotonic()
            silence_feed(replay)
            down = await watched.until("the bot's feed down", 30, connected=False)
            paused = await watched.until("the operator's pause", PAUSE_AFTER + 30,
                                         operator=True)
            returned = time.monotonic()
            restore_feed(replay)
            up = await watched.until("the bot's feed back", 30, connected=True)
            resumed = await watched.until("the operator's resume", RESUME_AFTER + 30,
                                          operator=False)
            samples.pause_from_fault.append(paused - lost)
            samples.pause_from_bot_down.append(paused - down)
            samples.resume_from_return.append(resumed - returned)
            samples.resume_from_bot_up.append(resumed - up)
    finally:
        await watched.client.aclose()


async def create_database(admin_dsn: str) -> str:
    import asyncpg

    name = f"bench_{uuid.uuid4().hex[:12]}"
    conn = await asyncpg.connect(admin_dsn)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return name


async def run(plane: ControlPlane, workdir: Path, bots: int, count: int,
              poll: float) -> dict[str, Any]:
    from novapulse.store.embedded import start_embedded_postgres

    started = time.monotonic()
    # Its own directory, as in the tests: as root the server runs as another user.
    pg_dir = Path(tempfile.mkdtemp(prefix="novapulse-pg-"))
    pg = await asyncio.to_thread(start_embedded_postgres, pg_dir)
    samples = Samples()
    try:
        async with contextlib.AsyncExitStack() as stack:
            headers = {"Authorization": f"Bearer {plane.admin_token}"}
            http = await stack.enter_async_context(aiohttp.ClientSession(
                plane.url, headers=headers,
                connector=aiohttp.TCPConnector(ssl=plane.ssl_context())))
            cluster = Cluster(plane.url, http)
            replays = [await stack.enter_async_context(replay_server()) for _ in range(bots)]
            names = [await create_database(pg.dsn) for _ in range(bots)]
            launches = [bot_launch("paper", replay.url, pg.dsn_for(name), workdir / f"bot{i}")
                        for i, (replay, name) in enumerate(zip(replays, names, strict=True))]
            processes = list(await asyncio.gather(*(launch.start() for launch in launches)))
            for process in processes:
                stack.push_async_callback(process.stop)
            await stack.enter_async_context(operator_process(
                plane, workdir / "operator.log", "--bot-poll-seconds", str(poll),
                "--allow-bot-endpoint-annotation"))
            await cluster.create_secret("bench-dash", DASHBOARD)
            for i, process in enumerate(processes):
                await cluster.create_bot(f"feedloss-{i}", {
                    "mode": "paper", "pairs": ["ETH/BTC"],
                    "dashboard": {"secretRef": {"name": "bench-dash"}},
                    "remediation": {"feed": {"pauseAfter": f"{PAUSE_AFTER}s",
                                             "restartAfter": RESTART_AFTER,
                                             "resumeAfterHealthy": f"{RESUME_AFTER}s"}}},
                    {"novapulse.io/bot-endpoint": process.url})
            setup = time.monotonic() - started
            per_bot = [count // bots + (1 if i < count % bots else 0) for i in range(bots)]
            spread = (PAUSE_AFTER + RESUME_AFTER + 4) / bots
            measured = time.monotonic()
            await asyncio.gather(*(
                injections(process, replay, n, i * spread, samples)
                for i, (process, replay, n) in enumerate(zip(processes, replays, per_bot,
                                                              strict=True))))
            measuring = time.monotonic() - measured
            histories = []
            for i in range(bots):
                tb = await cluster.bot(f"feedloss-{i}") or {}
                rem = (tb.get("status") or {}).get("remediation") or {}
                histories.append([h["action"] for h in rem.get("history") or []])
    finally:
        await asyncio.to_thread(pg.stop)
        shutil.rmtree(pg_dir, ignore_errors=True)
    restarts = sum(h.count("RestartPod") for h in histories)
    return {
        "bench": "feed_loss",
        "injections": len(samples.pause_from_fault),
        "bots": bots,
        "thresholds": {"pauseAfter_s": PAUSE_AFTER, "resumeAfterHealthy_s": RESUME_AFTER,
                       "restartAfter": RESTART_AFTER},
        "operator_bot_poll_seconds": poll,
        "bot_heartbeat_timeout_s": float(FAST_FEED["NOVAPULSE__FEED__HEARTBEAT_TIMEOUT_SECONDS"]),
        "feed_loss_to_paused": summary(samples.pause_from_fault, PAUSE_AFTER),
        "bot_reported_down_to_paused": summary(samples.pause_from_bot_down, PAUSE_AFTER),
        "feed_back_to_resumed": summary(samples.resume_from_return, RESUME_AFTER),
        "bot_reported_up_to_resumed": summary(samples.resume_from_bot_up, RESUME_AFTER),
        "measured_from": "feed_loss_to_paused / feed_back_to_resumed: the fault injected and "
                         "lifted; bot_reported_*: the bot's API first showing ws_connected "
                         "false / true, which spec.remediation.feed counts from (a silent "
                         "socket is noticed after the bot's heartbeat timeout)",
        "operator_pod_restarts": restarts,
        "setup_s": round(setup, 1),
        "injections_wall_s": round(measuring, 1),
        "total_s": round(time.monotonic() - started, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bots", type=int, default=4, help="bots side by side")
    parser.add_argument("--injections", type=int, default=20, help="feed losses in all")
    parser.add_argument("--bot-poll-seconds", type=float, default=1.0,
                        help="the operator's --bot-poll-seconds (its default is 5)")
    args = parser.parse_args()
    logging.getLogger("novapulse.market.replay_server").setLevel(logging.ERROR)  # each fault
    run_on_control_plane("feed_loss", lambda plane, workdir: run(
        plane, workdir, args.bots, args.injections, args.bot_poll_seconds))

if __name__ == "__main__":
    main()
