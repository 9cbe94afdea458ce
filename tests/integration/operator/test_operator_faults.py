"""The auto-pilot under injected faults, on a real kube-apiserver (+ controller-manager):
the real `novapulse run` process on the replay feed for runbooks 2 and 3, pod faults written
into the status subresource of the Pods the controller-manager made for runbooks 1 and 6 (no
kubelet: nothing else ever writes a pod's status), and `kubectl get tb` as the API server
prints it. Each test starts the operator once and runs its scenarios on it.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import bcrypt
import pytest

from novapulse.instance_lock import HolderInfo, InstanceAlreadyRunning
from novapulse.market.replay_server import ReplayServer
from support.bot_env import bot_environment, free_port
from support.bot_process import BotProcess, launch_bot

from .conftest import FAST, NS, Cluster, bot_path, eventually, operator

SAMPLES = Path(__file__).resolve().parents[3] / "data" / "sample"
PILOT = dataclasses.replace(FAST, bot_poll_seconds=0.3, status_refresh_seconds=1.0,
                            allow_endpoint_annotation=True)  # the bots are local processes
PAUSE_AFTER, RESUME_AFTER = 5, 3  # seconds (spec.remediation.feed, the CRD's bounds allow)
SLACK = 5.0  # "within the threshold + a few seconds", polls and a loaded machine included
DASHBOARD = {
    "DASHBOARD_ADMIN_KEY": "admin-Zq8vN3kL1pX7rT5wB2mC9dF4",
    "DASHBOARD_SESSION_SECRET": "session-aK9xQ2mZ7vB4nL8pR3tW6yE1uI5",
    "DASHBOARD_ADMIN_PASSWORD_HASH": bcrypt.hashpw(b"correct horse", bcrypt.gensalt(4)).decode(),
}
TABLE = "application/json;as=Table;v=v1;g=meta.k8s.io"


@pytest.fixture()
def real(cluster: Cluster) -> Cluster:
    if not cluster.real:
        pytest.skip("pod faults and printer columns need a real API server "
                    "(KUBEBUILDER_ASSETS, see `make envtest`)")
    return cluster


@pytest.fixture()
async def replay() -> AsyncIterator[ReplayServer]:
    server = ReplayServer([(SAMPLES / "ETH_BTC-5m.csv.gz", None)], speed=600, start_index=300,
                          snapshot_size=300, heartbeat_interval=0.2)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


@pytest.fixture()
async def bot(replay: ReplayServer, pg_dsn: str, tmp_path: Path) -> AsyncIterator[BotProcess]:
    """The real bot in paper mode on the replay feed, with the dashboard keys its
    TradingBot's Secret holds (the operator calls it with that admin key)."""
    env = bot_environment(
        pg_dsn, "[ETH/BTC]", NOVAPULSE__DASHBOARD__HOST="127.0.0.1",
        NOVAPULSE__FEED__HEARTBEAT_TIMEOUT_SECONDS="1",
        NOVAPULSE__FEED__RECONNECT_INITIAL_SECONDS="0.2",
        NOVAPULSE__FEED__RECONNECT_MAX_SECONDS="0.5",
        NOVAPULSE__FEED__CIRCUIT_BREAKER_SECONDS="3600",  # runbook 2 here is the operator's
        **DASHBOARD)
    process = await launch_bot(["--mode", "paper", "--feed", replay.url, "--data-dir",
                                str(tmp_path / "data")], env, tmp_path / "bot.log", free_port(),
                               api_key=DASHBOARD["DASHBOARD_ADMIN_KEY"])
    try:
        await process.wait_for_api()
        yield process
    finally:
        assert await process.stop() == 0, process.log()[-3000:]


# --- helpers -----------------------------------------------------------------------------------

def _cond(tb: dict[str, Any] | None, type_: str) -> dict[str, Any]:
    for cond in ((tb or {}).get("status") or {}).get("conditions") or []:
        if cond["type"] == type_:
            return dict(cond)
    return {}


def _remediation(tb: dict[str, Any] | None) -> dict[str, Any]:
    return dict(((tb or {}).get("status") or {}).get("remediation") or {})


def _history(tb: dict[str, Any] | None) -> list[str]:
    return [f"{h['action']}:{h['reason']}" for h in _remediation(tb).get("history") or []]


