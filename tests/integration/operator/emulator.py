"""kmock's Kubernetes emulator, made a little more like an API server, on its own thread.

The emulator stores objects as sent. `ClusterLikeEmulator` adds only what every API server
does on write and the operator relies on (uid, resourceVersion, creationTimestamp,
generation bumped on spec changes, generateName, stringData → data), so the tests keep to
what a real cluster would show. No defaulting, no controllers, no garbage collection.

Resource versions are consistent as on a real server: every write gets a new one, a list
reports the version it shows, a watch from that version sends nothing older, and a JSON
patch whose "test" of the version fails is refused with 422. kopf relies on this: after its
own patch it waits for the event of the version it made, and never acts on an older one.
Used by the operator's integration tests and by bench/operator_scale.py.
"""

from __future__ import annotations

import asyncio
import base64
import datetime
import secrets
import threading
import uuid
from collections.abc import AsyncIterator
from typing import Any

import aiohttp.web
import attrs
import jsonpatch
import kmock
from kmock._internal import enums, rendering

from novapulse_operator.kube import APPLY_PATCH, is_subset

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
WRITES = (enums.action.CREATE, enums.action.UPDATE, enums.action.DELETE)


@attrs.frozen
class JsonPatchTestFailed(kmock.KubernetesError):
    """The API server's answer to a JSON patch whose "test" op fails (kmock would answer
    500, which kopf retries unchanged instead of re-reading the object)."""

    status: int = 422
    reason: str = "Invalid"
    message: str = "the object has changed since the version the JSON patch tests"


def _version(value: Any) -> int | None:
    return int(value) if isinstance(value, str) and value.isdigit() else None


class ClusterLikeEmulator(kmock.KubernetesEmulator):
    """The emulator plus the write-time bookkeeping of a real API server (see module doc)."""

    _inflight: set[int]
    _resource_version: int
    _write_lock: asyncio.Lock
    hold_creates_of: str | None = None  # a plural whose creation blocks until released
    release: asyncio.Event | None = None

    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()
        self._inflight = set()
        self._resource_version = 0
        self._write_lock = asyncio.Lock()

    async def _handle(self, request: rendering.Request) -> Any:
        self._inflight.add(id(request))
        try:
            if request.resource is None:
                return await super()._handle(request)
            created = False
            if request.headers.get("Content-Type", "").startswith(APPLY_PATCH):
                served, created = self._as_apply(request)
                if served is not request:  # kmock serves only the requests in its log
                    self._requests[:] = [served if r is request else r for r in self._requests]
                    self._inflight.discard(id(request))
                    self._inflight.add(id(served))
                    request = served
            if (request.action == enums.action.CREATE and self.release
                    and self.hold_creates_of == request.resource.plural):
                await self.release.wait()
            if request.action not in (*WRITES, enums.action.LIST):
                return await super()._handle(request)
            # Writes one at a time, and lists between them: a list's version covers exactly
            # the writes it shows.
            async with self._write_lock:
                if request.action in WRITES:
                    self._stamp(request)
                response = await super()._handle(request)
            if created and isinstance(response, aiohttp.web.StreamResponse) \
                    and not response.prepared:
                response.set_status(201)
            return response
        except jsonpatch.JsonPatchTestFailed:
            raise JsonPatchTestFailed() from None
        finally:
            self._inflight.discard(id(request))
            self._forget_finished_requests()

    def _as_apply(self, request: rendering.Request) -> tuple[rendering.Request, bool]:
        """Server-side apply, as far as the operator relies on it: the object is created when
        absent, left untouched (no new version) when it already holds every applied field,
        else merged in. Field ownership and conflicts are the real API server's to judge."""
        key: Any = (request.resource, request.namespace, request.name)
        stored = self.objects[key] if key in self.objects else None  # noqa: SIM401 (no .get)
        if stored is None or stored.deleted:
            return attrs.evolve(request, method=enums.method.POST,
                                action=enums.action.CREATE), True
        if is_subset(request.data, stored.raw):
            return attrs.evolve(request, method=enums.method.GET,
                                action=enums.action.FETCH), False
        return request, False

    def _stamp(self, request: rendering.Request) -> None:
        """Write-time bookkeeping of an API server, and a new resourceVersion."""
        self._resource_version += 1
        version = str(self._resource_version)
        key: Any = (request.resource, request.namespace, request.name)
        stored = self.objects[key] if key in self.objects else None  # noqa: SIM401 (no .get)
        if stored is not None and stored.deleted:
            stored = None
        if request.action == enums.action.CREATE and isinstance(request.data, dict):
            self._on_create(request.data, version)
        elif request.action == enums.action.UPDATE and isinstance(request.data, dict):
            meta = request.data.setdefault("metadata", {})
            meta["resourceVersion"] = version
            if "spec" in request.data and stored is not None:
                meta["generation"] = int(stored.get("metadata", {}).get("generation") or 1) + 1
        elif request.action == enums.action.UPDATE and isinstance(request.data, list):
            # A JSON patch (kopf's finalizers): its "test" of the old version runs first.
            request.data.append({"op": "add", "path": "/metadata/resourceVersion",
                                 "value": version})
        elif request.action == enums.action.DELETE and stored is not None:
            # Both outcomes (deletionTimestamp set, or gone) are events with this version.
            stored.patch({"metadata": {"resourceVersion": version}})

    async def _serve_list(self, request: rendering.Request) -> Any:
        listing: dict[str, Any] = dict(await super()._serve_list(request))  # type: ignore[arg-type]
        listing["metadata"] = {"resourceVersion": str(self._resource_version)}
        return listing

    async def _serve_watch(self, request: rendering.Request) -> AsyncIterator[Any]:
        since = _version(request.params.get("resourceVersion"))
        async for event in super()._serve_watch(request):
            if since is not None and isinstance(event, dict):
                seen = _version(event.get("object", {}).get("metadata", {}).get(
                    "resourceVersion"))
                if seen is not None and seen <= since:
                    continue  # the list this watch continues already showed it
            yield event

    def _forget_finished_requests(self) -> None:
        """kmock logs every request for assertions and matches each new request by scanning
        that log with costly filters (quadratic: 0.1 s per request after a few hundred).
        Nothing here asserts on past requests: keep only those still being served."""
        self._requests[:] = [r for r in self._requests if id(r) in self._inflight]
        for payload in self._payloads:
            payload._requests.clear()

    @staticmethod
    def _on_create(obj: dict[str, Any], version: str) -> None:
        meta = obj.setdefault("metadata", {})
        if not meta.get("name") and meta.get("generateName"):
            meta["name"] = meta["generateName"] + secrets.token_hex(4)
        meta.setdefault("uid", str(uuid.uuid4()))
        meta["resourceVersion"] = version
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
