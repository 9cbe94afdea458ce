"""What the chart's RBAC reaches: namespaced mode grants nothing on Secrets beyond the listed
namespaces; cluster-wide mode says on its ClusterRole that it reaches every Secret."""

from __future__ import annotations

from typing import Any


def _granting(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] in ("ClusterRole", "Role")
            and any("secrets" in rule.get("resources", []) for rule in d.get("rules") or [])]


def _secret_grants(docs: list[dict[str, Any]]) -> list[tuple[str, str | None]]:
    return [(d["kind"], d["metadata"].get("namespace")) for d in _granting(docs)]


def test_namespaced_mode_grants_secrets_in_the_listed_namespaces_only(tools: Any) -> None:
    docs = tools.template("--set", "watchNamespaces={bots,research}")
    assert sorted(_secret_grants(docs), key=str) == [("Role", "bots"), ("Role", "research")]


def test_cluster_wide_mode_says_what_it_grants(tools: Any) -> None:
    docs = tools.template()
    grants = _granting(docs)
    assert [d["kind"] for d in grants] == ["ClusterRole"]
    said = grants[0]["metadata"]["annotations"]["novapulse.io/grants"]
    assert "every Secret of every namespace" in said and "watchNamespaces" in said
