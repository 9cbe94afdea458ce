"""The operator's API client keeps no key material on disk, and a new login (a refreshed
token) replaces the old credentials in the client."""

from __future__ import annotations

import base64
import datetime
import os
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

import kopf
import pytest
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from novapulse_operator.kube import KubeClient, api_client, proxy_for
from support.local_http import serving


def _client_pair() -> tuple[bytes, bytes]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "operator")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(1)
            .not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1))
            .sign(key, hashes.SHA256()))
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    return cert.public_bytes(serialization.Encoding.PEM), key_pem


async def test_client_key_data_leaves_nothing_on_disk(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    cert, key = _client_pair()
    info = kopf.ConnectionInfo(server="https://127.0.0.1:6443",
                               certificate_data=base64.b64encode(cert).decode(),
                               private_key_data=base64.b64encode(key).decode(),
                               ca_data=base64.b64encode(cert).decode())
    client = api_client(info)  # loads the pair (a bad key or certificate would raise here)
    try:
        assert os.listdir(tmp_path) == []  # the key was loaded, then its file removed
    finally:
        await client.close()


@pytest.fixture()
async def server() -> AsyncIterator[tuple[list[str], str]]:
    seen: list[str] = []

    async def handler(request: web.Request) -> web.Response:
        seen.append(request.headers.get("Authorization", ""))
        return web.json_response({"kind": "ConfigMap"})

    app = web.Application()
    app.router.add_get("/{tail:.*}", handler)
    async with serving(app) as url:
        yield seen, url


async def test_a_new_login_replaces_the_token(server: tuple[list[str], str]) -> None:
    seen, url = server
    client = KubeClient(kopf.ConnectionInfo(server=url, scheme="Bearer", token="old-token"))
    try:
        await client.get("v1", "ConfigMap", "ns", "a")
        client.update_login(kopf.ConnectionInfo(server=url, scheme="Bearer", token="new-token"))
        await client.get("v1", "ConfigMap", "ns", "a")
    finally:
        await client.close()
    assert seen == ["Bearer old-token", "Bearer new-token"]


async def test_the_environment_is_read_once_not_on_every_request(
        server: tuple[list[str], str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A ~/.netrc entry for the API server never replaces kopf's credentials, and no request
    looks up the environment again (each lookup was a thread-pool job)."""
    seen, url = server
    home = tmp_path / "home"
    home.mkdir()
    netrc = home / ".netrc"
    netrc.write_text("machine 127.0.0.1 login intruder password nope\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("NETRC", str(netrc))
    client = KubeClient(kopf.ConnectionInfo(server=url, scheme="Bearer", token="kopf-token"))
    try:
        await client.get("v1", "ConfigMap", "ns", "c")
    finally:
        await client.close()
    assert seen == ["Bearer kopf-token"]


async def test_the_proxy_of_the_environment_is_honoured(monkeypatch: pytest.MonkeyPatch,
                                                      ) -> None:
    for name in ("HTTPS_PROXY", "https_proxy", "NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    assert proxy_for("https://10.0.0.1:6443") is None
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.corp:3128")
    assert proxy_for("https://10.0.0.1:6443") == "http://proxy.corp:3128"
    monkeypatch.setenv("NO_PROXY", "10.0.0.1,.svc")
    assert proxy_for("https://10.0.0.1:6443") is None
    assert proxy_for("https://kubernetes.default.svc") is None
    info = kopf.ConnectionInfo(server="https://api.example:6443", scheme="Bearer", token="t")
    monkeypatch.setenv("NO_PROXY", "")
    client = api_client(info)
    try:
        assert client.configuration.proxy == "http://proxy.corp:3128"
    finally:
        await client.close()
