"""A real Kubernetes control plane for tests, the envtest way.

`KUBEBUILDER_ASSETS` names a directory holding `etcd`, `kube-apiserver` and
`kube-controller-manager` (`make envtest` prepares one). `ControlPlane` starts the three on
free loopback ports with certificates made here, waits until the API server is ready and
the controller-manager works (Deployments → ReplicaSets → Pods, garbage collection,
ServiceAccounts), installs CRDs, and stops everything again. No scheduler, no kubelet: pods
stay Pending.
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import os
import secrets
import shutil
import socket
import ssl
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

ASSETS_ENV = "KUBEBUILDER_ASSETS"
BINARIES = ("etcd", "kube-apiserver", "kube-controller-manager")
STOP_GRACE = 5.0
START_TIMEOUT = 90.0  # cold start is ~5 s on an idle 2-core machine; CI boxes are busy


class ControlPlaneError(RuntimeError):
    """The control plane could not be started (the message says which part, and why)."""


def assets_dir() -> Path | None:
    """The directory `KUBEBUILDER_ASSETS` names, checked; None when the variable is unset."""
    value = os.environ.get(ASSETS_ENV)
    if not value:
        return None
    path = Path(value)
    missing = [name for name in BINARIES if not os.access(path / name, os.X_OK)]
    if missing:
        raise ControlPlaneError(
            f"{ASSETS_ENV}={value} lacks executable {', '.join(missing)} (run `make envtest`)")
    return path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _pem_key(key: rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _certificate(subject: str, key: rsa.RSAPrivateKey, issuer: x509.Certificate | None,
                 issuer_key: rsa.RSAPrivateKey | None) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    builder = (x509.CertificateBuilder()
               .subject_name(name)
               .issuer_name(issuer.subject if issuer else name)
               .public_key(key.public_key())
               .serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(minutes=5))
               .not_valid_after(now + datetime.timedelta(days=1)))
    if issuer is None:
        builder = builder.add_extension(x509.BasicConstraints(ca=True, path_length=None),
                                        critical=True)
    else:
        builder = builder.add_extension(x509.SubjectAlternativeName([
            x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]),
            critical=False)
    return builder.sign(issuer_key or key, hashes.SHA256())


@dataclass(frozen=True)
class Certificates:
    ca_cert: Path
    ca_key: Path
    serving_cert: Path
    serving_key: Path
    sa_public: Path
    sa_private: Path

    @classmethod
    def write(cls, directory: Path) -> Certificates:
        ca_key, serving_key, sa_key = _key(), _key(), _key()
        ca = _certificate("envtest-ca", ca_key, None, None)
        serving = _certificate("kube-apiserver", serving_key, ca, ca_key)
        files = cls(*(directory / name for name in (
            "ca.crt", "ca.key", "apiserver.crt", "apiserver.key", "sa.pub", "sa.key")))
        files.ca_cert.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
        files.ca_key.write_bytes(_pem_key(ca_key))
        files.serving_cert.write_bytes(serving.public_bytes(serialization.Encoding.PEM))
        files.serving_key.write_bytes(_pem_key(serving_key))
        files.sa_public.write_bytes(sa_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
        files.sa_private.write_bytes(_pem_key(sa_key))
        return files


def _decoded(raw: bytes) -> dict[str, Any]:
    """A JSON answer, or a plain-text one (/readyz says `ok`) as {"message": text}."""
    try:
        body = json.loads(raw or b"{}")
    except ValueError:
        return {"message": raw.decode(errors="replace")}
    return body if isinstance(body, dict) else {"items": body}


def kubeconfig(server: str, ca_file: Path, token: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1", "kind": "Config", "current-context": "envtest",
        "clusters": [{"name": "envtest", "cluster": {
            "server": server, "certificate-authority": str(ca_file)}}],
        "users": [{"name": "envtest", "user": {"token": token}}],
        "contexts": [{"name": "envtest", "context": {"cluster": "envtest", "user": "envtest"}}],
    }


class ControlPlane:
    """etcd + kube-apiserver + kube-controller-manager in a temporary directory."""

    def __init__(self, assets: Path) -> None:
        self.assets = assets
        self.workdir = Path(tempfile.mkdtemp(prefix="envtest-"))
        self.admin_token = secrets.token_urlsafe(24)
        self._processes: list[tuple[str, subprocess.Popen[bytes]]] = []
        self.url = ""
        self.kubeconfig = self.workdir / "admin.kubeconfig"
        self.certs: Certificates | None = None

    # -- lifecycle ------------------------------------------------------------------------

    def start(self, manifests: Iterable[dict[str, Any]] = ()) -> None:
        """Start everything; `manifests` (CRDs and objects) are applied before the
        controller-manager starts, so its garbage collector knows the CRDs' kinds at once
        (it looks for new kinds only every 30 s)."""
        try:
            self._start(list(manifests))
        except BaseException:
            self.stop()
            raise

    def _start(self, manifests: list[dict[str, Any]]) -> None:
        started = time.monotonic()
        certs = self.certs = Certificates.write(self.workdir)
        etcd_client, etcd_peer = free_port(), free_port()
        self._spawn("etcd", [
            "--data-dir", str(self.workdir / "etcd"),
            "--listen-client-urls", f"http://127.0.0.1:{etcd_client}",
            "--advertise-client-urls", f"http://127.0.0.1:{etcd_client}",
            "--listen-peer-urls", f"http://127.0.0.1:{etcd_peer}",
            "--initial-advertise-peer-urls", f"http://127.0.0.1:{etcd_peer}",
            "--initial-cluster", f"default=http://127.0.0.1:{etcd_peer}",
            "--unsafe-no-fsync",  # a throw-away store: no fsync keeps tests fast on busy disks
        ])
        kcm_token = secrets.token_urlsafe(24)
        tokens = self.workdir / "tokens.csv"
        tokens.write_text(f'{self.admin_token},admin,admin,"system:masters"\n'
                          f"{kcm_token},system:kube-controller-manager,kcm\n")
        api_port = free_port()
        self.url = f"https://127.0.0.1:{api_port}"
        self._spawn("kube-apiserver", [
            "--etcd-servers", f"http://127.0.0.1:{etcd_client}",
            "--bind-address", "127.0.0.1", "--advertise-address", "127.0.0.1",
            "--secure-port", str(api_port),
            "--tls-cert-file", str(certs.serving_cert),
            "--tls-private-key-file", str(certs.serving_key),
            "--client-ca-file", str(certs.ca_cert), "--token-auth-file", str(tokens),
            "--service-account-key-file", str(certs.sa_public),
            "--service-account-signing-key-file", str(certs.sa_private),
            "--service-account-issuer", "https://kubernetes.default.svc",
            "--api-audiences", "https://kubernetes.default.svc",
            "--authorization-mode", "Node,RBAC", "--service-cluster-ip-range", "10.96.0.0/16",
            "--enable-admission-plugins",
            "NamespaceLifecycle,ServiceAccount,DefaultStorageClass,ResourceQuota",
            "--endpoint-reconciler-type", "none",  # a loopback address is no valid Endpoint
        ])
        self._wait("kube-apiserver /readyz", lambda: self._readyz(), started)
        self.kubeconfig.write_text(yaml.safe_dump(
            kubeconfig(self.url, certs.ca_cert, self.admin_token)))
        self.apply_manifests(manifests)
        kcm_config = self.workdir / "kcm.kubeconfig"
        kcm_config.write_text(yaml.safe_dump(kubeconfig(self.url, certs.ca_cert, kcm_token)))
        self._spawn("kube-controller-manager", [
            "--kubeconfig", str(kcm_config), "--authentication-kubeconfig", str(kcm_config),
            "--authorization-kubeconfig", str(kcm_config),
            "--bind-address", "127.0.0.1", "--secure-port", str(free_port()),
            "--use-service-account-credentials",
            "--service-account-private-key-file", str(certs.sa_private),
            "--root-ca-file", str(certs.ca_cert),
            "--cluster-signing-cert-file", str(certs.ca_cert),
            "--cluster-signing-key-file", str(certs.ca_key), "--leader-elect=false",
            "--controllers",
            "*,-nodeipam,-nodelifecycle,-cloud-node-lifecycle,-service-lb-controller,-route",
        ])
        # The ServiceAccount controller made `default`: the controller-manager is at work.
        self._wait("the controller-manager (ServiceAccount default/default)",
                   lambda: self.get("/api/v1/namespaces/default/serviceaccounts/default")
                   is not None, started)

    def stop(self) -> None:
        # One at a time, dependants first: the API server waits for its clients' requests,
        # and nothing here needs a graceful end (the data is thrown away).
        for _, process in reversed(self._processes):
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(STOP_GRACE)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(5)
        self._processes.clear()
        shutil.rmtree(self.workdir, ignore_errors=True)

    def _spawn(self, binary: str, args: list[str]) -> None:
        log = (self.workdir / f"{binary}.log").open("wb")
        process = subprocess.Popen([str(self.assets / binary), *args], stdout=log,
                                   stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        log.close()
        self._processes.append((binary, process))

    def _wait(self, what: str, ready: Any, started: float) -> None:
        while time.monotonic() - started < START_TIMEOUT:
            for binary, process in self._processes:
                if process.poll() is not None:
                    raise ControlPlaneError(
                        f"{binary} exited with {process.returncode} while waiting for {what}:\n"
                        f"{self.log_tail(binary)}")
            if ready():
                return
            time.sleep(0.1)
        raise ControlPlaneError(f"timed out after {START_TIMEOUT:.0f}s waiting for {what}:\n"
                                + "\n".join(self.log_tail(b) for b, _ in self._processes))

    def pids(self) -> dict[str, int]:
        """The running processes of the control plane by binary (benches read their CPU)."""
        return {binary: process.pid for binary, process in self._processes
                if process.poll() is None}

    def log_tail(self, binary: str, lines: int = 15) -> str:
        path = self.workdir / f"{binary}.log"
        text = path.read_text(errors="replace") if path.exists() else ""
        return f"--- {binary} ---\n" + "\n".join(text.splitlines()[-lines:])

    # -- a minimal synchronous client (set-up and clean-up; tests use their own) -------------

    def ssl_context(self) -> ssl.SSLContext:
        assert self.certs is not None
        return ssl.create_default_context(cafile=str(self.certs.ca_cert))

    def request(self, method: str, path: str, body: Any = None,
                content_type: str = "application/json") -> tuple[int, dict[str, Any]]:
        data = json.dumps(body).encode() if body is not None else None
        headers = {"Authorization": f"Bearer {self.admin_token}", "Accept": "application/json"}
        if data is not None:
            headers["Content-Type"] = content_type
        req = urllib.request.Request(self.url + path, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(req, context=self.ssl_context(), timeout=30) as resp:
                return resp.status, _decoded(resp.read())
        except urllib.error.HTTPError as exc:
            return exc.code, _decoded(exc.read())

    def get(self, path: str) -> dict[str, Any] | None:
        code, body = self.request("GET", path)
        return body if code == 200 else None

    def _readyz(self) -> bool:
        try:
            code, _ = self.request("GET", "/readyz")
        except (OSError, ValueError):
            return False
        return code == 200

    def apply_manifests(self, documents: Iterable[dict[str, Any]]) -> None:
        """Create CRDs first and wait until they are Established, then the other objects
        (which may need those CRDs). Objects that already exist are left as they are."""
        documents = [d for d in documents if d]
        crds = [d for d in documents if d.get("kind") == "CustomResourceDefinition"]
        for crd in crds:
            self._create("/apis/apiextensions.k8s.io/v1/customresourcedefinitions", crd)
        for crd in crds:
            name = crd["metadata"]["name"]
            self._wait(f"CRD {name} Established", lambda n=name: self._established(n),
                       time.monotonic())
        for obj in documents:
            if obj.get("kind") != "CustomResourceDefinition":
                self._create(self.collection_path(obj), obj)

    def _create(self, path: str, obj: dict[str, Any]) -> None:
        code, body = self.request("POST", path, obj)
        if code not in (201, 200, 409):
            raise ControlPlaneError(
                f"creating {obj.get('kind')} {obj['metadata'].get('name')}: HTTP {code} "
                f"{body.get('message')}")

    def _established(self, name: str) -> bool:
        crd = self.get(f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{name}") or {}
        return any(c.get("type") == "Established" and c.get("status") == "True"
                   for c in (crd.get("status") or {}).get("conditions") or [])

    def collection_path(self, obj: dict[str, Any]) -> str:
        """The collection URL of `obj`, its plural found through discovery."""
        api_version, kind = obj["apiVersion"], obj["kind"]
        prefix = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
        discovery = self.get(prefix) or {}
        for resource in discovery.get("resources", []):
            if resource.get("kind") == kind and "/" not in resource["name"]:
                namespace = obj["metadata"].get("namespace")
                if resource.get("namespaced"):
                    return f"{prefix}/namespaces/{namespace or 'default'}/{resource['name']}"
                return f"{prefix}/{resource['name']}"
        raise ControlPlaneError(f"the API server does not serve {kind} ({api_version})")

    def empty(self, collections: Iterable[str], keep: Iterable[str] = ()) -> None:
        """Delete every object of `collections` (URL paths) but those named in `keep`,
        finalizers dropped first, and wait until they are gone: the next test starts clean."""
        kept = set(keep)
        paths = list(collections)

        def delete_all() -> None:
            for path in paths:
                for obj in (self.get(path) or {}).get("items", []):
                    name = obj["metadata"]["name"]
                    if name in kept:
                        continue
                    if obj["metadata"].get("finalizers"):
                        self.request("PATCH", f"{path}/{name}",
                                     {"metadata": {"finalizers": None}},
                                     "application/merge-patch+json")
                    self.request("DELETE", f"{path}/{name}", {"propagationPolicy": "Background"})

        def remaining() -> list[str]:
            return [f"{path.rsplit('/', 1)[-1]}/{item['metadata']['name']}"
                    for path in paths for item in (self.get(path) or {}).get("items", [])
                    if item["metadata"]["name"] not in kept]

        delete_all()
        deadline = time.monotonic() + START_TIMEOUT
        next_sweep = time.monotonic() + 1.0
        while (left := remaining()) and time.monotonic() < deadline:
            # The controller-manager posts its Events late (batched): sweep again.
            if time.monotonic() >= next_sweep:
                delete_all()
                next_sweep = time.monotonic() + 1.0
            time.sleep(0.1)
        if left:
            raise ControlPlaneError(f"still there after {START_TIMEOUT:.0f}s: {left}")

