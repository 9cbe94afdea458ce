"""What only a real API server can show: the CRD's schema and CEL rules refuse a bad spec
at create time, and deleting a TradingBot lets the controller-manager's garbage collector
remove every child the operator made (Deployment → ReplicaSet → Pod included)."""

from __future__ import annotations

from typing import Any

import pytest

from .conftest import BOTS, NS, Cluster, bot_path, eventually, operator


def _bot(spec: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": "novapulse.io/v1alpha1", "kind": "TradingBot",
            "metadata": {"name": "bad", "namespace": NS}, "spec": spec}


@pytest.mark.parametrize(("spec", "status", "message"), [
    ({"mode": "yolo"}, 422, 'spec.mode: Unsupported value: "yolo"'),
    ({"mode": "live", "dashboard": {"secretRef": {"name": "dash"}}}, 422,
     "canary and live modes need spec.exchange.credentialsSecretRef"),
    ({"mode": "paper", "remediation": {"feed": {"pauseAfter": "10m", "restartAfter": "5m"}}},
     422, "spec.remediation.feed.pauseAfter must not exceed restartAfter"),
    # kubectl's default is strict field validation: a misspelt field is refused (400).
    ({"mode": "paper", "modee": "live"}, 400, 'unknown field "spec.modee"'),
])
async def test_the_crd_refuses_a_bad_spec_at_create_time(
        real: Cluster, spec: dict[str, Any], status: int, message: str) -> None:
    async with real.http.post(f"{BOTS}?fieldValidation=Strict",
                                      json=_bot(spec)) as resp:
        answer = await resp.json()
    assert resp.status == status, answer
    assert message in answer["message"]
    assert await real.bot("bad") is None


CHILDREN = [
    ("v1", "serviceaccounts"), ("v1", "configmaps"), ("v1", "persistentvolumeclaims"),
    ("v1", "services"), ("v1", "secrets"), ("networking.k8s.io/v1", "networkpolicies"),
    ("apps/v1", "deployments"), ("apps/v1", "replicasets"), ("v1", "pods"),
]


async def _owned_by(cluster: Cluster, uid: str) -> list[str]:
    """Every object in NS that the TradingBot owns, directly or through its Deployment."""
    owners = {uid}
    found: list[str] = []
    for api, plural in CHILDREN:  # owners before the objects they own
        prefix = "/api/v1" if api == "v1" else f"/apis/{api}"
        listing = await cluster.get(f"{prefix}/namespaces/{NS}/{plural}") or {}
        for item in listing.get("items", []):
            refs = item["metadata"].get("ownerReferences") or []
            if any(ref["uid"] in owners for ref in refs):
                owners.add(item["metadata"]["uid"])
                found.append(f"{plural}/{item['metadata']['name']}")
    return found


async def test_deleting_the_bot_garbage_collects_every_child(real: Cluster) -> None:
    cluster = real
    async with operator():
        created = await cluster.create_bot("bot1", {"mode": "paper"})
        uid = created["metadata"]["uid"]

        async def all_children() -> list[str] | None:
            owned = await _owned_by(cluster, uid)
            return owned if any(name.startswith("pods/") for name in owned) else None

        # The controller-manager turned the Deployment into a ReplicaSet and a (Pending) Pod.
        owned = await eventually(all_children, within=60, what="children down to the Pod")
        for expected in ["serviceaccounts/bot1", "configmaps/bot1-config",
                         "persistentvolumeclaims/bot1-data", "services/bot1",
                         "secrets/bot1-dashboard", "networkpolicies/bot1",
                         "deployments/bot1"]:
            assert expected in owned
        assert any(name.startswith("replicasets/bot1-") for name in owned)

        await cluster.delete(bot_path("bot1"))

        async def bot_gone() -> bool:
            return await cluster.bot("bot1") is None

        # No bot answers in a paper run here: the operator lets go, nothing to close.
        await eventually(bot_gone, within=60, what="the finalizer released")

        async def children_gone() -> bool:
            return not await _owned_by(cluster, uid)

        await eventually(children_gone, within=60, what="garbage collection of the children")
