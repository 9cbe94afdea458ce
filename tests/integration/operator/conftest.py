"""The real kopf runtime against kmock's Kubernetes emulator (see emulator.py)."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import kopf
import pytest
import yaml

from novapulse_operator.handlers import OperatorConfig, register

from .emulator import EmulatorThread

NS = "default"
BOTS = "/apis/novapulse.io/v1alpha1/namespaces/default/tradingbots"


class Cluster:
    """The emulator and an HTTP client to it, with the few helpers the tests need."""

    def __init__(self, thread: EmulatorThread, http: aiohttp.ClientSession) -> None:
        self.thread = thread
        self.url = thread.url
        self.http = http

    async def get(self, path: str) -> dict[str, Any] | None:
        async with self.http.get(path) as resp:
            return None if resp.status == 404 else dict(await resp.json())

    async def post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        async with self.http.post(path, json=body) as resp:
            assert resp.status < 300, await resp.text()
            return dict(await resp.json())

    async def patch(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        headers = {"Content-Type": "application/merge-patch+json"}
        async with self.http.patch(path, json=body, headers=headers) as resp:
            assert resp.status < 300, await resp.text()
            return dict(await resp.json())

    async def delete(self, path: str) -> None:
        async with self.http.delete(path) as resp:
            assert resp.status < 300, await resp.text()

    async def create_bot(self, name: str, spec: dict[str, Any],
                         annotations: dict[str, str] | None = None) -> dict[str, Any]:
        meta: dict[str, Any] = {"name": name, "namespace": NS}
        if annotations:
            meta["annotations"] = annotations
        body = {"apiVersion": "novapulse.io/v1alpha1", "kind": "TradingBot",
                "metadata": meta, "spec": spec}
        return await self.post(BOTS, body)

    async def bot(self, name: str) -> dict[str, Any] | None:
        return await self.get(f"{BOTS}/{name}")

    async def child(self, api: str, plural: str, name: str) -> dict[str, Any] | None:
        prefix = "/api/v1" if api == "v1" else f"/apis/{api}"
        return await self.get(f"{prefix}/namespaces/{NS}/{plural}/{name}")

    async def create_secret(self, name: str, data: dict[str, str]) -> None:
        await self.post(f"/api/v1/namespaces/{NS}/secrets", {
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": name, "namespace": NS}, "stringData": data})

    async def patch_secret(self, name: str, data: dict[str, str]) -> None:
        encoded = {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}
        await self.patch(f"/api/v1/namespaces/{NS}/secrets/{name}", {"data": encoded})

    async def events(self, reason: str | None = None) -> list[dict[str, Any]]:
        found = await self.get(f"/api/v1/namespaces/{NS}/events") or {}
        return [e for e in found.get("items", []) if reason is None or e.get("reason") == reason]

    async def count(self, api: str, plural: str) -> int:
        prefix = "/api/v1" if api == "v1" else f"/apis/{api}"
        found = await self.get(f"{prefix}/namespaces/{NS}/{plural}") or {}
        return len(found.get("items", []))


async def eventually(check: Callable[[], Awaitable[Any]], within: float = 10.0,
                     what: str = "condition") -> Any:
    """Poll `check` until it returns something truthy (and return it)."""
    deadline = time.monotonic() + within
    last: Any = None
    while time.monotonic() < deadline:
        last = await check()
        if last:
            return last
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}; last: {last!r}")


@pytest.fixture()
async def cluster(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Cluster]:
    thread = EmulatorThread()
    thread.start()
    try:
        async with aiohttp.ClientSession(thread.url) as http:
            cluster = Cluster(thread, http)
            kubeconfig = tmp_path / "kubeconfig"
            kubeconfig.write_text(yaml.safe_dump({
                "apiVersion": "v1", "kind": "Config", "current-context": "emulator",
                "clusters": [{"name": "emulator", "cluster": {"server": thread.url}}],
                "users": [{"name": "tester", "user": {"token": "test-token"}}],
                "contexts": [{"name": "emulator",
                              "context": {"cluster": "emulator", "user": "tester"}}],
            }))
            monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
            yield cluster
    finally:
        thread.stop()


FAST = OperatorConfig(resync_seconds=0.3, flat_wait_seconds=2.0, delete_retry_seconds=0.5,
                      poll_seconds=0.1, server_timeout=30, client_timeout=40,
                      connect_timeout=5)


@contextlib.asynccontextmanager
async def running_kopf(cfg: OperatorConfig = FAST,
                       **operator_kwargs: Any) -> AsyncIterator[asyncio.Task[None]]:
    """The real kopf operator with our handlers, in-process, logging in through KUBECONFIG;
    `operator_kwargs` go to `kopf.operator` (standalone, peering, priority…)."""
    registry = kopf.OperatorRegistry()
    register(registry, cfg)
    ready: asyncio.Event = asyncio.Event()
    stop: asyncio.Event = asyncio.Event()
    task = asyncio.create_task(kopf.operator(
        registry=registry, clusterwide=True, ready_flag=ready, stop_flag=stop,
        **operator_kwargs))
    try:
        await asyncio.wait_for(ready.wait(), 10)
        yield task
    finally:
        stop.set()
        try:
            # A timer caught mid-run is orphaned by kopf and then waited for 5 s as a "hung
            # task"; past the graceful part, cancel (kopf then cancels its leftovers at once).
            await asyncio.wait_for(asyncio.shield(task), 1.5)
        except TimeoutError:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task


@contextlib.asynccontextmanager
async def operator(cfg: OperatorConfig = FAST) -> AsyncIterator[asyncio.Task[None]]:
    """The operator as the tests run it: standalone, no peering."""
    async with running_kopf(cfg, standalone=True, settings=kopf.OperatorSettings()) as task:
        yield task
