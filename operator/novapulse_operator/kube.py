"""A thin async Kubernetes client for the children: get, create, merge-patch, apply.

It connects with the ConnectionInfo that kopf's login produced (in-cluster service account
or kubeconfig), so it talks to whatever kopf talks to: kind, a real cluster, an emulator.
"""

from __future__ import annotations

import base64
import ssl
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import aiohttp
import kopf

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
ApplyResult = Literal["created", "patched", "unchanged"]


class KubeError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"HTTP {status}: {message}")
        self.status = status


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


def _pem(data: str | bytes) -> bytes:
    return base64.b64decode(data) if isinstance(data, str) else data


def ssl_context(info: kopf.ConnectionInfo) -> ssl.SSLContext | bool:
    """TLS from the login's material. The CA is loaded from memory; a client certificate and
    key given as data pass through files (Python's ssl loads a key from a file only) in a
    private directory that is removed before this returns: no key material stays on disk."""
    if not info.server.startswith("https"):
        return True
    if info.insecure:
        return False
    context = ssl.create_default_context(cafile=str(info.ca_path) if info.ca_path else None)
    if info.ca_data and not info.ca_path:
        context.load_verify_locations(cadata=_pem(info.ca_data).decode())
    if info.certificate_path:
        key = str(info.private_key_path) if info.private_key_path else None
        context.load_cert_chain(str(info.certificate_path), key)
    elif info.certificate_data:
        with tempfile.TemporaryDirectory(prefix="novapulse-tls-") as private:
            cert = Path(private, "client.crt")
            cert.write_bytes(_pem(info.certificate_data))
            key_path: str | None = str(info.private_key_path) if info.private_key_path else None
            if info.private_key_data:
                key_file = Path(private, "client.key")
                key_file.touch(mode=0o600)
                key_file.write_bytes(_pem(info.private_key_data))
                key_path = str(key_file)
            context.load_cert_chain(str(cert), key_path)
    return context


class KubeClient:
    """One aiohttp session to the API server; bodies are JSON, patches are merge patches."""

    def __init__(self, info: kopf.ConnectionInfo, timeout: float = 30.0) -> None:
        self._base = info.server.rstrip("/")
        self._auth = dict(info.as_http_headers())
        self._session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=timeout),
            connector=aiohttp.TCPConnector(ssl=ssl_context(info), limit=32),
        )

    def update_login(self, info: kopf.ConnectionInfo) -> None:
        """Use the credentials of a new login (kopf logs in again when its token is refused
        or expires): the next request carries them, the old ones are dropped."""
        self._auth = dict(info.as_http_headers())

    async def close(self) -> None:
        await self._session.close()

    async def _request(self, method: str, path: str, body: Any = None,
                       content_type: str = "application/json") -> dict[str, Any] | None:
        headers = {**self._auth, **({"Content-Type": content_type} if body is not None else {})}
        async with self._session.request(method, self._base + path, json=body,
                                         headers=headers) as resp:
            if resp.status == 404 and method == "GET":
                return None
            if resp.status >= 400:
                text = await resp.text()
                raise KubeError(resp.status, text[:300])
            data: dict[str, Any] = await resp.json(content_type=None)
            return data

    async def get(self, api_version: str, kind: str, namespace: str, name: str,
                  ) -> dict[str, Any] | None:
        return await self._request("GET", object_path(api_version, kind, namespace, name))

    async def create(self, obj: Mapping[str, Any]) -> dict[str, Any]:
        meta = obj["metadata"]
        path = collection_path(obj["apiVersion"], obj["kind"], meta["namespace"])
        return await self._request("POST", path, obj) or {}

    async def patch(self, api_version: str, kind: str, namespace: str, name: str,
                    patch: Mapping[str, Any]) -> dict[str, Any]:
        path = object_path(api_version, kind, namespace, name)
        return await self._request("PATCH", path, patch, "application/merge-patch+json") or {}

    async def list_pods(self, namespace: str, selector: str) -> list[dict[str, Any]]:
        path = f"/api/v1/namespaces/{namespace}/pods?labelSelector={selector}"
        found = await self._request("GET", path)
        return list((found or {}).get("items") or [])

    async def patch_status(self, api_version: str, plural: str, namespace: str, name: str,
                           patch: Mapping[str, Any]) -> dict[str, Any]:
        """Merge-patch the status subresource of a custom resource."""
        path = f"/apis/{api_version}/namespaces/{namespace}/{plural}/{name}/status"
        return await self._request("PATCH", path, patch, "application/merge-patch+json") or {}

    async def delete(self, api_version: str, kind: str, namespace: str, name: str,
                     uid: str | None = None) -> bool:
        """Delete one object, only if it still has `uid`; False when it is gone already (or
        is another object by now): the deletion is idempotent."""
        body = {"kind": "DeleteOptions", "apiVersion": "v1"}
        if uid:
            body["preconditions"] = {"uid": uid}  # type: ignore[assignment]
        path = object_path(api_version, kind, namespace, name)
        try:
            await self._request("DELETE", path, body)
        except KubeError as exc:
            if exc.status in (404, 409):
                return False
            raise
        return True

    async def apply(self, obj: Mapping[str, Any]) -> ApplyResult:
        """Create or converge one object by name: idempotent, safe to repeat after a crash."""
        meta = obj["metadata"]
        key = (obj["apiVersion"], obj["kind"], meta["namespace"], meta["name"])
        current = await self.get(*key)
        if current is None:
            try:
                await self.create(obj)
                return "created"
            except KubeError as exc:
                if exc.status != 409:
                    raise
                current = await self.get(*key)
        desired = {k: v for k, v in obj.items() if k not in ("apiVersion", "kind")}
        if current is not None and is_subset(desired, current):
            return "unchanged"
        await self.patch(*key, desired)
        return "patched"

    async def secret_data(self, namespace: str, name: str) -> dict[str, str] | None:
        """The decoded data of a Secret, or None when it does not exist."""
        secret = await self.get("v1", "Secret", namespace, name)
        if secret is None:
            return None
        data = {k: base64.b64decode(v).decode("utf-8", "replace")
                for k, v in (secret.get("data") or {}).items()}
        # stringData is write-only on a real server; an emulator may keep it as sent.
        data.update({k: str(v) for k, v in (secret.get("stringData") or {}).items()})
        return data
