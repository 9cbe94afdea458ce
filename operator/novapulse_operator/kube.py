"""The operator's Kubernetes client for the children: kubernetes_asyncio's ApiClient (its
connection pool, auth headers, TLS and errors) with JSON bodies, children written by
server-side apply under the field manager `novapulse-operator`.

Bodies stay plain dicts (the ApiClient's "object" type): the operator builds and reads
manifests as dicts, and turning every answer into generated model objects would cost CPU and
memory for nothing with a thousand bots. It connects with the ConnectionInfo that kopf's
login produced (in-cluster service account or kubeconfig), so it talks to whatever kopf
talks to: kind, a real cluster, an emulator.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import tempfile
import urllib.parse
import urllib.request
from collections import OrderedDict
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import kopf
from kubernetes_asyncio.client.api_client import ApiClient
from kubernetes_asyncio.client.configuration import Configuration
from kubernetes_asyncio.client.exceptions import ApiException

FIELD_MANAGER = "novapulse-operator"
# Who wrote the children before server-side apply: the operator's own merge patches (this
# name) and its earlier aiohttp client (the API server names a manager after the User-Agent).
# A conflict with these only is the operator's own past: taken over by a forced apply.
OWN_MANAGERS = frozenset({FIELD_MANAGER, "Python"})
APPLY_PATCH = "application/apply-patch+yaml"
MERGE_PATCH = "application/merge-patch+json"
_PLURALS = {
    "ConfigMap": "configmaps",
    "Secret": "secrets",
    "Service": "services",
    "ServiceAccount": "serviceaccounts",
    "PersistentVolumeClaim": "persistentvolumeclaims",
    "Deployment": "deployments",
    "NetworkPolicy": "networkpolicies",
    "Pod": "pods",
}
_JSON = {200: "object", 201: "object"}
# The library logs every response body at DEBUG, Secrets included: never, whatever the level.
logging.getLogger("kubernetes_asyncio.client.rest").setLevel(logging.INFO)
_VERSIONS_KEPT = 20_000  # resourceVersions remembered to tell "unchanged" from "patched"
ApplyResult = Literal["created", "patched", "unchanged"]


@dataclass(frozen=True)
class Applied:
    """What an apply did, and the object as the server answered (None: nothing was sent)."""

    action: ApplyResult
    obj: dict[str, Any] | None


class KubeError(Exception):
    """A refused request: the HTTP status and the API server's own message."""

    def __init__(self, status: int, message: str, body: Mapping[str, Any] | None = None,
                 ) -> None:
        super().__init__(f"HTTP {status}: {message}")
        self.status = status
        self.message = message
        self.body: Mapping[str, Any] = body or {}


class ApplyConflict(KubeError):
    """Server-side apply found fields another manager owns with other values: surfaced,
    never overwritten."""

    def __init__(self, message: str, body: Mapping[str, Any], managers: frozenset[str]) -> None:
        super().__init__(409, message, body)
        self.managers = managers


def collection_path(api_version: str, kind: str, namespace: str) -> str:
    prefix = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
    return f"{prefix}/namespaces/{namespace}/{_PLURALS[kind]}"


def object_path(api_version: str, kind: str, namespace: str, name: str) -> str:
    return f"{collection_path(api_version, kind, namespace)}/{name}"


def is_subset(desired: Any, actual: Any) -> bool:
    """Whether `actual` already holds everything of `desired` (server defaults tolerated)."""
    if isinstance(desired, Mapping):
        return isinstance(actual, Mapping) and all(
            k in actual and is_subset(v, actual[k]) for k, v in desired.items()
        )
    if isinstance(desired, list):
        return (isinstance(actual, list) and len(actual) == len(desired)
                and all(is_subset(d, a) for d, a in zip(desired, actual, strict=True)))
    return bool(desired == actual)


def conflict_managers(body: Mapping[str, Any]) -> frozenset[str]:
    """The managers named by a server-side apply conflict (`conflict with "NAME" ...`)."""
    causes = (body.get("details") or {}).get("causes") or []
    names = set()
    for cause in causes:
        message = str(cause.get("message") or "")
        if message.startswith('conflict with "'):
            names.add(message.split('"', 2)[1])
    return frozenset(names)