async def _bot_status(bot: BotProcess) -> dict[str, Any]:
    resp = await bot.api("GET", "/api/v1/status")
    assert resp.status_code == 200, resp.text
    return dict(resp.json())


def _holders(status: dict[str, Any]) -> list[str]:
    return [p["by"] for p in status.get("pauses") or []]


async def _until(check: Callable[[], Awaitable[Any]], within: float, what: str) -> float:
    """Wait for `check`; the monotonic time it first held."""
    await eventually(check, within=within, what=what)
    return time.monotonic()


async def _pods(cluster: Cluster, bot_name: str) -> list[dict[str, Any]]:
    found = await cluster.get(f"/api/v1/namespaces/{NS}/pods?labelSelector="
                              f"novapulse.io/tradingbot%3D{bot_name}") or {}
    return [p for p in found.get("items", []) if not p["metadata"].get("deletionTimestamp")]


async def _new_pod(cluster: Cluster, bot_name: str, not_uids: set[str] = frozenset(),  # type: ignore[assignment]
                   within: float = 30) -> dict[str, Any]:
    """The bot's one pod, once the controller-manager made one whose uid is not in `not_uids`."""
    async def fresh() -> dict[str, Any] | None:
        pods = await _pods(cluster, bot_name)
        return pods[0] if len(pods) == 1 and pods[0]["metadata"]["uid"] not in not_uids \
            else None
    pod: dict[str, Any] = await eventually(fresh, within=within,
                                           what=f"a new pod of {bot_name}")
    return pod


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


