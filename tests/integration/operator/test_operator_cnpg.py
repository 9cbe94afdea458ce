"""A bot on a CloudNativePG cluster, end to end: no pod while the cluster's generated Secret
CLUSTER-app is missing (DatabaseReady=False, CnpgSecretMissing — never the embedded database
instead), and the pod with DATABASE_URL from that Secret once it appears, without touching
the TradingBot. And a URL Secret the same way."""

from __future__ import annotations

import json
from typing import Any

from .conftest import Cluster, eventually, operator

URI = "postgresql://app:Vq7mS3cretPw@pg-rw.default:5432/app"


def condition(bot: dict[str, Any] | None, type_: str) -> dict[str, Any]:
    for cond in ((bot or {}).get("status") or {}).get("conditions") or []:
        if cond["type"] == type_:
            return dict(cond)
    return {}


def _replicas_and_env(dep: dict[str, Any] | None) -> tuple[int, dict[str, Any]] | None:
    if dep is None:
        return None
    container = dep["spec"]["template"]["spec"]["containers"][0]
    return int(dep["spec"]["replicas"]), {e["name"]: e for e in container.get("env") or []}


async def _database_ready(cluster: Cluster, value: str) -> dict[str, Any] | None:
    bot = await cluster.bot("bot1")
    return bot if condition(bot, "DatabaseReady").get("status") == value else None


async def _everything_the_operator_wrote(cluster: Cluster) -> str:
    objects = [await cluster.bot("bot1"),
               await cluster.child("v1", "configmaps", "bot1-config"),
               await cluster.child("apps/v1", "deployments", "bot1"),
               await cluster.child("networking.k8s.io/v1", "networkpolicies", "bot1"),
               *await cluster.events()]
    return json.dumps(objects)


async def test_the_bot_waits_for_the_cnpg_secret_then_starts_on_it(cluster: Cluster) -> None:
    async with operator():
        await cluster.create_bot("bot1", {"mode": "paper",
                                          "database": {"cnpg": {"cluster": "pg"}}})

        bot = await eventually(lambda: _database_ready(cluster, "False"), within=30,
                               what="DatabaseReady=False")
        cond = condition(bot, "DatabaseReady")
        assert cond["reason"] == "CnpgSecretMissing"
        assert cond["message"].startswith(
            "Secret pg-app of the CloudNativePG cluster pg not found")
        assert bot["status"]["phase"] == "Blocked"
        assert "waits for its database" in condition(bot, "Ready")["message"]
        # No pod on the embedded database meanwhile: zero replicas.
        waiting = await eventually(
            lambda: cluster.child("apps/v1", "deployments", "bot1"), what="the Deployment")
        replicas, _ = _replicas_and_env(waiting) or (None, None)
        assert replicas == 0
        warnings = await eventually(lambda: cluster.events("DatabaseNotReady"),
                                    what="a Warning Event")
        assert warnings[0]["type"] == "Warning" and "pg-app" in warnings[0]["message"]

        # CloudNativePG makes its app Secret once the cluster is up: the bot starts on it,
        # found by the operator's periodic re-check (the TradingBot is not touched).
        await cluster.create_secret("pg-app", {"uri": URI, "username": "app",
                                               "password": "Vq7mS3cretPw"})
        bot = await eventually(lambda: _database_ready(cluster, "True"), within=30,
                               what="DatabaseReady=True")
        assert condition(bot, "DatabaseReady")["reason"] == "CnpgSecretReady"

        async def running() -> tuple[int, dict[str, Any]] | None:
            found = _replicas_and_env(await cluster.child("apps/v1", "deployments", "bot1"))
            return found if found and found[0] == 1 else None

        _, env = await eventually(running, within=30, what="one replica")
        assert env["DATABASE_URL"] == {"name": "DATABASE_URL", "valueFrom": {
            "secretKeyRef": {"name": "pg-app", "key": "uri"}}}

        policy = await cluster.child("networking.k8s.io/v1", "networkpolicies", "bot1")
        assert policy is not None
        assert {"ports": [{"protocol": "TCP", "port": 5432}],
                "to": [{"namespaceSelector": {"matchLabels": {
                    "kubernetes.io/metadata.name": "default"}},
                        "podSelector": {"matchLabels": {"cnpg.io/cluster": "pg"}}}],
                } in policy["spec"]["egress"]
        written = await _everything_the_operator_wrote(cluster)
        assert "Vq7mS3cretPw" not in written  # the URL was read, and written nowhere


async def test_a_url_secret_missing_its_key_keeps_the_bot_waiting(cluster: Cluster) -> None:
    await cluster.create_secret("db", {"URL": URI})
    async with operator():
        await cluster.create_bot("bot1", {"mode": "paper",
                                          "database": {"urlSecretRef": {"name": "db"}}})
        bot = await eventually(lambda: _database_ready(cluster, "False"), within=30,
                               what="DatabaseReady=False")
        cond = condition(bot, "DatabaseReady")
        assert cond["reason"] == "DatabaseSecretMissing"
        assert cond["message"].startswith(
            "Secret db (spec.database.urlSecretRef) lacks DATABASE_URL")

        await cluster.patch_secret("db", {"DATABASE_URL": URI})
        await eventually(lambda: _database_ready(cluster, "True"), within=30,
                         what="DatabaseReady=True")