def _pem(data: str | bytes) -> bytes:
    return base64.b64decode(data) if isinstance(data, str) else data


def _error(exc: ApiException) -> KubeError:
    raw = exc.body.decode("utf-8", "replace") if isinstance(exc.body, bytes) else exc.body
    try:
        body = json.loads(raw or "")
    except ValueError:
        body = None
    if not isinstance(body, dict):
        return KubeError(int(exc.status or 0), str(raw or exc.reason)[:500])
    message = str(body.get("message") or raw)
    if exc.status == 409 and (managers := conflict_managers(body)):
        return ApplyConflict(message, body, managers)
    return KubeError(int(exc.status or 0), message, body)


def _configuration(info: kopf.ConnectionInfo, private: Path) -> Configuration:
    """The ApiClient's configuration from kopf's login. Material given as data goes through
    files (Python's ssl loads a client key only from a file) in `private`, which the caller
    removes once the ApiClient has loaded them: no key material stays on disk."""
    config = Configuration(host=info.server.rstrip("/"))
    config.verify_ssl = not info.insecure

    def material(path: Any, data: str | bytes | None, name: str) -> str | None:
        if path:
            return str(path)
        if not data:
            return None
        file = private / name
        file.touch(mode=0o600)
        file.write_bytes(_pem(data))
        return str(file)

    config.ssl_ca_cert = material(info.ca_path, info.ca_data, "ca.crt")
    config.cert_file = material(info.certificate_path, info.certificate_data, "client.crt")
    config.key_file = material(info.private_key_path, info.private_key_data, "client.key")
    return config


def _tls_of(info: kopf.ConnectionInfo) -> tuple[Any, ...]:
    return (info.server, info.insecure, info.ca_path, info.ca_data, info.certificate_path,
            info.certificate_data, info.private_key_path, info.private_key_data)


def proxy_for(server: str) -> str | None:
    """The proxy the environment (HTTPS_PROXY, NO_PROXY, …) names for `server`, if any."""
    url = urllib.parse.urlsplit(server)
    proxies = urllib.request.getproxies_environment()
    proxy = proxies.get(url.scheme)
    if not proxy or urllib.request.proxy_bypass(url.hostname or ""):
        return None
    return proxy


def api_client(info: kopf.ConnectionInfo, pool: int = 32) -> ApiClient:
    """An ApiClient for the login `info`; TLS material is loaded before this returns."""
    with tempfile.TemporaryDirectory(prefix="novapulse-tls-") as private:
        config = _configuration(info, Path(private))
        config.connection_pool_maxsize = pool
        config.proxy = proxy_for(info.server)
        client = ApiClient(config)
    # The library's session trusts the environment: every request then looks up the proxy
    # variables and ~/.netrc in a thread-pool job — with a thousand bots, the thread pool
    # was busier than the operator's own code — and a netrc entry for the API server's host
    # made every request fail (aiohttp refuses netrc credentials next to an Authorization
    # header). The proxy is read once above; credentials come from kopf's login only.
    client.rest_client.pool_manager._trust_env = False
    client.user_agent = FIELD_MANAGER
    for header, value in info.as_http_headers().items():
        client.set_default_header(header, value)
    return client


def secret_values(secret: Mapping[str, Any]) -> dict[str, str]:
    """The decoded data of a Secret as read."""
    data = {k: base64.b64decode(v).decode("utf-8", "replace")
            for k, v in (secret.get("data") or {}).items()}
    # stringData is write-only on a real server; an emulator may keep it as sent.
    data.update({k: str(v) for k, v in (secret.get("stringData") or {}).items()})
    return data


