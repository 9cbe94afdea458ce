"""The auto-pilot under injected faults, on a real kube-apiserver (+ controller-manager):
the real `novapulse run` process on the replay feed for runbooks 2 and 3, pod faults written
into the status subresource of the Pods the controller-manager made for runbooks 1 and 6 (no
kubelet: nothing else ever writes a pod's status), and `kubectl get tb` as the API server
prints it. Each test starts the operator once and runs its scenarios on it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from novapulse.instance_lock import HolderInfo, InstanceAlreadyRunning
from novapulse.market.replay_server import ReplayServer
from support.bot_env import free_port
from support.bot_process import BotProcess

from .conftest import NS, Cluster, bot_path, eventually, operator
from .faults_support import (
    DASHBOARD,
    PILOT,
    SLACK,
    bot_launch,
    bot_pods,
    bot_status,
    cond_is,
    condition,
    crash_loop,
    feed_is,
    history_count,
    history_of,
    holders_of,
    holds_pause,
    new_pod,
    now_text,
    pause_released,
    phase_is,
    remediation_of,
    replay_server,
    set_container,
    stop_bot,
    terminated,
    until,
)

PAUSE_AFTER, RESUME_AFTER = 5, 3  # seconds (spec.remediation.feed, the CRD's bounds allow)
TABLE = "application/json;as=Table;v=v1;g=meta.k8s.io"


@pytest.fixture()
async def replay() -> AsyncIterator[ReplayServer]:
    async with replay_server() as server:
        yield server


@pytest.fixture()
async def bot(replay: ReplayServer, pg_dsn: str, tmp_path: Path) -> AsyncIterator[BotProcess]:
    """The real bot in paper mode on the replay feed, with the dashboard keys its
    TradingBot's Secret holds (the operator calls it with that admin key)."""
    process = await bot_launch("paper", replay.url, pg_dsn, tmp_path).start()
    try:
        yield process
    finally:
        await stop_bot(process)


