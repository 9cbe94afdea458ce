"""kmock's Kubernetes emulator, made a little more like an API server, on its own thread.

The emulator stores objects as sent. `ClusterLikeEmulator` adds only what every API server
does on write and the operator relies on (uid, resourceVersion, creationTimestamp,
generation bumped on spec changes, generateName, stringData → data), so the tests keep to
what a real cluster would show. No defaulting, no controllers, no garbage collection.
Used by the operator's integration tests and by bench/operator_scale.py.
"""

from __future__ import annotations

import asyncio
import base64
import datetime
import secrets
import threading
import uuid
from typing import Any

import kmock
from kmock._internal import enums, rendering

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

    _inflight: set[int]
    hold_creates_of: str | None = None  # a plural whose creation blocks until released
    release: asyncio.Event | None = None

    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()
        self._inflight = set()

    async def _handle(self, request: rendering.Request) -> Any:
        self._inflight.add(id(request))
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
        try:
            return await super()._handle(request)
        finally:
            self._inflight.discard(id(request))
            self._forget_finished_requests()

    def _forget_finished_requests(self) -> None:
        """kmock logs every request for assertions and matches each new request by scanning
        that log with costly filters (quadratic: 0.1 s per request after a few hundred).
        Nothing here asserts on past requests: keep only those still being served."""
        self._requests[:] = [r for r in self._requests if id(r) in self._inflight]
        for payload in self._payloads:
            payload._requests.clear()

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
