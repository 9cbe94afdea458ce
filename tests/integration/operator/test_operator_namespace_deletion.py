"""Deleting a bot's namespace on a real API server: the namespace controller (in the real
kube-controller-manager) deletes everything at once, yet the operator's teardown still reads
the dashboard Secret and pauses the real `novapulse run` process with its admin key — the
Secret and the Deployment are held by the finalizer `teardown.novapulse.io/NAME` until then.

The operator is stopped while the namespace goes, so it starts again with no admin key in
memory: the Secret it reads then is the only way to the bot.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from novapulse.market.replay_server import ReplayServer

from .conftest import BOTS, Cluster, eventually, operator
from .faults_support import DASHBOARD, PILOT, bot_launch, bot_status, replay_server, stop_bot

NAMESPACE = "desk-closing"
HOLD = "teardown.novapulse.io/deskbot"
NS_PATH = f"/api/v1/namespaces/{NAMESPACE}"
TB_PATH = f"/apis/novapulse.io/v1alpha1/namespaces/{NAMESPACE}/tradingbots/deskbot"
SECRET_PATH = f"{NS_PATH}/secrets/desk-dash"
DEPLOYMENT_PATH = f"/apis/apps/v1/namespaces/{NAMESPACE}/deployments/deskbot"
CONFIG_PATH = f"{NS_PATH}/configmaps/deskbot-config"
HELD_PATHS = (TB_PATH, SECRET_PATH, DEPLOYMENT_PATH)


@pytest.fixture()
async def replay() -> AsyncIterator[ReplayServer]:
    async with replay_server() as server:
        yield server


@pytest.fixture()
async def namespace(real: Cluster) -> AsyncIterator[Cluster]:
    await real.post("/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace",
                                           "metadata": {"name": NAMESPACE}})
    try:
        yield real
    finally:  # a failed test leaves nothing held: the next one starts clean
        for path in HELD_PATHS:
            if await real.get(path) is not None:
                async with real.http.patch(
                        path, json={"metadata": {"finalizers": None}},
                        headers={"Content-Type": "application/merge-patch+json"}):
                    pass
        if await real.get(NS_PATH) is not None:
            async with real.http.delete(NS_PATH):
                pass
        await eventually(lambda: _gone(real, NS_PATH), within=120, what="the namespace gone")


async def _gone(cluster: Cluster, path: str) -> bool:
    return await cluster.get(path) is None


def _finalizers(obj: dict[str, Any] | None) -> list[str]:
    return list(((obj or {}).get("metadata") or {}).get("finalizers") or [])


async def _held(cluster: Cluster) -> dict[str, Any] | None:
    tb = await cluster.get(TB_PATH)
    holds = ((tb or {}).get("status") or {}).get("teardownHolds") or []
    mirrored = (((tb or {}).get("status") or {}).get("bot") or {}).get("mode") == "paper"
    return tb if mirrored and sorted(holds) == ["Deployment/deskbot", "Secret/desk-dash"] \
        else None


async def _swept(cluster: Cluster) -> bool:
    """The namespace controller is through: the unheld children are gone, the held ones
    (which must still be there) are marked for deletion."""
    marked = []
    for path in (SECRET_PATH, DEPLOYMENT_PATH):
        found = await cluster.get(path)
        assert found is not None, f"{path} was deleted before the teardown"
        marked.append(bool(found["metadata"].get("deletionTimestamp")))
    return all(marked) and await _gone(cluster, CONFIG_PATH)


async def test_a_namespace_deletion_pauses_the_bot_with_the_key_of_its_held_secret(
        namespace: Cluster, replay: ReplayServer, pg_dsn: str, tmp_path: Path) -> None:
    cluster = namespace
    bot = await bot_launch("paper", replay.url, pg_dsn, tmp_path).start()
    try:
        await cluster.post(f"{NS_PATH}/secrets", {
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "desk-dash", "namespace": NAMESPACE}, "stringData": DASHBOARD})
        async with operator(PILOT):
            await cluster.post(f"/apis/novapulse.io/v1alpha1/namespaces/{NAMESPACE}/tradingbots", {
                "apiVersion": "novapulse.io/v1alpha1", "kind": "TradingBot",
                "metadata": {"name": "deskbot", "namespace": NAMESPACE,
                             "annotations": {"novapulse.io/bot-endpoint": bot.url}},
                "spec": {"mode": "paper", "pairs": ["ETH/BTC"],
                         "dashboard": {"secretRef": {"name": "desk-dash"}}}})
            await eventually(lambda: _held(cluster), within=60,
                             what="the bot mirrored and its Deployment and Secret held")
            assert HOLD in _finalizers(await cluster.get(SECRET_PATH))
            assert HOLD in _finalizers(await cluster.get(DEPLOYMENT_PATH))
        assert holds_none(await bot_status(bot))

        # The operator is away (an upgrade, a crash) when the namespace is deleted.
        await cluster.delete(NS_PATH)
        await eventually(lambda: _swept(cluster), within=60,
                         what="the namespace controller deleting every child")

        async with operator(PILOT):
            await eventually(lambda: _paused_for_deletion(bot), within=30,
                             what="the bot paused by the operator's teardown")
            for path in HELD_PATHS:
                await eventually(lambda p=path: _gone(cluster, p), within=30,  # type: ignore[misc]
                                 what=f"{path} let go once the teardown was done")
        await eventually(lambda: _gone(cluster, NS_PATH), within=120,
                         what="the namespace deleted")
        status = await bot_status(bot)
        assert status["open_positions"] == 0  # closePositions (the default) closed them
    finally:
        await stop_bot(bot)


def holds_none(status: dict[str, Any]) -> bool:
    return not status.get("pauses")


async def _paused_for_deletion(bot: Any) -> bool:
    pauses = (await bot_status(bot)).get("pauses") or []
    return any(p["by"] == "operator" and "being deleted" in p["reason"] for p in pauses)


# --- a held child deleted on purpose, the bot living on -----------------------------------------

async def _holds(cluster: Cluster, name: str, expected: list[str]) -> bool:
    tb = await cluster.bot(name)
    return sorted(((tb or {}).get("status") or {}).get("teardownHolds") or []) == expected


async def test_a_held_child_deleted_on_purpose_is_let_go_and_a_deletion_releases_the_rest(
        real: Cluster) -> None:
    cluster = real
    hold = "teardown.novapulse.io/keeper"
    await cluster.create_secret("own-dash", DASHBOARD)
    async with operator(PILOT):
        await cluster.create_bot("keeper", {"mode": "paper",
                                            "dashboard": {"secretRef": {"name": "own-dash"}}})
        await eventually(lambda: _holds(cluster, "keeper", ["Deployment/keeper",
                                                            "Secret/own-dash"]),
                         within=30, what="both held")
        first = await cluster.child("apps/v1", "deployments", "keeper")
        assert first is not None and hold in _finalizers(first)

        # Someone deletes the Deployment (not the namespace): let go, recreated, held again.
        await cluster.delete("/apis/apps/v1/namespaces/default/deployments/keeper")

        async def replaced() -> dict[str, Any] | None:
            found = await cluster.child("apps/v1", "deployments", "keeper")
            fresh = found and found["metadata"]["uid"] != first["metadata"]["uid"]
            return found if fresh and hold in _finalizers(found) else None

        second = await eventually(replaced, within=30, what="the Deployment recreated and held")

        # Deleted while someone else's finalizer keeps it: it lingers, let go by the operator.
        # A spec change then applies every child; the server adds no finalizer to an object
        # being deleted, and that refusal is no ChildRefused — it is made anew once gone.
        path = "/apis/apps/v1/namespaces/default/deployments/keeper"
        await cluster.patch(path, {"metadata": {"finalizers": [hold, "example.com/keep"]}})
        await cluster.delete(path)

        async def let_go() -> bool:
            found = await cluster.get(path)
            return found is not None and _finalizers(found) == ["example.com/keep"]

        await eventually(let_go, within=30, what="the operator's hold let go")
        tb = await cluster.patch(f"{BOTS}/keeper", {"spec": {"onDelete": "leaveOpen"}})
        generation = tb["metadata"]["generation"]

        async def reconciled() -> dict[str, Any] | None:
            found = await cluster.bot("keeper")
            seen = ((found or {}).get("status") or {}).get("observedGeneration")
            return found if seen == generation else None

        tb = await eventually(reconciled, within=30, what="the spec change reconciled")
        ready = next(c for c in tb["status"]["conditions"] if c["type"] == "Ready")
        assert ready["reason"] != "ChildRefused", ready
        assert not await cluster.events("ChildRefused")
        await cluster.patch(path, {"metadata": {"finalizers": None}})
        first = second
        await eventually(replaced, within=30, what="the Deployment recreated once gone")

        # A user replacing the dashboard Secret by delete and create is not kept waiting.
        await cluster.delete("/api/v1/namespaces/default/secrets/own-dash")
        await eventually(lambda: _gone(cluster, "/api/v1/namespaces/default/secrets/own-dash"),
                         within=30, what="the Secret let go")
        await eventually(lambda: _holds(cluster, "keeper", ["Deployment/keeper"]), within=30,
                         what="status.teardownHolds without the Secret")

        # The TradingBot's own deletion lets go of the rest: garbage collection takes it.
        await cluster.delete(f"{BOTS}/keeper")
        await eventually(lambda: _gone(cluster, f"{BOTS}/keeper"), within=30,
                         what="the TradingBot deleted")
        await eventually(
            lambda: _gone(cluster, "/apis/apps/v1/namespaces/default/deployments/keeper"),
            within=30, what="the Deployment let go and collected")
