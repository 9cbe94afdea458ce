"""Generated dashboard credentials: the password lives apart from what the pod uses (an older
Secret is split), and no value the operator generated appears in any log line."""

from __future__ import annotations

import base64
import logging

import pytest

from .conftest import Cluster, eventually, operator

SECRETS = "/api/v1/namespaces/default/secrets"


async def _decoded(cluster: Cluster, name: str) -> dict[str, str]:
    secret = await cluster.child("v1", "secrets", name) or {}
    return {k: base64.b64decode(v).decode() for k, v in (secret.get("data") or {}).items()}


async def test_an_older_secret_is_split_and_no_value_is_ever_logged(
        cluster: Cluster, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)  # every logger, every level: kopf's, aiohttp's, ours
    old = {"DASHBOARD_ADMIN_KEY": "Ak7Qz2Lm9Xr4Tp1Ws8Nc3Bf6Hj0Dg5Ay",
           "DASHBOARD_SESSION_SECRET": "Sb3Vn8Mq1Zw6Rt0Kx5Hc2Js7Fd9Gl4Ep",
           "DASHBOARD_ADMIN_PASSWORD": "the-old-plaintext-password-9Qz",
           "DASHBOARD_ADMIN_PASSWORD_HASH": "$2b$04$" + "a" * 53}
    await cluster.create_secret("old-dashboard", old)
    async with operator():
        await cluster.create_bot("old", {"mode": "paper"})
        await cluster.create_bot("new", {"mode": "paper"})
        login = await eventually(lambda: _decoded(cluster, "old-dashboard-login"), 20,
                                 "the password moved into its own Secret")
        assert login == {"DASHBOARD_ADMIN_PASSWORD": old["DASHBOARD_ADMIN_PASSWORD"]}

        async def split() -> bool:
            return "DASHBOARD_ADMIN_PASSWORD" not in await _decoded(cluster, "old-dashboard")
        await eventually(split, 20, "the password dropped from the pod's Secret")
        assert (await _decoded(cluster, "old-dashboard"))["DASHBOARD_ADMIN_KEY"] == \
            old["DASHBOARD_ADMIN_KEY"]
        generated = {**await eventually(lambda: _decoded(cluster, "new-dashboard"), 20),
                     **await eventually(lambda: _decoded(cluster, "new-dashboard-login"), 20)}
        await eventually(lambda: cluster.events("DashboardSecretGenerated"), 20)
    assert len(generated) == 4
    logged = caplog.text + "".join(str(r.args) for r in caplog.records)
    assert "DashboardSecretGenerated" in logged  # the capture did see the operator's lines
    for value in [*old.values(), *generated.values()]:
        assert value not in logged
