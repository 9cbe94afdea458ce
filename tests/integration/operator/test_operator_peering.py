"""Peering: a replica stays passive while a higher-priority one is alive, then takes over."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
from collections.abc import AsyncIterator

import kmock
import kopf

from novapulse_operator.handlers import register

from .conftest import FAST, Cluster, eventually

PEERING = "/apis/kopf.dev/v1/clusterkopfpeerings/novapulse"


@contextlib.asynccontextmanager
async def peered_operator(priority: int) -> AsyncIterator[None]:
    registry = kopf.OperatorRegistry()
    register(registry, FAST)
    ready, stop = asyncio.Event(), asyncio.Event()
    task = asyncio.create_task(kopf.operator(
        registry=registry, clusterwide=True, peering_name="novapulse", priority=priority,
        identity="replica-under-test", ready_flag=ready, stop_flag=stop))
    try:
        await asyncio.wait_for(ready.wait(), 10)
        yield
    finally:
        stop.set()
        try:
            await asyncio.wait_for(asyncio.shield(task), 1.5)
        except TimeoutError:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task


async def test_lower_priority_replica_stays_passive(cluster: Cluster) -> None:
    def declare() -> None:
        cluster.thread.emulator.resources["kopf.dev/v1/clusterkopfpeerings"] = (
            kmock.ResourceInfo(kind="ClusterKopfPeering", namespaced=False,
                               verbs={"get", "list", "watch", "patch", "create"}))
    cluster.thread.loop.call_soon_threadsafe(declare)
    await asyncio.sleep(0.1)
    now = datetime.datetime.now(datetime.UTC).isoformat()
    await cluster.post("/apis/kopf.dev/v1/clusterkopfpeerings", {
        "apiVersion": "kopf.dev/v1", "kind": "ClusterKopfPeering",
        "metadata": {"name": "novapulse"},
        "status": {"active-replica": {"priority": 100, "lifetime": 60, "lastseen": now}}})

    async with peered_operator(priority=10):
        await cluster.create_bot("bot1", {"mode": "paper"})
        await asyncio.sleep(2)  # plenty of time for an active operator (it takes ~0.3 s)
        assert await cluster.child("apps/v1", "deployments", "bot1") is None

        # The active replica goes away (its peering entry is removed): this one takes over.
        await cluster.patch(PEERING, {"status": {"active-replica": None}})
        await eventually(lambda: cluster.child("apps/v1", "deployments", "bot1"),
                         what="the passive replica to take over")
