"""An operator restarted in the middle of a reconcile converges, duplicating nothing."""

from __future__ import annotations

from typing import Any

from novapulse_operator import manifests, rendering
from novapulse_operator.kube import is_subset
from novapulse_operator.manifests import Owner
from novapulse_operator.spec import parse_spec

from .conftest import Cluster, eventually, operator

SPEC: dict[str, Any] = {"mode": "paper", "config": {"risk": {"max_open_positions": 2}}}
CHILDREN = {  # (api, plural) → the names the operator gives them, each exactly once
    ("v1", "serviceaccounts"): ["bot1"], ("v1", "configmaps"): ["bot1-config"],
    ("v1", "persistentvolumeclaims"): ["bot1-data"], ("v1", "services"): ["bot1"],
    ("networking.k8s.io/v1", "networkpolicies"): ["bot1"], ("apps/v1", "deployments"): ["bot1"],
    ("v1", "secrets"): ["bot1-dashboard", "bot1-dashboard-login"],
}


async def test_restart_mid_reconcile_converges_without_duplicates(emulator: Cluster) -> None:
    # The emulator, also when a real API server is at hand: only it can hang a request.
    cluster = emulator
    assert cluster.thread is not None
    cluster.thread.hold_creates("deployments")  # the API server "hangs" on the Deployment
    async with operator():
        created = await cluster.create_bot("bot1", SPEC)
        await eventually(lambda: cluster.child("networking.k8s.io/v1", "networkpolicies",
                                               "bot1"), what="children before the Deployment")
        assert await cluster.child("apps/v1", "deployments", "bot1") is None
    # The first operator is gone mid-reconcile (its Deployment creation still in flight).
    async with operator():
        cluster.thread.hold_creates(None)  # the stuck request completes, and so does the new

        async def settled() -> dict[str, Any] | None:
            bot = await cluster.bot("bot1")
            return bot if ((bot or {}).get("status") or {}).get("phase") == "Starting" else None

        bot = await eventually(settled, what="a settled status")
        for (api, plural), names in CHILDREN.items():
            assert await cluster.names(api, plural) == names, plural

    owner = Owner("bot1", "default", created["metadata"]["uid"])
    spec = parse_spec(SPEC)
    rendered = rendering.render(spec, "paper", "default/bot1")
    for expected in manifests.children(owner, spec, rendered, "paper"):
        plural = {"ServiceAccount": "serviceaccounts", "ConfigMap": "configmaps",
                  "PersistentVolumeClaim": "persistentvolumeclaims", "Service": "services",
                  "NetworkPolicy": "networkpolicies", "Deployment": "deployments"}[
            expected["kind"]]
        actual = await cluster.child(expected["apiVersion"], plural,
                                     expected["metadata"]["name"])
        body = {k: v for k, v in expected.items() if k not in ("apiVersion", "kind")}
        assert is_subset(body, actual), expected["kind"]
    assert bot["status"]["effectiveMode"] == "paper"
