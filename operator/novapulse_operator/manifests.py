"""The children of a TradingBot as Kubernetes manifests: pure functions, spec → objects."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from novapulse_operator import database, livegate, netpol
from novapulse_operator.rendering import CONFIG_DIR, CONFIG_FILE, DATA_DIR, RenderedConfig
from novapulse_operator.spec import API_VERSION, BOT_PORT, KIND, BotSpec, Mode

CONFIG_HASH_ANNOTATION = "novapulse.io/config-hash"
LOCK_CLEAR_ANNOTATION = "novapulse.io/lock-cleared-for"
MODE_LABEL = "novapulse.io/mode"
BOT_LABEL = "novapulse.io/tradingbot"
RUN_AS = 10001
Manifest = dict[str, Any]


@dataclass(frozen=True)
class Remedies:
    """What the auto-pilot changed in the pod (status.remediation): a raised memory limit
    (runbook 6) and the stale lock it clears (runbook 1)."""

    memory_limit: str | None = None
    lock_clear_for: str | None = None  # the gone pod whose lock an init container clears


@dataclass(frozen=True)
class Owner:
    name: str
    namespace: str
    uid: str


def labels(owner: Owner) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": "novapulse",
        "app.kubernetes.io/instance": owner.name,
        "app.kubernetes.io/managed-by": "novapulse-operator",
        BOT_LABEL: owner.name,
    }


def selector(owner: Owner) -> dict[str, str]:
    return {"app.kubernetes.io/name": "novapulse", BOT_LABEL: owner.name}


def teardown_finalizer(bot_name: str) -> str:
    """The finalizer by which a bot holds what its deletion's teardown needs (holds.py)."""
    return f"teardown.novapulse.io/{bot_name}"


def metadata(owner: Owner, name: str) -> dict[str, Any]:
    return {
        "name": name,
        "namespace": owner.namespace,
        "labels": labels(owner),
        "ownerReferences": [
            {
                "apiVersion": API_VERSION,
                "kind": KIND,
                "name": owner.name,
                "uid": owner.uid,
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ],
    }


def config_map_name(owner: Owner) -> str:
    return f"{owner.name}-config"


def pvc_name(owner: Owner) -> str:
    return f"{owner.name}-data"


def generated_dashboard_secret_name(owner: Owner) -> str:
    return f"{owner.name}-dashboard"


def generated_login_secret_name(owner: Owner) -> str:
    """The generated dashboard password, for the human: no pod ever references it."""
    return f"{owner.name}-dashboard-login"


def dashboard_secret_name(owner: Owner, spec: BotSpec) -> str:
    if spec.dashboard_secret is not None:
        return spec.dashboard_secret.name
    return generated_dashboard_secret_name(owner)


def config_map(owner: Owner, rendered: RenderedConfig) -> Manifest:
    meta = metadata(owner, config_map_name(owner))
    meta["annotations"] = {CONFIG_HASH_ANNOTATION: rendered.hash}
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta,
            "data": {CONFIG_FILE: rendered.text}}


PASSWORD_KEY = "DASHBOARD_ADMIN_PASSWORD"
# The bot's own variable names (docs/analytics.md, docs/telegram.md).
ANALYTICS_KEYS = ("OPENSEARCH_USERNAME", "OPENSEARCH_PASSWORD")
TELEGRAM_KEY = "TELEGRAM_BOT_TOKEN"


def dashboard_secret(owner: Owner, admin_key: str, session_secret: str,
                     password_hash: str) -> Manifest:
    """The generated paper-mode dashboard Secret the pod uses (values made by the caller):
    the bot needs the password's hash only, never the password."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": metadata(owner, generated_dashboard_secret_name(owner)),
        "stringData": {
            "DASHBOARD_ADMIN_KEY": admin_key,
            "DASHBOARD_SESSION_SECRET": session_secret,
            "DASHBOARD_ADMIN_PASSWORD_HASH": password_hash,
        },
    }


def login_secret(owner: Owner, password: str) -> Manifest:
    """The generated password for the human, in a Secret of its own that no pod mounts."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": metadata(owner, generated_login_secret_name(owner)),
        "stringData": {PASSWORD_KEY: password},
    }


def _secret_env(name: str, secret: str, key: str, optional: bool = False) -> dict[str, Any]:
    ref: dict[str, Any] = {"name": secret, "key": key}
    if optional:
        ref["optional"] = True
    return {"name": name, "valueFrom": {"secretKeyRef": ref}}


