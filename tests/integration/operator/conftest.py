"""The real kopf runtime against kmock's Kubernetes emulator.

The emulator stores objects as sent. `ClusterLikeEmulator` adds only what every API server
does on write and the operator relies on (uid, resourceVersion, creationTimestamp,
generation bumped on spec changes, generateName, stringData → data), so the tests keep to
what a real cluster would show. No defaulting, no controllers, no garbage collection.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import datetime
import secrets
import threading
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import kmock
import kopf
import pytest
import yaml
from kmock._internal import enums, rendering

from novapulse_operator.handlers import OperatorConfig, register

NS = "default"
BOTS = "/apis/novapulse.io/v1alpha1/namespaces/default/tradingbots"
RESOURCES = {
    "apiextensions.k8s.io/v1/customresourcedefinitions": ("CustomResourceDefinition", False),
    "v1/namespaces": ("Namespace", False),
    "v1/events": ("Event", True),
    "v1/configmaps": ("ConfigMap", True),
    "v1/secrets": ("Secret", True),
    "v1/services": ("Service", True),
    "v1/serviceaccounts": ("ServiceAccount", True),
    "v1/persistentvolumeclaims": ("PersistentVolumeClaim", True),
    "apps/v1/deployments": ("Deployment", True),
    "networking.k8s.io/v1/networkpolicies": ("NetworkPolicy", True),
}
VERBS = {"get", "list", "watch", "create", "patch", "update", "delete"}


class ClusterLikeEmulator(kmock.KubernetesEmulator):
    """The emulator plus the write-time bookkeeping of a real API server (see module doc)."""

    hold_creates_of: str | None = None  # a plural whose creation blocks until released
    release: asyncio.Event | None = None

    async def _handle(self, request: rendering.Request) -> Any:
        if request.resource is not None and isinstance(request.data, dict):
            if request.action == enums.action.CREATE:
                self._on_create(request.data)
                if self.hold_creates_of == request.resource.plural and self.release:
                    await self.release.wait()
            elif request.action == enums.action.UPDATE and "spec" in request.data:
                key = (request.resource, request.namespace, request.name)
                if key in self.objects and not self.objects[key].deleted:
                    gen = int(self.objects[key].get("metadata", {}).get("generation") or 1)
                    request.data.setdefault("metadata", {})["generation"] = gen + 1
        return await super()._handle(request)

    @staticmethod
    def _on_create(obj: dict[str, Any]) -> None:
        meta = obj.setdefault("metadata", {})
        if not meta.get("name") and meta.get("generateName"):
            meta["name"] = meta["generateName"] + secrets.token_hex(4)
        meta.setdefault("uid", str(uuid.uuid4()))
        meta.setdefault("resourceVersion", "1")
        meta.setdefault("generation", 1)
        meta.setdefault("creationTimestamp",
                        datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))
        if "stringData" in obj:
            data = obj.setdefault("data", {})
            for k, v in obj.pop("stringData").items():
                data[k] = base64.b64encode(str(v).encode()).decode()


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


class EmulatorThread:
    """The emulator on its own event loop and thread, like an API server in its own process:
    kopf's shutdown (which cancels every task spawned after its start) never touches it."""

    def __init__(self) -> None:
        self.emulator = ClusterLikeEmulator()
        self.loop = asyncio.new_event_loop()
        self.url = ""
        self._started = threading.Event()
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._main, name="emulator", daemon=True)

    def _main(self) -> None:
        self.loop.run_until_complete(self._serve())

    async def _serve(self) -> None:
        self._stop = asyncio.Event()
        self.emulator.release = asyncio.Event()
        async with self.emulator, kmock.Server(self.emulator) as server:
            for key, (kind, namespaced) in RESOURCES.items():
                self.emulator.resources[key] = kmock.ResourceInfo(
                    kind=kind, namespaced=namespaced, verbs=VERBS)
            self.emulator.resources["novapulse.io/v1alpha1/tradingbots"] = kmock.ResourceInfo(
                kind="TradingBot", namespaced=True, verbs=VERBS, shortnames={"tb"},
                categories={"novapulse"}, subresources={"status"})
            self.url = str(server.url).rstrip("/")
            self._started.set()
            await self._stop.wait()

    def start(self) -> None:
        self._thread.start()
        if not self._started.wait(10):
            raise RuntimeError("the emulator did not start")

    def hold_creates(self, plural: str | None) -> None:
        """Block (plural) or unblock (None) creations, as a slow API server would."""
        def flip() -> None:
            assert self.emulator.release is not None
            if plural is None:
                self.emulator.release.set()
            else:
                self.emulator.release.clear()
            self.emulator.hold_creates_of = plural
        self.loop.call_soon_threadsafe(flip)

    def stop(self) -> None:
        if self._stop is not None:
            self.loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)


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
async def operator(cfg: OperatorConfig = FAST) -> AsyncIterator[asyncio.Task[None]]:
    """The real kopf operator, in-process, logging in through KUBECONFIG."""
    registry = kopf.OperatorRegistry()
    register(registry, cfg)
    settings = kopf.OperatorSettings()
    ready: asyncio.Event = asyncio.Event()
    stop: asyncio.Event = asyncio.Event()
    task = asyncio.create_task(kopf.operator(
        registry=registry, settings=settings, standalone=True, clusterwide=True,
        ready_flag=ready, stop_flag=stop))
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