class KubeClient:
    """The children's reads and writes: get, list, server-side apply, merge-patch, delete."""

    def __init__(self, info: kopf.ConnectionInfo, timeout: float = 30.0) -> None:
        self._timeout = timeout
        self._tls = _tls_of(info)
        self._api = api_client(info)
        self._retired: list[ApiClient] = []
        # Per child: the resourceVersion and the digest of the desired state last applied.
        self._applied: OrderedDict[tuple[str, ...], tuple[str, bytes]] = OrderedDict()

    def update_login(self, info: kopf.ConnectionInfo) -> None:
        """Use the credentials of a new login (kopf logs in again when its token is refused
        or expires): the next request carries them, the old ones are dropped."""
        if _tls_of(info) != self._tls:  # new certificates: a new connection pool
            self._retired.append(self._api)
            self._tls = _tls_of(info)
            self._api = api_client(info)
            return
        self._api.default_headers.pop("Authorization", None)
        for header, value in info.as_http_headers().items():
            self._api.set_default_header(header, value)

    async def close(self) -> None:
        for client in (*self._retired, self._api):
            await client.close()
        self._retired.clear()

    async def _call(self, method: str, path: str, body: Any = None,
                    content_type: str | None = None, query: list[tuple[str, Any]] | None = None,
                    ) -> tuple[dict[str, Any], int]:
        headers = {"Accept": "application/json"}
        if content_type:
            headers["Content-Type"] = content_type
        try:
            data, status, _ = await self._api.call_api(
                path, method, query_params=query or [], header_params=headers, body=body,
                response_types_map=_JSON, auth_settings=[],
                _return_http_data_only=False, _request_timeout=self._timeout)
        except ApiException as exc:
            raise _error(exc) from None
        return (data if isinstance(data, dict) else {}), int(status)

    async def _get(self, path: str) -> dict[str, Any] | None:
        try:
            found, _ = await self._call("GET", path)
        except KubeError as exc:
            if exc.status == 404:
                return None
            raise
        return found

    async def get(self, api_version: str, kind: str, namespace: str, name: str,
                  ) -> dict[str, Any] | None:
        return await self._get(object_path(api_version, kind, namespace, name))

    async def get_namespace(self, name: str) -> dict[str, Any] | None:
        return await self._get(f"/api/v1/namespaces/{name}")

    async def create(self, obj: Mapping[str, Any]) -> dict[str, Any]:
        meta = obj["metadata"]
        path = collection_path(obj["apiVersion"], obj["kind"], meta["namespace"])
        created, _ = await self._call("POST", path, dict(obj),
                                      query=[("fieldManager", FIELD_MANAGER)])
        return created

    async def create_if_absent(self, obj: Mapping[str, Any]) -> dict[str, Any] | None:
        """Create `obj` unless an object of its name exists (then leave it as it is): for
        what is generated once and never rewritten, e.g. a generated password's Secret.
        The object created, or None when one existed."""
        try:
            return await self.create(obj)
        except KubeError as exc:
            if exc.status == 409:
                return None
            raise

    async def patch(self, api_version: str, kind: str, namespace: str, name: str,
                    patch: Mapping[str, Any]) -> dict[str, Any]:
        """A merge patch (for what is not a child's desired state, e.g. moving a key)."""
        path = object_path(api_version, kind, namespace, name)
        patched, _ = await self._call("PATCH", path, dict(patch), MERGE_PATCH,
                                      [("fieldManager", FIELD_MANAGER)])
        return patched

    async def pods(self, namespace: str, selector: str, page: int = 200,
                   ) -> AsyncIterator[dict[str, Any]]:
        """Every pod matching `selector`, listed `page` at a time: a thousand bots' pods are
        never all in memory at once as parsed JSON."""
        token = ""
        while True:
            query: list[tuple[str, Any]] = [("labelSelector", selector), ("limit", page)]
            if token:
                query.append(("continue", token))
            found, _ = await self._call("GET", f"/api/v1/namespaces/{namespace}/pods",
                                        query=query)
            for pod in found.get("items") or []:
                yield pod
            token = str((found.get("metadata") or {}).get("continue") or "")
            if not token:
                return

    async def patch_status(self, api_version: str, plural: str, namespace: str, name: str,
                           patch: Mapping[str, Any]) -> dict[str, Any]:
        """Merge-patch the status subresource of a custom resource."""
        path = f"/apis/{api_version}/namespaces/{namespace}/{plural}/{name}/status"
        patched, _ = await self._call("PATCH", path, dict(patch), MERGE_PATCH,
                                      [("fieldManager", FIELD_MANAGER)])
        return patched

    async def delete(self, api_version: str, kind: str, namespace: str, name: str,
                     uid: str | None = None) -> bool:
        """Delete one object, only if it still has `uid`; False when it is gone already (or
        is another object by now): the deletion is idempotent."""
        body: dict[str, Any] = {"kind": "DeleteOptions", "apiVersion": "v1"}
        if uid:
            body["preconditions"] = {"uid": uid}
        try:
            await self._call("DELETE", object_path(api_version, kind, namespace, name), body)
        except KubeError as exc:
            if exc.status in (404, 409):
                return False
            raise
        return True

    async def apply(self, obj: Mapping[str, Any], only_if_changed: bool = False,
                    ) -> Applied:
        """Server-side apply of one child's whole desired state: one request, idempotent,
        safe to repeat after a crash. Fields another manager owns with other values make an
        ApplyConflict (the caller surfaces it); fields the operator's own earlier writes
        own are taken over. `only_if_changed`: no request at all when this client already
        applied exactly this desired state (what the object holds now is not checked)."""
        meta = obj["metadata"]
        key = (obj["apiVersion"], obj["kind"], meta["namespace"], meta["name"])
        digest = hashlib.blake2b(json.dumps(obj, sort_keys=True).encode(),
                                 digest_size=16).digest()
        before = self._applied.get(key)
        if only_if_changed and before is not None and before[1] == digest:
            return Applied("unchanged", None)
        try:
            result, status = await self._apply(key, obj, force=False)
        except ApplyConflict as exc:
            if not exc.managers <= OWN_MANAGERS:
                raise
            result, status = await self._apply(key, obj, force=True)
        version = str((result.get("metadata") or {}).get("resourceVersion") or "")
        self._applied[key] = (version, digest)
        self._applied.move_to_end(key)  # the least recently applied go first
        while len(self._applied) > _VERSIONS_KEPT:
            self._applied.popitem(last=False)
        if status == 201:
            return Applied("created", result)
        return Applied("unchanged" if before is not None and before[0] == version
                       else "patched", result)

    async def _apply(self, key: tuple[str, str, str, str], obj: Mapping[str, Any],
                     force: bool) -> tuple[dict[str, Any], int]:
        query: list[tuple[str, Any]] = [("fieldManager", FIELD_MANAGER)]
        if force:
            query.append(("force", "true"))
        return await self._call("PATCH", object_path(*key), dict(obj), APPLY_PATCH, query)

    async def secret_data(self, namespace: str, name: str) -> dict[str, str] | None:
        """The decoded data of a Secret, or None when it does not exist."""
        secret = await self.get("v1", "Secret", namespace, name)
        return None if secret is None else secret_values(secret)

    async def set_finalizer(self, key: tuple[str, str, str, str],
                            obj: Mapping[str, Any] | None, finalizer: str, present: bool,
                            attempts: int = 5) -> bool:
        """Add (`present`) or remove one finalizer of the object `key` (apiVersion, kind,
        namespace, name) as last read (`obj`; None: read it now), leaving the others as they
        are: a merge patch of the whole list with the resourceVersion it was computed from,
        read again and retried when someone else wrote in between. False when the object is
        gone or already as wanted."""
        current = obj if obj is not None else await self.get(*key)
        for _ in range(attempts):
            if current is None:
                return False
            now = list((current.get("metadata") or {}).get("finalizers") or [])
            if (finalizer in now) == present:
                return False
            wanted = [*now, finalizer] if present else [f for f in now if f != finalizer]
            version = (current.get("metadata") or {}).get("resourceVersion")
            try:
                await self.patch(*key, {"metadata": {"finalizers": wanted or None,
                                                     "resourceVersion": version}})
            except KubeError as exc:
                if exc.status == 404:
                    return False
                if exc.status != 409:
                    raise
                current = await self.get(*key)
                continue
            return True
        raise KubeError(409, f"{key[1]} {key[3]}: its finalizers kept changing under "
                             f"{attempts} attempts to {'add' if present else 'remove'} "
                             f"{finalizer}")