def env(owner: Owner, spec: BotSpec, mode: Mode) -> list[dict[str, Any]]:
    """Environment of the bot: secrets by reference only, never by value; exchange
    credentials only in the modes that trade on the exchange (canary, live)."""
    items: list[dict[str, Any]] = [
        {"name": "NOVAPULSE_POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        # The instance lock records its holder under this name (runbook 1's stale-lock check).
        {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "TRADING_MODE", "value": mode},
    ]
    dash = dashboard_secret_name(owner, spec)
    items += [_secret_env(k, dash, k) for k in livegate.DASHBOARD_KEYS]
    if spec.exchange_secret is not None and mode in ("canary", "live"):
        items += [_secret_env(k, spec.exchange_secret.name, k) for k in livegate.EXCHANGE_KEYS]
    items += database.env(spec)  # a URL Secret's or CloudNativePG's; none when embedded
    # Soft dependencies: a missing Secret or key never keeps the bot from starting (optional);
    # the bot then reports analytics/Telegram as failing and trades on.
    if spec.analytics is not None and spec.analytics.credentials is not None:
        items += [_secret_env(k, spec.analytics.credentials.name, k, optional=True)
                  for k in ANALYTICS_KEYS]
    if spec.telegram is not None:
        items.append(_secret_env(TELEGRAM_KEY, spec.telegram.token.name,
                                 spec.telegram.token.key or TELEGRAM_KEY, optional=True))
    return items


def container_security_context() -> dict[str, Any]:
    return {
        "runAsNonRoot": True,
        "runAsUser": RUN_AS,
        "runAsGroup": RUN_AS,
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "privileged": False,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def resources(spec: BotSpec, remedies: Remedies) -> dict[str, Any]:
    """The container's resources, with the auto-pilot's memory limit when it raised one."""
    out = {k: dict(v) for k, v in spec.resources.items() if isinstance(v, dict)}
    if remedies.memory_limit:
        out.setdefault("limits", {})["memory"] = remedies.memory_limit
    return out


def lock_clear_container(spec: BotSpec) -> dict[str, Any]:
    """Runs before the bot: removes data/instance.lock only if no live process holds it."""
    return {
        "name": "lock-clear",
        "image": spec.image,
        "imagePullPolicy": spec.image_pull_policy,
        "command": ["novapulse", "lock", "clear", "--if-stale", "--data-dir", DATA_DIR],
        "securityContext": container_security_context(),
        "resources": {"requests": {"cpu": "50m", "memory": "64Mi"},
                      "limits": {"cpu": "200m", "memory": "128Mi"}},
        "volumeMounts": [{"name": "data", "mountPath": DATA_DIR},
                         {"name": "tmp", "mountPath": "/tmp"}],
    }


def deployment(owner: Owner, spec: BotSpec, rendered: RenderedConfig, mode: Mode | None,
               remedies: Remedies | None = None) -> Manifest:
    """One replica, Recreate (never two bots), zero replicas when suspended or gated."""
    remedies = remedies or Remedies()
    running = mode is not None and not spec.suspended
    shown_mode: Mode = mode or "paper"
    pod_labels = {**labels(owner), MODE_LABEL: mode or "none"}
    container = {
        "name": "bot",
        "image": spec.image,
        "imagePullPolicy": spec.image_pull_policy,
        "command": ["novapulse", "run", "--config", f"{CONFIG_DIR}/{CONFIG_FILE}"],
        "ports": [{"name": "http", "containerPort": BOT_PORT, "protocol": "TCP"}],
        "env": env(owner, spec, shown_mode),
        "livenessProbe": {
            "httpGet": {"path": "/api/v1/health", "port": "http"},
            "initialDelaySeconds": 20, "periodSeconds": 10, "timeoutSeconds": 3,
            "failureThreshold": 6,
        },
        "readinessProbe": {
            "httpGet": {"path": "/api/v1/ready", "port": "http"},
            "periodSeconds": 5, "timeoutSeconds": 3, "failureThreshold": 3,
        },
        "resources": resources(spec, remedies),
        "securityContext": container_security_context(),
        # The log's tail becomes the termination message: the operator reads why it exited.
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "volumeMounts": [
            {"name": "config", "mountPath": CONFIG_DIR, "readOnly": True},
            {"name": "data", "mountPath": DATA_DIR},
            {"name": "tmp", "mountPath": "/tmp"},
        ],
    }
    annotations = {CONFIG_HASH_ANNOTATION: rendered.hash}
    pod_spec: dict[str, Any] = {}
    if remedies.lock_clear_for:
        annotations[LOCK_CLEAR_ANNOTATION] = remedies.lock_clear_for
        pod_spec["initContainers"] = [lock_clear_container(spec)]
    meta = metadata(owner, owner.name)
    # Held for the deletion's teardown from its creation on (holds.py): no second write.
    meta["finalizers"] = [teardown_finalizer(owner.name)]
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": meta,
        "spec": {
            "replicas": 1 if running else 0,
            "strategy": {"type": "Recreate"},
            "selector": {"matchLabels": selector(owner)},
            "template": {
                "metadata": {
                    "labels": pod_labels,
                    "annotations": annotations,
                },
                "spec": {
                    **pod_spec,
                    "serviceAccountName": owner.name,
                    "automountServiceAccountToken": False,
                    "terminationGracePeriodSeconds": 60,
                    "securityContext": {
                        "runAsNonRoot": True,
                        "runAsUser": RUN_AS,
                        "runAsGroup": RUN_AS,
                        "fsGroup": RUN_AS,
                        "seccompProfile": {"type": "RuntimeDefault"},
                    },
                    "containers": [container],
                    "volumes": [
                        {"name": "config", "configMap": {"name": config_map_name(owner)}},
                        {"name": "data",
                         "persistentVolumeClaim": {"claimName": pvc_name(owner)}},
                        {"name": "tmp", "emptyDir": {"sizeLimit": "256Mi"}},
                    ],
                },
            },
        },
    }


def service(owner: Owner) -> Manifest:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": metadata(owner, owner.name),
        "spec": {
            "type": "ClusterIP",
            "selector": selector(owner),
            # The operator reads, pauses and closes through the Service also while the pod
            # is not Ready (its database down, its loop stuck): it must see what the bot
            # says (503, db_ok false), not a Service without endpoints. One pod at most.
            "publishNotReadyAddresses": True,
            "ports": [{"name": "http", "port": BOT_PORT, "targetPort": "http",
                       "protocol": "TCP"}],
        },
    }


