"""The bot's NetworkPolicy, judged rule by rule the way a CNI reads it: who may reach :8090,
where the bot may connect, for each set of values."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import kubernetes_validate
import pytest

from novapulse_operator import manifests, netpol
from novapulse_operator.manifests import Owner
from novapulse_operator.spec import parse_spec

OWNER = Owner("bot1", "trading", "uid-1")
OPERATOR = netpol.OperatorPeer(namespace="novapulse-system")
OPERATOR_LABELS = {"app.kubernetes.io/name": "novapulse-operator"}
PROMETHEUS = {"namespaceSelector": {"matchLabels": {
    "kubernetes.io/metadata.name": "monitoring"}}}


def _selects(selector: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    assert set(selector) <= {"matchLabels"}, selector  # what the builder emits
    return all(labels.get(k) == v for k, v in (selector.get("matchLabels") or {}).items())


def _ns(name: str) -> dict[str, str]:
    return {"kubernetes.io/metadata.name": name}


def admits(policy: Mapping[str, Any], namespace: str, pod: Mapping[str, str], port: int) -> bool:
    """Whether a pod (namespace, labels) may connect to the bot's pod on TCP `port`."""
    for rule in policy["spec"]["ingress"]:
        if not any(p["port"] == port and p["protocol"] == "TCP" for p in rule["ports"]):
            continue
        for peer in rule["from"]:
            if "ipBlock" in peer:
                continue
            in_ns = (_selects(peer["namespaceSelector"], _ns(namespace))
                     if "namespaceSelector" in peer else namespace == OWNER.namespace)
            if in_ns and _selects(peer.get("podSelector") or {}, pod):
                return True
    return False


def lets_out(policy: Mapping[str, Any], namespace: str | None, port: int,
             protocol: str = "TCP") -> bool:
    """Whether the bot may connect to `port` in `namespace` (None: outside the cluster)."""
    for rule in policy["spec"]["egress"]:
        if not any(p["port"] == port and p["protocol"] == protocol for p in rule["ports"]):
            continue
        if "to" not in rule:
            return True
        for peer in rule["to"]:
            if namespace is not None and _selects(peer["namespaceSelector"], _ns(namespace)):
                return True
    return False


def policy(spec: Mapping[str, Any] | None = None, database_url: str | None = None,
           operator: netpol.OperatorPeer = OPERATOR) -> dict[str, Any]:
    parsed = parse_spec(spec or {})
    database = netpol.database_of(database_url, OWNER.namespace)
    built = manifests.network_policy(OWNER, parsed, operator, database)
    kubernetes_validate.validate(built, "1.33", strict=True)
    return built


@pytest.mark.parametrize(("namespace", "labels", "port", "expected"), [
    ("novapulse-system", OPERATOR_LABELS, 8090, True),  # the operator
    ("novapulse-system", OPERATOR_LABELS, 5432, False),  # only the API port
    ("evil", OPERATOR_LABELS, 8090, False),  # anyone can set a label
    ("trading", OPERATOR_LABELS, 8090, False),
    ("trading", {}, 8090, False),  # the bot's namespace is not trusted as such
    ("novapulse-system", {}, 8090, False),  # nor the operator's namespace
    ("monitoring", {"app": "prometheus"}, 8090, False),  # not listed
])
def test_ingress_by_default(namespace: str, labels: dict[str, str], port: int,
                            expected: bool) -> None:
    assert admits(policy(), namespace, labels, port) is expected


def test_ingress_from_what_the_spec_lists() -> None:
    listed = policy({"network": {"ingressFrom": [PROMETHEUS]}})
    assert admits(listed, "monitoring", {"app": "prometheus"}, 8090)
    assert not admits(listed, "other", {"app": "prometheus"}, 8090)
    assert admits(listed, "novapulse-system", OPERATOR_LABELS, 8090)


def test_an_operator_outside_the_cluster_gets_no_peer() -> None:
    built = policy(operator=netpol.OperatorPeer())
    assert built["spec"]["ingress"][0]["from"] == []
    assert not admits(built, "novapulse-system", OPERATOR_LABELS, 8090)


@pytest.mark.parametrize(("url", "namespace", "port", "expected"), [
    (None, None, 443, True),  # Kraken, Telegram, OpenSearch
    (None, "kube-system", 53, True),
    (None, None, 80, False),
    (None, None, 5432, False),  # the embedded PostgreSQL: no database traffic at all
    (None, "db", 5432, False),
    ("postgresql://u:p@pg.db.svc:5432/np", "db", 5432, True),
    ("postgresql://u:p@pg.db.svc.cluster.local/np", "db", 5432, True),
    ("postgresql://u:p@pg.db.svc:5432/np", "other", 5432, False),
    ("postgresql://u:p@pg.db.svc:5432/np", None, 5432, False),
    ("postgresql://u:p@pg:6432/np", "trading", 6432, True),  # a Service beside the bot
    ("postgresql://u:p@pg:6432/np", "trading", 5432, False),
    ("postgresql://u:p@db.example.com:5432/np", None, 5432, True),  # outside the cluster
    ("postgresql://u:p@10.1.2.3:5433/np", None, 5433, True),
])
def test_egress(url: str | None, namespace: str | None, port: int, expected: bool) -> None:
    assert lets_out(policy({"database": {"urlSecretRef": {"name": "db"}}} if url else {}, url),
                    namespace, port) is expected
    assert lets_out(policy(), None, 53, "UDP")


def test_only_host_and_port_of_the_url_are_kept() -> None:
    built = str(policy({}, "postgresql://user:s3cret-pw@pg.db.svc:5432/np"))
    assert "s3cret-pw" not in built and "user" not in built
