"""What the fault-injection tests on a real API server share (and `bench/feed_loss.py` reuses):
the replay feed and the real `novapulse run` process the operator reaches through its endpoint
annotation, pods whose status is written as a kubelet would write it (there is none), and
small readers of a TradingBot's status.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import bcrypt

from novapulse.market.replay_server import ReplayServer
from support.bot_env import bot_environment, free_port
from support.bot_process import BotProcess, launch_bot

from .conftest import FAST, NS, Cluster, eventually

SAMPLES = Path(__file__).resolve().parents[3] / "data" / "sample"
ETH_BTC = SAMPLES / "ETH_BTC-5m.csv.gz"
PILOT = dataclasses.replace(FAST, bot_poll_seconds=0.3, status_refresh_seconds=1.0,
                            allow_endpoint_annotation=True)  # the bots are local processes
SLACK = 5.0  # "within the threshold + a few seconds", polls and a loaded machine included
DASHBOARD = {
    "DASHBOARD_ADMIN_KEY": "admin-Zq8vN3kL1pX7rT5wB2mC9dF4",
    "DASHBOARD_SESSION_SECRET": "session-aK9xQ2mZ7vB4nL8pR3tW6yE1uI5",
    "DASHBOARD_ADMIN_PASSWORD_HASH": bcrypt.hashpw(b"correct horse", bcrypt.gensalt(4)).decode(),
}
# The bot's feed settings in these tests: a silent socket is noticed within a second, and the
# bot's own circuit breaker stays out of the way (runbook 2 here is the operator's).
FAST_FEED = {
    "NOVAPULSE__FEED__HEARTBEAT_TIMEOUT_SECONDS": "1",
    "NOVAPULSE__FEED__RECONNECT_INITIAL_SECONDS": "0.2",
    "NOVAPULSE__FEED__RECONNECT_MAX_SECONDS": "0.5",
    "NOVAPULSE__FEED__CIRCUIT_BREAKER_SECONDS": "3600",
}


# --- the feed and the bot ----------------------------------------------------------------------

@contextlib.asynccontextmanager
async def replay_server() -> AsyncIterator[ReplayServer]:
    """ETH/BTC 5-minute candles, one every 0.5 s, heartbeats every 0.2 s."""
    server = ReplayServer([(ETH_BTC, None)], speed=600, start_index=300, snapshot_size=300,
                          heartbeat_interval=0.2)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


@dataclasses.dataclass
class BotLaunch:
    """How one bot process is started, so that it can be started again on the same port, data
    directory and database (what a kubelet does for the replacement of a deleted pod)."""

    args: list[str]
    env: dict[str, str]
    log: Path
    port: int = dataclasses.field(default_factory=free_port)
    api_key: str = DASHBOARD["DASHBOARD_ADMIN_KEY"]

    async def start(self) -> BotProcess:
        process = await launch_bot(self.args, self.env, self.log, self.port, self.api_key,
                                   BotProcess)
        await process.wait_for_api()
        return process


def bot_launch(mode: str, feed_url: str, dsn: str, workdir: Path,
               secrets: dict[str, str] | None = None, **env: str) -> BotLaunch:
    """`novapulse run --mode MODE` on `feed_url`, with the dashboard keys of DASHBOARD (the ones
    its TradingBot's Secret holds: the operator calls it with that admin key) or `secrets`;
    `env` overrides FAST_FEED's settings."""
    environment = bot_environment(dsn, "[ETH/BTC]", NOVAPULSE__DASHBOARD__HOST="127.0.0.1",
                                  **{**FAST_FEED, **env}, **(secrets or DASHBOARD))
    workdir.mkdir(parents=True, exist_ok=True)
    return BotLaunch(["--mode", mode, "--feed", feed_url, "--data-dir", str(workdir / "data")],
                     environment, workdir / "bot.log",
                     api_key=(secrets or DASHBOARD)["DASHBOARD_ADMIN_KEY"])


async def stop_bot(process: BotProcess) -> None:
    """A clean stop (SIGTERM, exit code 0), else the log's tail."""
    assert await process.stop() == 0, process.log()[-3000:]


def silence_feed(replay: ReplayServer) -> None:
    """The feed goes silent: open sockets send nothing, not even heartbeats, and reconnects are
    refused — until `restore_feed`."""
    replay.refuse_connections(3600)
    replay.go_silent(3600)


def restore_feed(replay: ReplayServer) -> None:
    replay.refuse_connections(0)


async def bot_status(bot: BotProcess) -> dict[str, Any]:
    resp = await bot.api("GET", "/api/v1/status")
    assert resp.status_code == 200, resp.text
    return dict(resp.json())


def holders_of(status: dict[str, Any]) -> list[str]:
    return [p["by"] for p in status.get("pauses") or []]


async def feed_is(bot: BotProcess, connected: bool) -> bool:
    return bool((await bot_status(bot))["ws_connected"]) is connected


async def holds_pause(bot: BotProcess, by: str) -> bool:
    return by in holders_of(await bot_status(bot))


async def pause_released(bot: BotProcess) -> bool:
    return "operator" not in holders_of(await bot_status(bot))


async def until(check: Callable[[], Awaitable[Any]], within: float, what: str) -> float:
    """Wait for `check`; the monotonic time it first held."""
    await eventually(check, within=within, what=what)
    return time.monotonic()


# --- a TradingBot's status ------------------------------------------------------------------------

def condition(tb: dict[str, Any] | None, type_: str) -> dict[str, Any]:
    for cond in ((tb or {}).get("status") or {}).get("conditions") or []:
        if cond["type"] == type_:
            return dict(cond)
    return {}


def remediation_of(tb: dict[str, Any] | None) -> dict[str, Any]:
    return dict(((tb or {}).get("status") or {}).get("remediation") or {})


def history_of(tb: dict[str, Any] | None) -> list[str]:
    """status.remediation.history as `action:reason`, oldest first."""
    return [f"{h['action']}:{h['reason']}" for h in remediation_of(tb).get("history") or []]


async def phase_is(cluster: Cluster, name: str, phase: str) -> bool:
    return ((await cluster.bot(name) or {}).get("status") or {}).get("phase") == phase


async def cond_is(cluster: Cluster, name: str, type_: str, value: str,
                  ) -> dict[str, Any] | None:
    tb = await cluster.bot(name)
    return tb if condition(tb, type_).get("status") == value else None


async def history_count(cluster: Cluster, name: str, action: str, count: int,
                        ) -> dict[str, Any] | None:
    tb = await cluster.bot(name)
    done = [h for h in history_of(tb) if h.startswith(f"{action}:")]
    return tb if len(done) >= count else None


# --- pods, as a kubelet would report them ---------------------------------------------------------

def pods_path(bot_name: str) -> str:
    return (f"/api/v1/namespaces/{NS}/pods?labelSelector="
            f"novapulse.io/tradingbot%3D{bot_name}")


async def bot_pods(cluster: Cluster, bot_name: str) -> list[dict[str, Any]]:
    found = await cluster.get(pods_path(bot_name)) or {}
    return [p for p in found.get("items", []) if not p["metadata"].get("deletionTimestamp")]


async def new_pod(cluster: Cluster, bot_name: str, not_uids: set[str] = frozenset(),  # type: ignore[assignment]
                  within: float = 30) -> dict[str, Any]:
    """The bot's one pod, once the controller-manager made one whose uid is not in `not_uids`."""
    async def fresh() -> dict[str, Any] | None:
        pods = await bot_pods(cluster, bot_name)
        return pods[0] if len(pods) == 1 and pods[0]["metadata"]["uid"] not in not_uids \
            else None
    pod: dict[str, Any] = await eventually(fresh, within=within,
                                           what=f"a new pod of {bot_name}")
    return pod


def now_text() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


async def set_container(cluster: Cluster, pod: dict[str, Any], restarts: int,
                        state: dict[str, Any], last: dict[str, Any] | None = None,
                        ready: bool = False, phase: str = "Pending") -> None:
    """Write the bot container's status as a kubelet would (the status subresource)."""
    container = {"name": "bot", "ready": ready, "restartCount": restarts, "state": state,
                 "image": pod["spec"]["containers"][0]["image"], "imageID": "",
                 "started": ready}
    if last is not None:
        container["lastState"] = last
    status: dict[str, Any] = {"phase": phase, "containerStatuses": [container]}
    if ready:
        status["conditions"] = [{"type": t, "status": "True", "lastTransitionTime": now_text()}
                                for t in ("PodScheduled", "Initialized", "ContainersReady",
                                          "Ready")]
    await cluster.patch(f"/api/v1/namespaces/{NS}/pods/{pod['metadata']['name']}/status",
                        {"status": status})


async def set_running(cluster: Cluster, pod: dict[str, Any], ready: bool = True) -> None:
    """The bot container running (Ready or not), as a kubelet reports a started pod."""
    await set_container(cluster, pod, 0, {"running": {"startedAt": now_text()}}, ready=ready,
                        phase="Running")


def terminated(reason: str, code: int, message: str = "") -> dict[str, Any]:
    return {"terminated": {"reason": reason, "exitCode": code, "startedAt": now_text(),
                           "finishedAt": now_text(), "message": message}}


def crash_loop() -> dict[str, Any]:
    return {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off restarting"}}


class PodRecorder:
    """Every pod of one bot the API server ever had while recording, from a watch that starts
    at the list's resourceVersion: no pod, however short-lived, is missed."""

    def __init__(self, cluster: Cluster, bot_name: str) -> None:
        self.cluster = cluster
        self.bot_name = bot_name
        self.created: list[str] = []  # uids, in the order the API server announced them
        self.deleted: list[str] = []
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> PodRecorder:
        listing = await self.cluster.get(pods_path(self.bot_name)) or {}
        self.created = [p["metadata"]["uid"] for p in listing.get("items", [])]
        version = listing["metadata"]["resourceVersion"]
        self._task = asyncio.create_task(self._watch(version))
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task

    async def _watch(self, version: str) -> None:
        path = f"{pods_path(self.bot_name)}&watch=1&resourceVersion={version}"
        while True:
            timeout = aiohttp.ClientTimeout(total=None, sock_read=None)
            async with self.cluster.http.get(path, timeout=timeout) as resp:
                assert resp.status == 200, await resp.text()
                async for line in resp.content:
                    event = json.loads(line)
                    uid = event["object"]["metadata"].get("uid")
                    version = event["object"]["metadata"].get("resourceVersion", version)
                    if event["type"] == "ADDED" and uid not in self.created:
                        self.created.append(uid)
                    elif event["type"] == "DELETED" and uid not in self.deleted:
                        self.deleted.append(uid)
            path = f"{pods_path(self.bot_name)}&watch=1&resourceVersion={version}"
