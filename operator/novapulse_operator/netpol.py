"""Who may talk to a bot, and where a bot may talk to (pure): the rules of its NetworkPolicy.

Ingress on the API port only from the operator's own pods — its namespace *and* its pod
labels, in one peer, so a label set on a pod elsewhere opens nothing — and from the peers the
user lists in `spec.network.ingressFrom` (e.g. Prometheus' namespace, for `/metrics`).
Egress: DNS; HTTPS (Kraken, Telegram, OpenSearch — addresses a NetworkPolicy cannot name: an
FQDN policy needs a CNI that has one); and the database's port only when the bot has an
external database — to its namespace when the URL names a Service in the cluster, to the
cluster's own pods for CloudNativePG.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

NAMESPACE_LABEL = "kubernetes.io/metadata.name"  # set by the API server on every namespace
DEFAULT_OPERATOR_LABELS: Mapping[str, str] = {"app.kubernetes.io/name": "novapulse-operator"}
POSTGRES_PORT = 5432
HTTPS_PORT = 443
OPENSEARCH_PORT = 9200  # the OpenSearch client's port for an http URL without one


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
    # Only these pods of `namespace` (e.g. a CloudNativePG cluster's instances, whichever is
    # primary: its Service CLUSTER-rw follows a switchover); None: any pod there.
    pods: Mapping[str, str] | None = None


def database_of(url: str | None, bot_namespace: str) -> Database | None:
    """Where DATABASE_URL points (None: no URL, the embedded PostgreSQL: no egress at all).
    A bare `name` is a Service in the bot's namespace and `name.ns.svc[.…]` one in `ns`;
    anything else (a dotted host name, an address, `name.ns` — which could be a domain) is
    taken as outside the cluster."""
    return _service_of(url, bot_namespace, lambda _: POSTGRES_PORT)


def analytics_of(url: str | None, bot_namespace: str) -> Database | None:
    """Where OpenSearch is (the same reading of the host as `database_of`). The port is the
    client's: the URL's, else 443 for https and OpenSearch's 9200 for http."""
    return _service_of(url, bot_namespace,
                       lambda scheme: HTTPS_PORT if scheme == "https" else OPENSEARCH_PORT)


def _service_of(url: str | None, bot_namespace: str,
                default_port: Callable[[str], int]) -> Database | None:
    if not url:
        return None
    try:
        parts = urlsplit(url.strip())
        host = (parts.hostname or "").lower()
        port = parts.port or default_port(parts.scheme.lower())
    except ValueError:
        return Database(port=default_port(""))
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


def egress_rules(database: Database | None,
                 analytics: Database | None = None) -> list[dict[str, Any]]:
    """DNS, HTTPS, and a rule each for the external database and OpenSearch (the latter only
    when its port is not 443, which the HTTPS rule opens to any address already)."""
    rules: list[dict[str, Any]] = [
        {"ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]},
        {"ports": [{"protocol": "TCP", "port": HTTPS_PORT}]},
    ]
    peers = [p for p in (database, analytics)
             if p is not None and not (p is analytics and p.port == HTTPS_PORT)]
    for peer in peers:
        rule: dict[str, Any] = {"ports": [{"protocol": "TCP", "port": peer.port}]}
        if peer.namespace:
            to: dict[str, Any] = {"namespaceSelector": {
                "matchLabels": {NAMESPACE_LABEL: peer.namespace}}}
            if peer.pods:
                to["podSelector"] = {"matchLabels": dict(peer.pods)}
            rule["to"] = [to]
        rules.append(rule)
    return rules
