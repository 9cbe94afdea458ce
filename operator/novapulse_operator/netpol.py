"""Who may talk to a bot, and where a bot may talk to (pure): the rules of its NetworkPolicy.

Ingress on the API port only from the operator's own pods — its namespace *and* its pod
labels, in one peer, so a label set on a pod elsewhere opens nothing — and from the peers the
user lists in `spec.network.ingressFrom` (e.g. Prometheus' namespace, for `/metrics`).
Egress: DNS; HTTPS (Kraken, Telegram, OpenSearch — addresses a NetworkPolicy cannot name: an
FQDN policy needs a CNI that has one); and the database's port only when the bot has an
external database — to its namespace when the URL names a Service in the cluster.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

NAMESPACE_LABEL = "kubernetes.io/metadata.name"  # set by the API server on every namespace
DEFAULT_OPERATOR_LABELS: Mapping[str, str] = {"app.kubernetes.io/name": "novapulse-operator"}
POSTGRES_PORT = 5432


@dataclass(frozen=True)
class OperatorPeer:
    """Where the operator's pods run. No namespace (the operator runs outside the cluster):
    no operator peer at all — it cannot reach a pod's network anyway."""

    namespace: str | None = None
    labels: Mapping[str, str] = field(default_factory=lambda: dict(DEFAULT_OPERATOR_LABELS))


@dataclass(frozen=True)
class Database:
    port: int = POSTGRES_PORT
    namespace: str | None = None  # a Service in this namespace; None: outside the cluster


def database_of(url: str | None, bot_namespace: str) -> Database | None:
    """Where DATABASE_URL points (None: no URL, the embedded PostgreSQL: no egress at all).
    A bare `name` is a Service in the bot's namespace and `name.ns.svc[.…]` one in `ns`;
    anything else (a dotted host name, an address, `name.ns` — which could be a domain) is
    taken as outside the cluster."""
    if not url:
        return None
    try:
        parts = urlsplit(url.strip())
        host, port = (parts.hostname or "").lower(), (parts.port or POSTGRES_PORT)
    except ValueError:
        return Database()
    labels = host.split(".")
    if not host or ":" in host or all(label.isdigit() for label in labels):
        return Database(port=port)
    if len(labels) == 1:
        return Database(port=port, namespace=bot_namespace)
    if len(labels) >= 3 and labels[2] == "svc":
        return Database(port=port, namespace=labels[1])
    return Database(port=port)


def ingress_peers(operator: OperatorPeer, extra: list[Mapping[str, Any]]) -> list[dict[str, Any]]:
    peers: list[dict[str, Any]] = []
    if operator.namespace:
        peers.append({
            "namespaceSelector": {"matchLabels": {NAMESPACE_LABEL: operator.namespace}},
            "podSelector": {"matchLabels": dict(operator.labels)},
        })
    peers += [dict(peer) for peer in extra]
    return peers


def egress_rules(database: Database | None) -> list[dict[str, Any]]:
    rules: list[dict[str, Any]] = [
        {"ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]},
        {"ports": [{"protocol": "TCP", "port": 443}]},
    ]
    if database is not None:
        rule: dict[str, Any] = {"ports": [{"protocol": "TCP", "port": database.port}]}
        if database.namespace:
            rule["to"] = [{"namespaceSelector": {
                "matchLabels": {NAMESPACE_LABEL: database.namespace}}}]
        rules.append(rule)
    return rules
