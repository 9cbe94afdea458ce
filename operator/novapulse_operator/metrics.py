"""The operator's own Prometheus metrics (a private registry, served on --metrics-port)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

REGISTRY = CollectorRegistry(auto_describe=True)

RECONCILES = Counter(
    "novapulse_operator_reconciles", "Reconciles of TradingBots by result", ["result"],
    registry=REGISTRY,
)
RECONCILE_SECONDS = Histogram(
    "novapulse_operator_reconcile_seconds", "Duration of one reconcile", registry=REGISTRY,
)
CHILDREN_WRITES = Counter(
    "novapulse_operator_child_writes", "Children created or patched", ["kind", "action"],
    registry=REGISTRY,
)
LIVE_GATE_BLOCKED = Gauge(
    "novapulse_operator_live_gate_blocked", "TradingBots whose live gate is closed",
    registry=REGISTRY,
)
DELETIONS_BLOCKED = Counter(
    "novapulse_operator_deletions_blocked", "Deletions held because positions stay open",
    ["reason"], registry=REGISTRY,
)

REMEDIATIONS = Counter(
    "novapulse_operator_remediations",
    "Auto-pilot actions by action (Pause, Resume, RestartPod, RaiseMemoryLimit, "
    "ReduceRetention, ClearStaleLock, Warn) and outcome", ["action", "outcome"],
    registry=REGISTRY,
)
BOT_POLLS = Counter(
    "novapulse_operator_bot_polls", "Polls of bots' APIs by result", ["result"],
    registry=REGISTRY,
)


def serve(port: int) -> None:
    """Serve /metrics on `port` in a background thread (0 disables)."""
    if port:
        start_http_server(port, registry=REGISTRY)
