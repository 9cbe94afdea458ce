"""Server-side apply on a real API server: the operator owns its children's fields as the
field manager `novapulse-operator`, and a field another manager changed is surfaced on the
TradingBot (Ready=False, a Warning Event), never overwritten."""

from __future__ import annotations

from typing import Any

from novapulse_operator.kube import FIELD_MANAGER

from .conftest import NS, Cluster, eventually, operator

DEPLOYMENT = f"/apis/apps/v1/namespaces/{NS}/deployments/ssa1"


def _ready(bot: dict[str, Any] | None) -> dict[str, Any]:
    for cond in ((bot or {}).get("status") or {}).get("conditions") or []:
        if cond["type"] == "Ready":
            return dict(cond)
    return {}


def _memory_limit(deployment: dict[str, Any]) -> str:
    (bot,) = [c for c in deployment["spec"]["template"]["spec"]["containers"]
              if c["name"] == "bot"]
    return str(bot["resources"]["limits"]["memory"])


async def _edit_memory(cluster: Cluster, manager: str, memory: str) -> None:
    """What `kubectl edit` or `kubectl set resources` does: another field manager's write."""
    body = {"spec": {"template": {"spec": {"containers": [
        {"name": "bot", "resources": {"limits": {"memory": memory}}}]}}}}
    headers = {"Content-Type": "application/strategic-merge-patch+json"}
    async with cluster.http.patch(f"{DEPLOYMENT}?fieldManager={manager}", json=body,
                                  headers=headers) as resp:
        assert resp.status == 200, await resp.text()


async def test_children_are_applied_and_a_foreign_change_is_surfaced_not_overwritten(
        real: Cluster) -> None:
    cluster = real
    async with operator():
        await cluster.create_bot("ssa1", {"mode": "paper",
                                          "resources": {"limits": {"memory": "1Gi"}}})
        deployment = await eventually(lambda: cluster.get(DEPLOYMENT), within=30,
                                      what="the Deployment")
        managers = {(m["manager"], m["operation"])
                    for m in deployment["metadata"].get("managedFields") or []}
        assert (FIELD_MANAGER, "Apply") in managers

        await _edit_memory(cluster, "kubectl-edit", "3Gi")

        async def refused() -> dict[str, Any] | None:
            ready = _ready(await cluster.bot("ssa1"))
            return ready if ready.get("reason") == "ChildRefused" else None

        ready = await eventually(refused, within=30, what="Ready=False naming the conflict")
        assert ready["status"] == "False"
        assert 'conflict with "kubectl-edit"' in ready["message"]
        assert "resources.limits.memory" in ready["message"]
        assert "undo that change" in ready["message"]
        warnings = await cluster.events("ChildRefused")
        assert any("kubectl-edit" in e["message"] for e in warnings)
        # The other manager's value stands: the operator did not force it back.
        assert _memory_limit(await cluster.get(DEPLOYMENT) or {}) == "3Gi"

        # Undone (the value the operator wants again): the conflict is gone, Ready returns.
        await _edit_memory(cluster, "kubectl-edit", "1Gi")

        async def recovered() -> bool:
            return _ready(await cluster.bot("ssa1")).get("reason") != "ChildRefused"

        await eventually(recovered, within=30, what="the refusal cleared")
