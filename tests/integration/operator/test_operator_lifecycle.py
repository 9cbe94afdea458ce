"""The operator end to end: real kopf runtime, kmock's Kubernetes emulator."""

from __future__ import annotations

import base64
from typing import Any

import bcrypt
import yaml

from novapulse_operator.manifests import CONFIG_HASH_ANNOTATION

from .conftest import Cluster, eventually, operator

PAPER: dict[str, Any] = {"mode": "paper", "pairs": ["ETH/BTC"],
                         "config": {"risk": {"risk_per_trade_pct": 0.5}}}
CHILDREN = [
    ("v1", "serviceaccounts", "bot1"),
    ("v1", "configmaps", "bot1-config"),
    ("v1", "persistentvolumeclaims", "bot1-data"),
    ("v1", "services", "bot1"),
    ("networking.k8s.io/v1", "networkpolicies", "bot1"),
    ("apps/v1", "deployments", "bot1"),
    ("v1", "secrets", "bot1-dashboard"),
]


def condition(bot: dict[str, Any] | None, type_: str) -> dict[str, Any]:
    for cond in ((bot or {}).get("status") or {}).get("conditions") or []:
        if cond["type"] == type_:
            return dict(cond)
    return {}


async def test_paper_bot_gets_every_child_owned_and_a_status(cluster: Cluster) -> None:
    async with operator():
        created = await cluster.create_bot("bot1", PAPER)
        uid = created["metadata"]["uid"]

        async def children_present() -> bool:
            found = [await cluster.child(api, plural, name) for api, plural, name in CHILDREN]
            return all(found)

        await eventually(children_present, what="every child")
        for api, plural, name in CHILDREN:
            child = await cluster.child(api, plural, name)
            assert child is not None
            refs = child["metadata"]["ownerReferences"]
            assert [(r["kind"], r["name"], r["uid"], r["controller"]) for r in refs] == [
                ("TradingBot", "bot1", uid, True)], plural

        deployment = await cluster.child("apps/v1", "deployments", "bot1")
        assert deployment is not None
        assert deployment["spec"]["replicas"] == 1
        assert deployment["spec"]["strategy"] == {"type": "Recreate"}
        container = deployment["spec"]["template"]["spec"]["containers"][0]
        assert container["livenessProbe"]["httpGet"]["path"] == "/api/v1/health"
        assert container["readinessProbe"]["httpGet"]["path"] == "/api/v1/ready"
        assert container["securityContext"]["readOnlyRootFilesystem"] is True
        service = await cluster.child("v1", "services", "bot1")
        assert service is not None and service["spec"]["ports"][0]["port"] == 8090

        bot = await eventually(
            lambda: _with_status(cluster, "bot1"), what="status with conditions")
        assert bot["status"]["observedGeneration"] == 1
        assert bot["status"]["effectiveMode"] == "paper"
        assert bot["status"]["phase"] == "Starting"  # no kubelet: the pod never gets ready
        assert condition(bot, "ConfigValid")["status"] == "True"
        assert condition(bot, "LivePrerequisitesMet")["status"] == "True"
        ready = condition(bot, "Ready")
        assert ready["status"] == "False" and ready["reason"] == "Starting"
        assert ready["lastTransitionTime"]

        # The generated dashboard Secret: strong keys, a bcrypt hash of the password.
        secret = await cluster.child("v1", "secrets", "bot1-dashboard")
        assert secret is not None
        data = {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}
        assert "DASHBOARD_ADMIN_PASSWORD" not in data  # the pod's Secret: the hash only
        login = await cluster.child("v1", "secrets", "bot1-dashboard-login")
        assert login is not None
        password = base64.b64decode(login["data"]["DASHBOARD_ADMIN_PASSWORD"]).decode()
        assert bcrypt.checkpw(password.encode(), data["DASHBOARD_ADMIN_PASSWORD_HASH"].encode())
        data["DASHBOARD_ADMIN_PASSWORD"] = password
        assert len(data["DASHBOARD_ADMIN_KEY"]) >= 32
        events = await eventually(lambda: _events(cluster, "DashboardSecretGenerated"),
                                  what="the generated-secret Event")
        assert "base64 -d" in events[0]["message"]
        # ...and never a secret value in the ConfigMap, the status or an Event.
        config_map = await cluster.child("v1", "configmaps", "bot1-config")
        shown = str(config_map) + str(bot["status"]) + str(await cluster.events())
        for value in data.values():
            assert value not in shown


async def _with_status(cluster: Cluster, name: str) -> dict[str, Any] | None:
    bot = await cluster.bot(name)
    if bot and (bot.get("status") or {}).get("conditions"):
        return bot
    return None


async def _events(cluster: Cluster, reason: str) -> list[dict[str, Any]]:
    return await cluster.events(reason)