async def _set_container(cluster: Cluster, pod: dict[str, Any], restarts: int,
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
        status["conditions"] = [{"type": t, "status": "True", "lastTransitionTime": _now()}
                                for t in ("PodScheduled", "Initialized", "ContainersReady",
                                          "Ready")]
    await cluster.patch(f"/api/v1/namespaces/{NS}/pods/{pod['metadata']['name']}/status",
                        {"status": status})


def _terminated(reason: str, code: int, message: str = "") -> dict[str, Any]:
    return {"terminated": {"reason": reason, "exitCode": code, "startedAt": _now(),
                           "finishedAt": _now(), "message": message}}


def _crash_loop() -> dict[str, Any]:
    return {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off restarting"}}


async def _deployment(cluster: Cluster, name: str) -> dict[str, Any]:
    found = await cluster.child("apps/v1", "deployments", name)
    assert found is not None
    return found


def _memory_limit(obj: dict[str, Any]) -> str:
    spec = obj["spec"]["template"]["spec"] if obj.get("kind") == "Deployment" else obj["spec"]
    return str(spec["containers"][0]["resources"]["limits"]["memory"])


# --- runbooks 2 and 3 with the real bot; the printer columns -------------------------------------

async def test_feed_silence_pauses_and_resumes_a_real_bot_never_lifting_a_manual_pause(
        real: Cluster, bot: BotProcess, replay: ReplayServer) -> None:
    cluster = real
    await cluster.create_secret("bot-dash", DASHBOARD)
    spec = {"mode": "paper", "pairs": ["ETH/BTC"], "dashboard": {"secretRef": {"name": "bot-dash"}},
            "remediation": {"feed": {"pauseAfter": f"{PAUSE_AFTER}s", "restartAfter": "1h",
                                     "resumeAfterHealthy": f"{RESUME_AFTER}s"}}}
    async with operator(PILOT):
        await cluster.create_bot("feedbot", spec, {"novapulse.io/bot-endpoint": bot.url})

        async def mirrored() -> dict[str, Any] | None:
            tb = await cluster.bot("feedbot")
            seen = ((tb or {}).get("status") or {}).get("bot") or {}
            return tb if seen.get("wsConnected") and _cond(tb, "FeedHealthy").get(
                "status") == "True" else None
        await eventually(mirrored, within=60, what="status.bot mirrored, FeedHealthy=True")

        # kubectl get tb: a pod Ready (as a kubelet would say) → Running, every column filled.
        pod = await _new_pod(cluster, "feedbot")
        await _set_container(cluster, pod, 0, {"running": {"startedAt": _now()}}, ready=True,
                             phase="Running")
        await eventually(lambda: _phase_is(cluster, "feedbot", "Running"), within=30,
                         what="phase Running once the pod is Ready")
        row = await eventually(lambda: _printed_row(cluster, "feedbot"), within=30,
                               what="a full row")
        assert row["Mode"] == "paper" and row["Phase"] == "Running"
        assert row["Feed"] == "True" and row["Paused"] is False
        assert isinstance(row["Positions"], int) and isinstance(row["PnL"], int | float)

        # Runbook 2: the feed goes silent (open socket, no data, reconnects refused).
        replay.refuse_connections(3600)
        replay.go_silent(3600)
        down_at = await _until(lambda: _feed(bot, False), 30, "the bot's feed down")
        paused_at = await _until(lambda: _held(bot, "operator"), PAUSE_AFTER + SLACK + 5,
                                 "the operator's pause")
        assert PAUSE_AFTER - 1.5 <= paused_at - down_at <= PAUSE_AFTER + SLACK
        tb = await eventually(lambda: _cond_is(cluster, "feedbot", "FeedHealthy", "False"),
                              within=15, what="FeedHealthy=False")
        assert _cond(tb, "FeedHealthy")["reason"] == "Disconnected"
        tb = await eventually(lambda: _cond_is(cluster, "feedbot", "TradingActive", "False"),
                              within=15, what="TradingActive=False")
        assert _cond(tb, "TradingActive")["reason"] == "PausedByOperator"

        # The feed returns: resumed once healthy for resumeAfterHealthy, not before.
        replay.refuse_connections(0)
        up_at = await _until(lambda: _feed(bot, True), 30, "the bot's feed back")
        resumed_at = await _until(lambda: _released(bot), RESUME_AFTER + SLACK + 5,
                                  "the operator's resume")
        assert RESUME_AFTER - 1.5 <= resumed_at - up_at <= RESUME_AFTER + SLACK
        tb = await eventually(lambda: _history_count(cluster, "feedbot", "Resume", 1),
                              within=15, what="the resume in the history")
        assert _history(tb) == ["Pause:FeedDownPaused", "Resume:FeedHealthyResumed"]
        reasons = [e["reason"] for e in await cluster.events()]
        assert reasons.count("FeedDownPaused") == 1 and reasons.count("FeedHealthyResumed") == 1

        # Runbook 3: a human pauses; then the feed flaps past pauseAfter and comes back.
        resp = await bot.api("POST", "/api/v1/control/pause", json={"reason": "checking"})
        assert resp.status_code == 200, resp.text
        replay.refuse_connections(3600)
        replay.go_silent(3600)
        await _until(lambda: _feed(bot, False), 30, "the feed down again")
        await _until(lambda: _held(bot, "operator"), PAUSE_AFTER + SLACK + 5,
                     "the operator's second pause (beside the human's)")
        replay.refuse_connections(0)
        await _until(lambda: _feed(bot, True), 30, "the feed back again")
        await eventually(lambda: _history_count(cluster, "feedbot", "Resume", 2),
                         within=RESUME_AFTER + SLACK + 5, what="the operator's second resume")
        status = await _bot_status(bot)
        assert status["paused"] is True and _holders(status) == ["manual"]
        assert status["pause_reason"] == "checking"
        tb = await eventually(lambda: _cond_is(cluster, "feedbot", "TradingActive", "False"),
                              within=15, what="TradingActive=False after the flap")
        assert _cond(tb, "TradingActive")["reason"] == "PausedManually"
        row = await eventually(lambda: _printed_row(cluster, "feedbot", paused=True),
                               within=15, what="PAUSED true in kubectl get tb")
        assert row["Paused"] is True


async def _feed(bot: BotProcess, connected: bool) -> bool:
    return bool((await _bot_status(bot))["ws_connected"]) is connected


async def _held(bot: BotProcess, by: str) -> bool:
    return by in _holders(await _bot_status(bot))


async def _released(bot: BotProcess) -> bool:
    return "operator" not in _holders(await _bot_status(bot))


async def _phase_is(cluster: Cluster, name: str, phase: str) -> bool:
    return ((await cluster.bot(name) or {}).get("status") or {}).get("phase") == phase


async def _cond_is(cluster: Cluster, name: str, type_: str, value: str,
                   ) -> dict[str, Any] | None:
    tb = await cluster.bot(name)
    return tb if _cond(tb, type_).get("status") == value else None


async def _history_count(cluster: Cluster, name: str, action: str, count: int,
                         ) -> dict[str, Any] | None:
    tb = await cluster.bot(name)
    done = [h for h in _history(tb) if h.startswith(f"{action}:")]
    return tb if len(done) >= count else None


async def _printed_row(cluster: Cluster, name: str, paused: bool = False,
                       ) -> dict[str, Any] | None:
    """One row of `kubectl get tb` as the API server prints it (the CRD's printer columns,
    through the Table API kubectl uses), by column name; None until every column is set."""
    async with cluster.http.get(bot_path(name), headers={"Accept": TABLE}) as resp:
        assert resp.status == 200, await resp.text()
        table = await resp.json()
    assert table["kind"] == "Table"
    names = [c["name"] for c in table["columnDefinitions"]]
    assert names[:6] == ["Name", "Mode", "Phase", "Feed", "Paused", "Positions"]
    row = dict(zip(names, table["rows"][0]["cells"], strict=True))
    wanted = ("Mode", "Phase", "Feed", "Paused", "Positions", "PnL")
    if any(row.get(c) in (None, "") for c in wanted) or row["Paused"] is not paused:
        return None
    return row


# --- runbooks 1 and 6: pod faults through the status subresource ---------------------------------

def _unreachable() -> dict[str, str]:
    """No bot answers there: these scenarios are about the pods."""
    return {"novapulse.io/bot-endpoint": f"http://127.0.0.1:{free_port()}"}


def _fault_spec(**remediation: Any) -> dict[str, Any]:
    return {"mode": "paper", "pairs": ["ETH/BTC"],
            "resources": {"requests": {"cpu": "100m", "memory": "256Mi"},
                          "limits": {"cpu": "1", "memory": "1Gi"}},
            "remediation": {"restarts": {"unhealthyAfter": "1h"}, **remediation}}


async def test_oom_kills_raise_memory_up_to_the_ceiling_then_reduce_retention(
        real: Cluster) -> None:
    cluster = real
    async with operator(PILOT):
        await cluster.create_bot("oombot", _fault_spec(oom={"growthFactor": 2,
                                                            "ceiling": "3Gi"}), _unreachable())
        seen: set[str] = set()
        expected = ["2Gi", "3Gi"]  # 1Gi × 2, then × 2 = 4Gi capped at the ceiling
        for restarts, limit in enumerate(expected, start=1):
            pod = await _new_pod(cluster, "oombot", seen)
            seen.add(pod["metadata"]["uid"])
            await _set_container(cluster, pod, restarts, _terminated("OOMKilled", 137))

            async def raised(want: str = limit) -> dict[str, Any] | None:
                tb = await cluster.bot("oombot")
                return tb if _remediation(tb).get("memoryLimit") == want else None
            await eventually(raised, within=30, what=f"memory limit {limit}")
            pod = await _new_pod(cluster, "oombot", seen)  # the Deployment rolled it
            assert _memory_limit(pod) == limit
        assert _memory_limit(await _deployment(cluster, "oombot")) == "3Gi"

        # A third OOM kill at the ceiling: the retention settings of runbook 6 instead.
        seen.add(pod["metadata"]["uid"])
        await _set_container(cluster, pod, 3, _terminated("OOMKilled", 137))

        async def reduced() -> dict[str, Any] | None:
            tb = await cluster.bot("oombot")
            return tb if _remediation(tb).get("retentionReduced") else None
        tb = await eventually(reduced, within=30, what="retention reduced")
        assert _remediation(tb)["memoryLimit"] == "3Gi"
        assert _history(tb) == ["RaiseMemoryLimit:MemoryLimitRaised"] * 2 + [
            "ReduceRetention:RetentionReduced"]
        pod = await _new_pod(cluster, "oombot", seen)
        assert _memory_limit(pod) == "3Gi"  # never above the ceiling
        config = (await cluster.child("v1", "configmaps", "oombot-config") or {})["data"]
        text = config["config.yaml"]
        for line in ("metrics_retention_hours: 24", "thought_feed_max: 100",
                     "buffer_maxlen: 5000", "warmup_bars: 300"):
            assert line in text
        reasons = [e["reason"] for e in await cluster.events()]
        assert reasons.count("MemoryLimitRaised") == 2 and reasons.count("RetentionReduced") == 1


async def test_restart_budget_and_the_instance_lock(real: Cluster) -> None:
    cluster = real
    async with operator(PILOT):
        await cluster.create_bot("crashbot", _fault_spec(restarts={"maxPerHour": 1,
                                                                   "unhealthyAfter": "1h"}),
                                 _unreachable())
        await cluster.create_bot("stalebot", _fault_spec(), _unreachable())
        await cluster.create_bot("heldbot", _fault_spec(), _unreachable())
        # A pod that holds the lock and still exists (no kubelet: it stays Pending).
        await cluster.post(f"/api/v1/namespaces/{NS}/pods", {
            "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "holder-0"},
            "spec": {"containers": [{"name": "bot", "image": "novapulse:0.1.0"}]}})

        # Runbook 1: a crash loop → one restart (maxPerHour 1), the next one is refused.
        first = await _new_pod(cluster, "crashbot")
        crash = _terminated("Error", 1)
        await _set_container(cluster, first, 4, _crash_loop(), crash)
        second = await _new_pod(cluster, "crashbot", {first["metadata"]["uid"]})
        await _set_container(cluster, second, 4, _crash_loop(), crash)
        tb = await eventually(lambda: _ready_reason(cluster, "crashbot",
                                                    "RestartBudgetExhausted"),
                              within=30, what="Ready=False RestartBudgetExhausted")
        message = _cond(tb, "Ready")["message"]
        assert "maxPerHour: 1" in message and "kubectl logs" in message
        assert [p["metadata"]["uid"] for p in await _pods(cluster, "crashbot")] == [
            second["metadata"]["uid"]]  # not restarted again
        assert _history(tb) == ["RestartPod:CrashLoopRestart", "Warn:RestartBudgetExhausted"]

        # Runbook 1, cause 1: exit code 3, the holder gone → cleared; the holder alive → not.
        for name, holder in (("stalebot", "stalebot-5d8f-gone"), ("heldbot", "holder-0")):
            pod = await _new_pod(cluster, name)
            message = str(InstanceAlreadyRunning(Path("/data/instance.lock"), HolderInfo(
                pod=holder, pid=7, host=holder, started_at=0.0, heartbeat_at=0.0,
                identity=f"{NS}/{name}")))
            await _set_container(cluster, pod, 1, _crash_loop(),
                                 _terminated("Error", 3, f"ERROR {message}\n"))

        async def cleared() -> dict[str, Any] | None:
            tb = await cluster.bot("stalebot")
            return tb if _remediation(tb).get("lockClear") == "stalebot-5d8f-gone" else None
        tb = await eventually(cleared, within=30, what="the stale lock cleared")
        assert _history(tb) == ["ClearStaleLock:StaleLockCleared"]

        async def lock_clearing_pod() -> dict[str, Any] | None:
            pods = await _pods(cluster, "stalebot")
            init = [c["name"] for p in pods for c in p["spec"].get("initContainers") or ()]
            return pods[0] if init == ["lock-clear"] else None
        pod = await eventually(lock_clearing_pod, within=30, what="a pod that clears it first")
        assert pod["spec"]["initContainers"][0]["command"][:4] == [
            "novapulse", "lock", "clear", "--if-stale"]

        tb = await eventually(lambda: _history_count(cluster, "heldbot", "Warn", 1),
                              within=30, what="the TwoBotsAboutToRun warning")
        assert _history(tb) == ["Warn:TwoBotsAboutToRun"]
        assert "lockClear" not in _remediation(tb)
        held = await _deployment(cluster, "heldbot")
        assert "initContainers" not in held["spec"]["template"]["spec"]
        warnings = [e for e in await cluster.events("TwoBotsAboutToRun")]
        assert len(warnings) == 1 and warnings[0]["type"] == "Warning"
        assert "holder-0" in warnings[0]["message"]
        assert await cluster.get(f"/api/v1/namespaces/{NS}/pods/holder-0") is not None


async def _ready_reason(cluster: Cluster, name: str, reason: str) -> dict[str, Any] | None:
    tb = await cluster.bot(name)
    ready = _cond(tb, "Ready")
    return tb if ready.get("status") == "False" and ready.get("reason") == reason else None