# --- helpers -----------------------------------------------------------------------------------

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
            return tb if seen.get("wsConnected") and condition(tb, "FeedHealthy").get(
                "status") == "True" else None
        await eventually(mirrored, within=60, what="status.bot mirrored, FeedHealthy=True")

        # kubectl get tb: a pod Ready (as a kubelet would say) → Running, every column filled.
        pod = await new_pod(cluster, "feedbot")
        await set_container(cluster, pod, 0, {"running": {"startedAt": now_text()}},
                            ready=True, phase="Running")
        await eventually(lambda: phase_is(cluster, "feedbot", "Running"), within=30,
                         what="phase Running once the pod is Ready")
        row = await eventually(lambda: _printed_row(cluster, "feedbot"), within=30,
                               what="a full row")
        assert row["Mode"] == "paper" and row["Phase"] == "Running"
        assert row["Feed"] == "True" and row["Paused"] is False
        assert isinstance(row["Positions"], int) and isinstance(row["PnL"], int | float)

        # Runbook 2: the feed goes silent (open socket, no data, reconnects refused).
        replay.refuse_connections(3600)
        replay.go_silent(3600)
        down_at = await until(lambda: feed_is(bot, False), 30, "the bot's feed down")
        paused_at = await until(lambda: holds_pause(bot, "operator"), PAUSE_AFTER + SLACK + 5,
                                "the operator's pause")
        assert PAUSE_AFTER - 1.5 <= paused_at - down_at <= PAUSE_AFTER + SLACK
        tb = await eventually(lambda: cond_is(cluster, "feedbot", "FeedHealthy", "False"),
                              within=15, what="FeedHealthy=False")
        assert condition(tb, "FeedHealthy")["reason"] == "Disconnected"
        tb = await eventually(lambda: cond_is(cluster, "feedbot", "TradingActive", "False"),
                              within=15, what="TradingActive=False")
        assert condition(tb, "TradingActive")["reason"] == "PausedByOperator"

        # The feed returns: resumed once healthy for resumeAfterHealthy, not before.
        replay.refuse_connections(0)
        up_at = await until(lambda: feed_is(bot, True), 30, "the bot's feed back")
        resumed_at = await until(lambda: pause_released(bot), RESUME_AFTER + SLACK + 5,
                                 "the operator's resume")
        assert RESUME_AFTER - 1.5 <= resumed_at - up_at <= RESUME_AFTER + SLACK
        tb = await eventually(lambda: history_count(cluster, "feedbot", "Resume", 1),
                              within=15, what="the resume in the history")
        assert history_of(tb) == ["Pause:FeedDownPaused", "Resume:FeedHealthyResumed"]
        reasons = [e["reason"] for e in await cluster.events()]
        assert reasons.count("FeedDownPaused") == 1 and reasons.count("FeedHealthyResumed") == 1

        # Runbook 3: a human pauses; then the feed flaps past pauseAfter and comes back.
        resp = await bot.api("POST", "/api/v1/control/pause", json={"reason": "checking"})
        assert resp.status_code == 200, resp.text
        replay.refuse_connections(3600)
        replay.go_silent(3600)
        await until(lambda: feed_is(bot, False), 30, "the feed down again")
        await until(lambda: holds_pause(bot, "operator"), PAUSE_AFTER + SLACK + 5,
                    "the operator's second pause (beside the human's)")
        replay.refuse_connections(0)
        await until(lambda: feed_is(bot, True), 30, "the feed back again")
        await eventually(lambda: history_count(cluster, "feedbot", "Resume", 2),
                         within=RESUME_AFTER + SLACK + 5, what="the operator's second resume")
        status = await bot_status(bot)
        assert status["paused"] is True and holders_of(status) == ["manual"]
        assert status["pause_reason"] == "checking"
        tb = await eventually(lambda: cond_is(cluster, "feedbot", "TradingActive", "False"),
                              within=15, what="TradingActive=False after the flap")
        assert condition(tb, "TradingActive")["reason"] == "PausedManually"
        row = await eventually(lambda: _printed_row(cluster, "feedbot", paused=True),
                               within=15, what="PAUSED true in kubectl get tb")
        assert row["Paused"] is True








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
            pod = await new_pod(cluster, "oombot", seen)
            seen.add(pod["metadata"]["uid"])
            await set_container(cluster, pod, restarts, terminated("OOMKilled", 137))

            async def raised(want: str = limit) -> dict[str, Any] | None:
                tb = await cluster.bot("oombot")
                return tb if remediation_of(tb).get("memoryLimit") == want else None
            await eventually(raised, within=30, what=f"memory limit {limit}")
            pod = await new_pod(cluster, "oombot", seen)  # the Deployment rolled it
            assert _memory_limit(pod) == limit
        assert _memory_limit(await _deployment(cluster, "oombot")) == "3Gi"

        # A third OOM kill at the ceiling: the retention settings of runbook 6 instead.
        seen.add(pod["metadata"]["uid"])
        await set_container(cluster, pod, 3, terminated("OOMKilled", 137))

        async def reduced() -> dict[str, Any] | None:
            tb = await cluster.bot("oombot")
            return tb if remediation_of(tb).get("retentionReduced") else None
        tb = await eventually(reduced, within=30, what="retention reduced")
        assert remediation_of(tb)["memoryLimit"] == "3Gi"
        assert history_of(tb) == ["RaiseMemoryLimit:MemoryLimitRaised"] * 2 + [
            "ReduceRetention:RetentionReduced"]
        pod = await new_pod(cluster, "oombot", seen)
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
        first = await new_pod(cluster, "crashbot")
        crash = terminated("Error", 1)
        await set_container(cluster, first, 4, crash_loop(), crash)
        second = await new_pod(cluster, "crashbot", {first["metadata"]["uid"]})
        await set_container(cluster, second, 4, crash_loop(), crash)
        tb = await eventually(lambda: _ready_reason(cluster, "crashbot",
                                                    "RestartBudgetExhausted"),
                              within=30, what="Ready=False RestartBudgetExhausted")
        message = condition(tb, "Ready")["message"]
        assert "maxPerHour: 1" in message and "kubectl logs" in message
        assert [p["metadata"]["uid"] for p in await bot_pods(cluster, "crashbot")] == [
            second["metadata"]["uid"]]  # not restarted again
        assert history_of(tb) == ["RestartPod:CrashLoopRestart", "Warn:RestartBudgetExhausted"]

        # Runbook 1, cause 1: exit code 3, the holder gone → cleared; the holder alive → not.
        for name, holder in (("stalebot", "stalebot-5d8f-gone"), ("heldbot", "holder-0")):
            pod = await new_pod(cluster, name)
            message = str(InstanceAlreadyRunning(Path("/data/instance.lock"), HolderInfo(
                pod=holder, pid=7, host=holder, started_at=0.0, heartbeat_at=0.0,
                identity=f"{NS}/{name}")))
            await set_container(cluster, pod, 1, crash_loop(),
                                terminated("Error", 3, f"ERROR {message}\n"))

        async def cleared() -> dict[str, Any] | None:
            tb = await cluster.bot("stalebot")
            return tb if remediation_of(tb).get("lockClear") == "stalebot-5d8f-gone" else None
        tb = await eventually(cleared, within=30, what="the stale lock cleared")
        assert history_of(tb) == ["ClearStaleLock:StaleLockCleared"]

        async def lock_clearing_pod() -> dict[str, Any] | None:
            pods = await bot_pods(cluster, "stalebot")
            init = [c["name"] for p in pods for c in p["spec"].get("initContainers") or ()]
            return pods[0] if init == ["lock-clear"] else None
        pod = await eventually(lock_clearing_pod, within=30, what="a pod that clears it first")
        assert pod["spec"]["initContainers"][0]["command"][:4] == [
            "novapulse", "lock", "clear", "--if-stale"]

        tb = await eventually(lambda: history_count(cluster, "heldbot", "Warn", 1),
                              within=30, what="the TwoBotsAboutToRun warning")
        assert history_of(tb) == ["Warn:TwoBotsAboutToRun"]
        assert "lockClear" not in remediation_of(tb)
        held = await _deployment(cluster, "heldbot")
        assert "initContainers" not in held["spec"]["template"]["spec"]
        warnings = [e for e in await cluster.events("TwoBotsAboutToRun")]
        assert len(warnings) == 1 and warnings[0]["type"] == "Warning"
        assert "holder-0" in warnings[0]["message"]
        assert await cluster.get(f"/api/v1/namespaces/{NS}/pods/holder-0") is not None


async def _ready_reason(cluster: Cluster, name: str, reason: str) -> dict[str, Any] | None:
    tb = await cluster.bot(name)
    ready = condition(tb, "Ready")
    return tb if ready.get("status") == "False" and ready.get("reason") == reason else None