async def test_config_change_rolls_the_pod(cluster: Cluster) -> None:
    async with operator():
        await cluster.create_bot("bot1", PAPER)
        first = await eventually(lambda: cluster.child("apps/v1", "deployments", "bot1"))
        first_hash = first["spec"]["template"]["metadata"]["annotations"][CONFIG_HASH_ANNOTATION]
        cm = await cluster.child("v1", "configmaps", "bot1-config")
        assert _rendered_risk(cm)["risk_per_trade_pct"] == 0.5

        await cluster.patch("/apis/novapulse.io/v1alpha1/namespaces/default/tradingbots/bot1",
                            {"spec": {"config": {"risk": {"risk_per_trade_pct": 2.0}}}})

        async def rolled() -> dict[str, Any] | None:
            dep = await cluster.child("apps/v1", "deployments", "bot1")
            annotations = (dep or {})["spec"]["template"]["metadata"]["annotations"]
            return dep if annotations[CONFIG_HASH_ANNOTATION] != first_hash else None

        await eventually(rolled, what="a new config hash on the pod template")
        cm = await cluster.child("v1", "configmaps", "bot1-config")
        # JSON has one number type: a real API server hands 2.0 back as 2.
        assert _rendered_risk(cm)["risk_per_trade_pct"] == 2.0
        bot = await eventually(lambda: _observed(cluster, "bot1", 2), what="generation 2")
        assert condition(bot, "ConfigValid")["status"] == "True"


def _rendered_risk(config_map: dict[str, Any] | None) -> dict[str, Any]:
    assert config_map is not None
    return dict(yaml.safe_load(config_map["data"]["config.yaml"])["risk"])


async def _observed(cluster: Cluster, name: str, generation: int) -> dict[str, Any] | None:
    bot = await cluster.bot(name)
    status = (bot or {}).get("status") or {}
    return bot if status.get("observedGeneration") == generation else None


async def test_invalid_config_never_ships(cluster: Cluster) -> None:
    async with operator():
        await cluster.create_bot("bot1", PAPER)
        await eventually(lambda: cluster.child("apps/v1", "deployments", "bot1"))
        cm_before = await cluster.child("v1", "configmaps", "bot1-config")
        # Cross-field rule of the bot's model that no schema can express.
        await cluster.patch("/apis/novapulse.io/v1alpha1/namespaces/default/tradingbots/bot1",
                            {"spec": {"config": {"risk": {"stop_loss_pct": 40,
                                                          "take_profit_pct": 5}}}})
        bot = await eventually(lambda: _observed(cluster, "bot1", 2), what="generation 2")
        cond = condition(bot, "ConfigValid")
        assert cond["status"] == "False" and "take_profit_pct" in cond["message"]
        assert bot["status"]["phase"] == "ConfigInvalid"
        assert await cluster.child("v1", "configmaps", "bot1-config") == cm_before
        await eventually(lambda: _events(cluster, "ConfigInvalid"), what="a Warning Event")


async def test_suspend_and_resume(cluster: Cluster) -> None:
    path = "/apis/novapulse.io/v1alpha1/namespaces/default/tradingbots/bot1"
    async with operator():
        await cluster.create_bot("bot1", PAPER)
        await eventually(lambda: cluster.child("apps/v1", "deployments", "bot1"))
        await cluster.patch(path, {"spec": {"suspended": True}})

        async def replicas(n: int) -> bool:
            dep = await cluster.child("apps/v1", "deployments", "bot1")
            return bool(dep and dep["spec"]["replicas"] == n)

        await eventually(lambda: replicas(0), what="zero replicas")
        bot = await eventually(lambda: _observed(cluster, "bot1", 2))
        assert bot["status"]["phase"] == "Suspended"
        assert await cluster.child("v1", "persistentvolumeclaims", "bot1-data") is not None

        await cluster.patch(path, {"spec": {"suspended": False}})
        await eventually(lambda: replicas(1), what="one replica again")
        bot = await eventually(lambda: _observed(cluster, "bot1", 3))
        assert bot["status"]["phase"] == "Starting"


async def test_kopf_records_in_status_and_an_older_operators_annotation_is_removed(
        cluster: Cluster) -> None:
    """An operator upgraded from a version that kept kopf's diff-base in an annotation: the
    bot is reconciled once, kopf's records move to status.kopf, the annotation goes."""
    legacy = "novapulse.io/last-handled-configuration"
    async with operator():
        await cluster.create_bot("bot1", PAPER, annotations={
            legacy: '{"spec": {"mode": "paper"}}'})

        async def moved() -> dict[str, Any] | None:
            bot = await cluster.bot("bot1")
            meta = (bot or {}).get("metadata") or {}
            kopf = ((bot or {}).get("status") or {}).get("kopf") or {}
            return bot if legacy not in (meta.get("annotations") or {}) and \
                kopf.get("last-handled-configuration") else None

        bot = await eventually(moved, within=20, what="status.kopf written, annotation gone")
        handled = yaml.safe_load(bot["status"]["kopf"]["last-handled-configuration"])
        assert handled["spec"]["pairs"] == ["ETH/BTC"]  # the spec kopf last handled
        assert bot["status"]["phase"] in ("Starting", "Running")
