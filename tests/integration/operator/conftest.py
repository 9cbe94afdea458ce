"""The real kopf runtime against a Kubernetes API server.

A real one (kube-apiserver + kube-controller-manager + etcd, one per session) when
`KUBEBUILDER_ASSETS` names them (`make envtest`; CI always does), else kmock's emulator
(emulator.py, one per test). Every test uses the namespace `default`, emptied after it.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import inspect
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import kmock
import kopf
import pytest
import yaml

from novapulse_operator.handlers import OperatorConfig, register
from support.envtest import ASSETS_ENV, ControlPlane, assets_dir

from .emulator import EmulatorThread

NS = "default"
BOTS = "/apis/novapulse.io/v1alpha1/namespaces/default/tradingbots"
PEERINGS = "/apis/kopf.dev/v1/clusterkopfpeerings"
CRDS = Path(__file__).resolve().parents[3] / "crds"
# What a test may leave behind in NS (plus the cluster-scoped peerings), emptied after it.
TEST_COLLECTIONS = [BOTS, PEERINGS] + [
    f"{prefix}/namespaces/{NS}/{plural}" for prefix, plural in [
        ("/apis/apps/v1", "deployments"), ("/apis/apps/v1", "replicasets"),
        ("/api/v1", "pods"), ("/api/v1", "services"), ("/api/v1", "persistentvolumeclaims"),
        ("/api/v1", "configmaps"), ("/api/v1", "secrets"), ("/api/v1", "serviceaccounts"),
        ("/apis/networking.k8s.io/v1", "networkpolicies"), ("/api/v1", "events")]]
# The cluster's own: ServiceAccount default and the CA ConfigMaps the controller-manager
# puts in every namespace, Service kubernetes in default.
SYSTEM_OBJECTS = ("default", "kube-root-ca.crt", "openshift-service-ca.crt", "kubernetes")


def bot_path(name: str) -> str:
    return f"{BOTS}/{name}"


class Cluster:
    """The emulator and an HTTP client to it, with the few helpers the tests need."""

    def __init__(self, url: str, http: aiohttp.ClientSession,
                 thread: EmulatorThread | None = None) -> None:
        self.url = url
        self.http = http
        self.thread = thread  # the emulator; None on a real API server

    @property
    def real(self) -> bool:
        return self.thread is None

    async def declare_peering(self) -> None:
        """Make kopf's peering resource known (a real server has its CRD from crds/)."""
        thread = self.thread
        if thread is None:
            return
        declared = asyncio.Event()
        loop = asyncio.get_running_loop()

        def declare() -> None:
            thread.emulator.resources["kopf.dev/v1/clusterkopfpeerings"] = kmock.ResourceInfo(
                kind="ClusterKopfPeering", namespaced=False,
                verbs={"get", "list", "watch", "patch", "create"})
            loop.call_soon_threadsafe(declared.set)
        thread.loop.call_soon_threadsafe(declare)
        await declared.wait()

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
        return len(await self.names(api, plural))

    async def names(self, api: str, plural: str) -> list[str]:
        """The sorted names of every object of one kind in NS."""
        prefix = "/api/v1" if api == "v1" else f"/apis/{api}"
        found = await self.get(f"{prefix}/namespaces/{NS}/{plural}") or {}
        return sorted(item["metadata"]["name"] for item in found.get("items", []))


async def eventually(check: Callable[[], Awaitable[Any] | Any], within: float = 10.0,
                     what: str = "condition") -> Any:
    """Poll `check` (a coroutine function, or a plain one for what the test process itself
    holds) until it returns something truthy (and return it)."""
    deadline = time.monotonic() + within
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if inspect.isawaitable(last):
            last = await last
        if last:
            return last
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}; last: {last!r}")


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


@pytest.fixture(scope="session")
def control_plane() -> Iterator[ControlPlane | None]:
    """The session's real API server, or None (then each test gets an emulator).

    In CI the real one is required: without it the operator tests fail, never skip."""
    assets = assets_dir()
    if assets is None:
        if _in_ci():
            pytest.fail(f"{ASSETS_ENV} is not set: CI runs the operator tests on a real API "
                        "server (see .ci/run and `make envtest`)", pytrace=False)
        yield None
        return
    plane = ControlPlane(assets)
    plane.start(doc for path in sorted(CRDS.glob("*.yaml"))
                for doc in yaml.safe_load_all(path.read_text()))
    try:
        yield plane
    finally:
        plane.stop()


@contextlib.asynccontextmanager
async def emulated_cluster(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                           ) -> AsyncIterator[Cluster]:
    thread = EmulatorThread()
    thread.start()
    try:
        async with aiohttp.ClientSession(thread.url) as http:
            kubeconfig = tmp_path / "kubeconfig"
            kubeconfig.write_text(yaml.safe_dump({
                "apiVersion": "v1", "kind": "Config", "current-context": "emulator",
                "clusters": [{"name": "emulator", "cluster": {"server": thread.url}}],
                "users": [{"name": "tester", "user": {"token": "test-token"}}],
                "contexts": [{"name": "emulator",
                              "context": {"cluster": "emulator", "user": "tester"}}],
            }))
            monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
            yield Cluster(thread.url, http, thread)
    finally:
        thread.stop()


@contextlib.asynccontextmanager
async def real_cluster(plane: ControlPlane, monkeypatch: pytest.MonkeyPatch,
                       ) -> AsyncIterator[Cluster]:
    monkeypatch.setenv("KUBECONFIG", str(plane.kubeconfig))
    headers = {"Authorization": f"Bearer {plane.admin_token}"}
    connector = aiohttp.TCPConnector(ssl=plane.ssl_context())
    try:
        async with aiohttp.ClientSession(plane.url, headers=headers,
                                         connector=connector) as http:
            yield Cluster(plane.url, http)
    finally:
        await asyncio.to_thread(plane.empty, TEST_COLLECTIONS, SYSTEM_OBJECTS)


@pytest.fixture()
async def cluster(control_plane: ControlPlane | None, tmp_path: Path,
                  monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Cluster]:
    if control_plane is None:
        async with emulated_cluster(tmp_path, monkeypatch) as emulated:
            yield emulated
    else:
        async with real_cluster(control_plane, monkeypatch) as real:
            yield real


@pytest.fixture()
def real(cluster: Cluster) -> Cluster:
    """The cluster when it is a real API server, else the test is skipped: what it checks
    only a real one does (CEL, field ownership, pod status, printer columns, GC)."""
    if not cluster.real:
        pytest.skip("needs a real API server: KUBEBUILDER_ASSETS (see `make envtest`)")
    return cluster


@pytest.fixture()
async def emulator(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Cluster]:
    """Always the emulator: for what no real server lets a test do (hang a request)."""
    async with emulated_cluster(tmp_path, monkeypatch) as emulated:
        yield emulated


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
