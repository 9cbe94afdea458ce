"""Peering: a replica stays passive while a higher-priority one is alive, then takes over."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
from collections.abc import AsyncIterator

from .conftest import FAST, PEERINGS, Cluster, eventually, running_kopf

PEERING = f"{PEERINGS}/novapulse"


@contextlib.asynccontextmanager
async def peered_operator(priority: int) -> AsyncIterator[None]:
    async with running_kopf(FAST, peering_name="novapulse", priority=priority,
                            identity="replica-under-test"):
        yield


async def test_lower_priority_replica_stays_passive(cluster: Cluster) -> None:
    await cluster.declare_peering()
    now = datetime.datetime.now(datetime.UTC).isoformat()
    await cluster.post(PEERINGS, {
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