def pvc(owner: Owner, spec: BotSpec) -> Manifest:
    body: dict[str, Any] = {
        "accessModes": ["ReadWriteOnce"],
        "resources": {"requests": {"storage": spec.storage_size}},
    }
    if spec.storage_class:
        body["storageClassName"] = spec.storage_class
    return {"apiVersion": "v1", "kind": "PersistentVolumeClaim",
            "metadata": metadata(owner, pvc_name(owner)), "spec": body}


def service_account(owner: Owner) -> Manifest:
    return {"apiVersion": "v1", "kind": "ServiceAccount",
            "metadata": metadata(owner, owner.name), "automountServiceAccountToken": False}


def network_policy(owner: Owner, spec: BotSpec, operator: netpol.OperatorPeer,
                   db: netpol.Database | None) -> Manifest:
    """The rules of `netpol`: the API port only for the operator's pods and the peers the spec
    lists; egress to DNS, HTTPS and, with an external database, its port."""
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": metadata(owner, owner.name),
        "spec": {
            "podSelector": {"matchLabels": selector(owner)},
            "policyTypes": ["Ingress", "Egress"],
            "ingress": [{
                "from": netpol.ingress_peers(operator, list(spec.ingress_from)),
                "ports": [{"protocol": "TCP", "port": BOT_PORT}],
            }],
            "egress": netpol.egress_rules(
                db, netpol.analytics_of(spec.analytics.endpoint, owner.namespace)
                if spec.analytics is not None else None),
        },
    }


def children(owner: Owner, spec: BotSpec, rendered: RenderedConfig, mode: Mode | None,
             remedies: Remedies | None = None, operator: netpol.OperatorPeer | None = None,
             db: netpol.Database | None = None) -> list[Manifest]:
    """Every owned child in apply order (the Deployment last: what it mounts exists first)."""
    return [
        service_account(owner),
        config_map(owner, rendered),
        pvc(owner, spec),
        service(owner),
        network_policy(owner, spec, operator or netpol.OperatorPeer(), db),
        deployment(owner, spec, rendered, mode, remedies),
    ]
