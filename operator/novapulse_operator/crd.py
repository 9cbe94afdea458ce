"""The TradingBot CustomResourceDefinition, built from code (pure) and written to crds/.

`python -m novapulse_operator.crd > crds/tradingbot.yaml` (or `make crds`) regenerates it;
a unit test fails when the committed file is stale.
"""

from __future__ import annotations

import sys
from typing import Any

import yaml

from novapulse.config import MAX_PAIRS, PAIR_MAX_LENGTH, PAIR_PATTERN, config_json_schema
from novapulse_operator import netpol
from novapulse_operator import spec as s
from novapulse_operator.schema import config_schema

SECRET_NAME = {"type": "string", "minLength": 1, "maxLength": 253,
               "description": "Name of a Secret in the TradingBot's namespace."}
FIXED_KEYS = ("Not used: the operator reads the keys named above (they are the bot's "
              "variable names).")


def _secret_ref(description: str, key: str = FIXED_KEYS) -> dict[str, Any]:
    """A reference to a Secret of the bot's namespace; `key` describes the field `key`."""
    return {
        "type": "object",
        "required": ["name"],
        "description": description,
        "properties": {
            "name": dict(SECRET_NAME),
            "key": {"type": "string", "minLength": 1, "description": key},
        },
    }


def _duration(description: str) -> dict[str, Any]:
    return {
        "type": "string",
        "minLength": 1,
        "maxLength": 32,
        "pattern": s.DURATION_PATTERN,
        "description": f"{description} A duration like 30s, 5m, 1h30m.",
    }


def _configured(section: str, field: str, default: str) -> str:
    """CEL: spec.config.<section>.<field>, or the bot's default when spec.config omits it."""
    path = f"self.config.{section}"
    return (f"(has(self.config) && has({path}) && has({path}.{field}) ? {path}.{field} "
            f": {default})")


def _config_rules() -> list[dict[str, str]]:
    """Cross-field rules of the bot's model that the CRD can check before anything ships."""
    initial = _configured("feed", "reconnect_initial_seconds",
                          repr(float(s.DEFAULT_RECONNECT_INITIAL)))
    maximum = _configured("feed", "reconnect_max_seconds", repr(float(s.DEFAULT_RECONNECT_MAX)))
    currency = _configured("trading", "account_currency", f"'{s.DEFAULT_ACCOUNT_CURRENCY}'")
    default_pairs = "[" + ", ".join(f"'{p}'" for p in s.DEFAULT_PAIRS) + "]"
    pairs = f"(has(self.pairs) ? self.pairs : {_configured('trading', 'pairs', default_pairs)})"
    return [
        # double(): a number written as an integer may reach an evaluator as an int.
        {"rule": f"double{initial} <= double{maximum}", "message": s.RULE_RECONNECT_MSG},
        {"rule": f"{pairs}.all(p, p.endsWith('/' + {currency}))",
         "message": s.RULE_PAIR_QUOTE_MSG},
    ]


QUANTITY_MAX_LENGTH = 64
# CloudNativePG names the cluster's Services CLUSTER-rw, -ro, -r, -any: DNS labels (≤ 63).
CNPG_CLUSTER_MAX_LENGTH = 59


def quantity_rule() -> dict[str, str]:
    """CEL: a Kubernetes quantity, not negative (an integer, or a string in the syntax of
    resource.Quantity). `matches`, not `isQuantity`: it compiles on every server with CEL."""
    return {
        "rule": f"type(self) == int ? self >= 0 : string(self).matches(r'{s.QUANTITY_PATTERN}')",
        "message": f"must be {s.QUANTITY_HINT}",
    }


def _quantity(description: str) -> dict[str, Any]:
    return {
        "anyOf": [{"type": "integer"}, {"type": "string"}],
        "x-kubernetes-int-or-string": True,
        "maxLength": QUANTITY_MAX_LENGTH,
        "description": description,
        "x-kubernetes-validations": [quantity_rule()],
    }


def _feed_cel(field: str) -> str:
    default = s.REMEDIATION_DEFAULTS["feed"][field]
    return f"duration(has(self.{field}) ? self.{field} : '{default}')"


def remediation_schema() -> dict[str, Any]:
    """spec.remediation: what the auto-pilot may do (runbooks 1, 2, 6); every default filled
    in by the API server, bounds checked before the operator sees a value."""
    d = s.REMEDIATION_DEFAULTS

    def bounded(text: str, low: str, high: str) -> dict[str, Any]:
        return {**_duration(text), "x-kubernetes-validations": [{
            "rule": f"duration(self) >= duration('{low}') && duration(self) <= duration('{high}')",
            "message": f"must be between {low} and {high}"}]}

    return {
        "type": "object",
        "default": {},
        "description": "The auto-pilot (docs/runbooks.md).",
        "properties": {
            "feed": {
                "type": "object",
                "default": {},
                "description": "Runbook 2: market feed down.",
                "properties": {
                    "pauseAfter": {**bounded("Feed down this long: the operator pauses "
                                             "trading.", "5s", "24h"),
                                   "default": d["feed"]["pauseAfter"]},
                    "restartAfter": {**bounded("Feed still down this long: the pod is "
                                               "restarted, once per episode.", "10s", "24h"),
                                     "default": d["feed"]["restartAfter"]},
                    "resumeAfterHealthy": {**bounded("Feed healthy this long: the operator "
                                                     "lifts its own pause (never anyone "
                                                     "else's).", "1s", "24h"),
                                           "default": d["feed"]["resumeAfterHealthy"]},
                },
                "x-kubernetes-validations": [{
                    "rule": f"{_feed_cel('pauseAfter')} <= {_feed_cel('restartAfter')}",
                    "message": s.RULE_FEED_ORDER_MSG}],
            },
            "restarts": {
                "type": "object",
                "default": {},
                "description": "Runbooks 1 and 7: failing health or a crash loop.",
                "properties": {
                    "maxPerHour": {"type": "integer", "minimum": 0, "maximum": 60,
                                   "default": d["restarts"]["maxPerHour"],
                                   "description": "Pod restarts the operator may make in any "
                                   "hour (0: none)."},
                    "unhealthyAfter": {**bounded("/api/v1/health failing this long while the "
                                                 "pod runs: restart.", "10s", "1h"),
                                       "default": d["restarts"]["unhealthyAfter"]},
                },
            },
            "oom": {
                "type": "object",
                "default": {},
                "description": "Runbook 6: OOMKilled.",
                "properties": {
                    "growthFactor": {"type": "number", "minimum": 1.1, "maximum": 4,
                                     "default": d["oom"]["growthFactor"],
                                     "description": "Memory limit × this after an OOM kill."},
                    "ceiling": {**_quantity("Never raise the memory limit above this "
                                            "quantity; at the ceiling, retention settings are "
                                            "reduced instead."),
                                "default": d["oom"]["ceiling"]},
                },
            },
            "staleLock": {
                "type": "object",
                "default": {},
                "description": "Runbook 1: an instance lock left by a pod that is gone.",
                "properties": {"enabled": {
                    "type": "boolean", "default": d["staleLock"]["enabled"],
                    "description": "true: when the bot exits because data/instance.lock is "
                    "held by a pod that is gone, the operator clears the lock (an init "
                    "container that removes it only if no live process holds it) and lets the "
                    "pod start again. false: it only warns."}},
            },
        },
    }


def _resources_map(which: str) -> dict[str, Any]:
    return {
        "type": "object",
        "maxProperties": 16,
        "description": f"{which} of the bot container: resource name (cpu, memory, "
        "ephemeral-storage, …) → quantity (250m, 512Mi, 1Gi, 2).",
        "additionalProperties": _quantity("A quantity (250m, 512Mi, 1Gi, 2)."),
    }


def database_schema() -> dict[str, Any]:
    """spec.database: the embedded PostgreSQL (absent), a URL in a Secret, or CloudNativePG."""
    return {
        "type": "object",
        "description": "Where the bot keeps its trades, orders and thoughts. Absent (or empty):"
        " the bot's embedded PostgreSQL on the data PVC. urlSecretRef: any PostgreSQL, by a URL"
        " in a Secret. cnpg: a CloudNativePG cluster in this namespace. At most one of the two"
        " (docs/operator.md, \"The database\").",
        "properties": {
            "urlSecretRef": _secret_ref(
                "Secret holding a PostgreSQL URL (postgresql://user:password@host:5432/db), "
                "given to the bot as env DATABASE_URL. Canary and live wait until it exists "
                "and holds its key (the live gate); the NetworkPolicy opens the URL's port.",
                key="Key of the URL in the Secret; default DATABASE_URL."),
            "cnpg": {
                "type": "object",
                "required": ["cluster"],
                "description": "A CloudNativePG Cluster in the TradingBot's namespace: the bot "
                "gets DATABASE_URL from the Secret CloudNativePG generates, CLUSTER-app (key "
                "uri), and no pod starts until that Secret exists (DatabaseReady=False, "
                "reason CnpgSecretMissing); the NetworkPolicy lets the bot reach the cluster's"
                f" pods on port {netpol.POSTGRES_PORT} (its Service CLUSTER-rw).",
                "properties": {
                    "cluster": {
                        "type": "string", "minLength": 1, "maxLength": CNPG_CLUSTER_MAX_LENGTH,
                        "pattern": s.NAME_PATTERN,
                        "description": "Name of the CloudNativePG Cluster (metadata.name of "
                        "its postgresql.cnpg.io/v1 Cluster).",
                    },
                },
            },
        },
    }


def name_rule() -> dict[str, str]:
    """CEL on the root (where a rule may read metadata.name): the name becomes the bot's
    Service name and label values."""
    return {
        "rule": f"self.metadata.name.size() <= {s.NAME_MAX_LENGTH} && "
        f"self.metadata.name.matches(r'{s.NAME_PATTERN}')",
        "message": s.RULE_NAME_MSG,
    }


def spec_schema() -> dict[str, Any]:
    return {
        "type": "object",
        "description": "The bot the operator runs: its mode, image, pairs, Secrets, database, "
        "resources, the auto-pilot's policy and overrides of its configuration. The operator "
        "makes every child from it (docs/operator.md).",
        "properties": {
            "mode": {
                "type": "string",
                "enum": list(s.MODES),
                "default": "paper",
                "description": "paper: simulated fills. canary: live orders capped by notional. "
                "live: real orders. canary and live pass the live gate first (runbook 11).",
            },
            "suspended": {"type": "boolean", "default": False,
                          "description": "true: the bot's Deployment is scaled to zero (no pod "
                          "runs); the data volume and every other child are kept. false: it "
                          "runs again."},
            "image": {"type": "string", "default": s.DEFAULT_IMAGE, "minLength": 1,
                      "description": "Container image of the bot (the NovaPulse image; the "
                      "operator runs `novapulse run` in it)."},
            "imagePullPolicy": {
                "type": "string",
                "enum": ["Always", "IfNotPresent", "Never"],
                "default": "IfNotPresent",
                "description": "When the kubelet pulls the image (as a container's "
                "imagePullPolicy).",
            },
            "pairs": {
                "type": "array",
                "minItems": 1,
                "maxItems": MAX_PAIRS,
                "items": {"type": "string", "pattern": PAIR_PATTERN, "maxLength": PAIR_MAX_LENGTH},
                "description": "Overrides config.trading.pairs, e.g. ETH/BTC (WS v2 spelling).",
            },
            "exchange": {
                "type": "object",
                "description": "The exchange the bot trades on and its API credentials (canary "
                "and live need them; a paper pod never gets them).",
                "properties": {
                    "name": {"type": "string", "enum": ["kraken"], "default": "kraken",
                             "description": "The exchange; only kraken is supported."},
                    "credentialsSecretRef": _secret_ref(
                        "Secret with KRAKEN_API_KEY and KRAKEN_API_SECRET; required for canary "
                        "and live, where the live gate checks both keys' strength."
                    ),
                },
            },
            "dashboard": {
                "type": "object",
                "description": "Credentials of the bot's control API and dashboard.",
                "properties": {
                    "secretRef": _secret_ref(
                        "Secret with DASHBOARD_ADMIN_KEY, DASHBOARD_SESSION_SECRET and "
                        "DASHBOARD_ADMIN_PASSWORD_HASH. Paper mode without it: generated."
                    ),
                },
            },
            "database": database_schema(),
            "canary": {
                "type": "object",
                "description": "Canary mode (live orders capped by notional) and whether live "
                "must follow a canary run.",
                "properties": {
                    "maxNotional": {"type": "number", "exclusiveMinimum": True, "minimum": 0,
                                    "description": "Cap on a canary order's notional, in the "
                                    "account currency (→ config.exchange.canary_max_notional)."},
                    "minDuration": _duration(
                        "With requiredBeforeLive: time in canary before live."
                    ),
                    "requiredBeforeLive": {"type": "boolean", "default": False,
                                           "description": "true: live starts only after the "
                                           "bot ran canary for minDuration, counting only time "
                                           "its pod was Ready and trading."},
                },
            },
            "resources": {
                "type": "object",
                "description": "Requests and limits of the bot container, as in a Pod. Absent: "
                "requests cpu 250m, memory 512Mi; limits cpu 1, memory 1Gi. Given, it replaces "
                "that default whole (the auto-pilot may raise the memory limit after an OOM "
                "kill, up to remediation.oom.ceiling).",
                "properties": {"requests": _resources_map("Requests"),
                               "limits": _resources_map("Limits")},
            },
            "storage": {
                "type": "object",
                "description": "The data PVC, NAME-data: the embedded PostgreSQL, models and the "
                "instance lock.",
                "properties": {
                    "size": {**_quantity("Requested size of the data PVC, a quantity such as "
                                         "5Gi."), "default": "5Gi"},
                    "storageClassName": {"type": "string", "maxLength": 253,
                                         "description": "StorageClass of the data PVC; absent: "
                                         "the cluster's default StorageClass."},
                },
            },
            "remediation": remediation_schema(),
            "analytics": {
                "type": "object",
                "required": ["endpoint"],
                "description": "OpenSearch analytics (docs/analytics.md, runbook 12): rendered "
                "into config analytics.enabled/url; never required for trading. The "
                "NetworkPolicy opens the endpoint's port.",
                "properties": {
                    "endpoint": {"type": "string", "maxLength": 2048,
                                 "pattern": s.ANALYTICS_ENDPOINT_PATTERN,
                                 "description": "OpenSearch base URL, e.g. "
                                 "https://opensearch.logging.svc:9200 (no user:password@: "
                                 "it would land in a ConfigMap; use credentialsSecretRef)"},
                    "credentialsSecretRef": _secret_ref(
                        "Secret with OPENSEARCH_USERNAME and OPENSEARCH_PASSWORD (optional "
                        "keys: missing ones leave analytics failing, never the bot)."),
                },
            },
            "telegram": {
                "type": "object",
                "required": ["tokenSecretRef", "chatIds"],
                "description": "Telegram control and notifications (docs/telegram.md): "
                "rendered into config telegram.enabled/allowed_chat_ids.",
                "properties": {
                    "tokenSecretRef": _secret_ref(
                        "Secret holding the bot token (key TELEGRAM_BOT_TOKEN unless `key` "
                        "says otherwise); reaches the pod as env TELEGRAM_BOT_TOKEN only.",
                        key="Key of the token in the Secret; default TELEGRAM_BOT_TOKEN."),
                    "chatIds": {"type": "array", "minItems": 1, "maxItems": 50,
                                "items": {"type": "integer"},
                                "description": "The chats that may command the bot and "
                                "receive its notifications."},
                },
            },
            "network": {
                "type": "object",
                "description": "The bot's NetworkPolicy: port 8090 is open to the operator's "
                "pods and to these peers only.",
                "properties": {
                    "ingressFrom": {
                        "type": "array",
                        "maxItems": 16,
                        "description": "NetworkPolicy peers (namespaceSelector, podSelector, "
                        "ipBlock) that may reach the API and /metrics, e.g. Prometheus' "
                        "namespace or an ingress controller.",
                        "items": {"type": "object",
                                  "x-kubernetes-preserve-unknown-fields": True},
                    },
                },
            },
            "config": config_schema(config_json_schema()),
            "onDelete": {
                "type": "string",
                "enum": list(s.ON_DELETE),
                "default": "closePositions",
                "description": "On deletion the operator first pauses the bot, then: "
                "closePositions: closes every position and lets the TradingBot go once flat "
                "(held while positions stay open). leaveOpen: leaves positions on the exchange.",
            },
        },
        "x-kubernetes-validations": [
            {
                "rule": "self.mode == 'paper' || "
                "(has(self.exchange) && has(self.exchange.credentialsSecretRef))",
                "message": s.RULE_LIVE_EXCHANGE_MSG,
            },
            {
                "rule": "self.mode == 'paper' || "
                "(has(self.dashboard) && has(self.dashboard.secretRef))",
                "message": s.RULE_LIVE_DASHBOARD_MSG,
            },
            {
                "rule": "!has(self.database) || "
                "!(has(self.database.urlSecretRef) && has(self.database.cnpg))",
                "message": s.RULE_ONE_DATABASE_MSG,
            },
            {
                "rule": "!has(self.config) || !has(self.config.database) || "
                "!has(self.config.database.url)",
                "message": s.RULE_NO_DB_URL_MSG,
            },
            {
                "rule": "!has(self.canary) || !has(self.canary.requiredBeforeLive) || "
                "!self.canary.requiredBeforeLive || (has(self.canary.minDuration) && "
                f"!self.canary.minDuration.matches('{s.ZERO_DURATION_PATTERN}'))",
                "message": s.RULE_CANARY_DURATION_MSG,
            },
            *_config_rules(),
        ],
    }


def _described(type_: str, description: str, **more: Any) -> dict[str, Any]:
    return {"type": type_, **more, "description": description}


def status_schema() -> dict[str, Any]:
    condition = {
        "type": "object",
        "required": ["type", "status"],
        "description": "One condition, by Kubernetes conventions.",
        "properties": {
            "type": _described("string", "Ready, ConfigValid, LivePrerequisitesMet, "
                               "DatabaseReady, FeedHealthy, TradingActive, "
                               "ManualInterventionRequired, AnalyticsAvailable."),
            "status": _described("string", "True, False or Unknown.",
                                 enum=["True", "False", "Unknown"]),
            "reason": _described("string", "Why, in one CamelCase word."),
            "message": _described("string", "Why, for a human: what is missing or what the "
                                  "operator did; never a secret value."),
            "observedGeneration": _described("integer", "The metadata.generation this "
                                             "condition was computed for."),
            "lastTransitionTime": _described("string", "When status last changed.",
                                             format="date-time"),
        },
    }
    return {
        "type": "object",
        "description": "What the operator observed and did (it alone writes it): phase, "
        "conditions, the mode that actually runs, the bot's own status mirrored from its API "
        "and the auto-pilot's actions.",
        "x-kubernetes-preserve-unknown-fields": True,
        "properties": {
            "phase": _described("string", "Starting, Running, Suspended, Blocked (waits for "
                                "its prerequisites or its database; no pod), Degraded, "
                                "ConfigInvalid, Failed (the API server refused a child), "
                                "Terminating."),
            "observedGeneration": _described("integer", "The metadata.generation the operator "
                                             "last reconciled."),
            "effectiveMode": _described("string", "The mode that actually runs (paper, canary, "
                                        "live), or null: no pod.", nullable=True),
            "canarySince": _described("string", "When the running canary pod started.",
                                      nullable=True),
            "configHash": _described("string", "Hash of the rendered config "
                                     "(ConfigMap NAME-config); a change rolls the pod."),
            "conditions": {
                "type": "array",
                "description": "Ready, ConfigValid, LivePrerequisitesMet, DatabaseReady and "
                "the auto-pilot's FeedHealthy, TradingActive, ManualInterventionRequired, "
                "AnalyticsAvailable.",
                "items": condition,
                "x-kubernetes-list-type": "map",
                "x-kubernetes-list-map-keys": ["type"],
            },
            "bot": {"type": "object", "x-kubernetes-preserve-unknown-fields": True,
                    "description": "The bot's own status, mirrored from its /api/v1/status "
                    "(mode, paused, pausedBy, openPositions, equity, dailyPnl, …)."},
            "kopf": {"type": "object", "x-kubernetes-preserve-unknown-fields": True,
                     "description": "Kopf's own records: the spec it last handled (to tell "
                     "what changed) and the progress of a handler being retried."},
            "teardownHolds": {
                "type": "array", "items": {"type": "string"},
                "description": "The children (KIND/NAME) that carry the finalizer "
                "teardown.novapulse.io/NAME until the deletion has paused the bot: its "
                "Deployment and the Secret with its admin key. A namespace deletion cannot "
                "take them first."},
            "remediation": {"type": "object", "x-kubernetes-preserve-unknown-fields": True,
                            "description": "The auto-pilot: its last actions (history), a "
                            "pending one, the memory limit it raised, restarts of the last "
                            "hour (docs/runbooks.md)."},
        },
    }


def _column(name: str, path: str, type_: str, priority: int = 0) -> dict[str, Any]:
    column: dict[str, Any] = {"name": name, "type": type_, "jsonPath": path}
    if priority:
        column["priority"] = priority
    return column


def printer_columns() -> list[dict[str, Any]]:
    return [
        _column("Mode", ".spec.mode", "string"),
        _column("Phase", ".status.phase", "string"),
        _column("Feed", '.status.conditions[?(@.type=="FeedHealthy")].status', "string"),
        _column("Paused", ".status.bot.paused", "boolean"),
        _column("Positions", ".status.bot.openPositions", "integer"),
        _column("PnL", ".status.bot.dailyPnl", "number"),
        _column("Running", ".status.effectiveMode", "string", priority=1),
        _column("Age", ".metadata.creationTimestamp", "date"),
    ]


def build_crd() -> dict[str, Any]:
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{s.PLURAL}.{s.GROUP}"},
        "spec": {
            "group": s.GROUP,
            "scope": "Namespaced",
            "names": {
                "plural": s.PLURAL,
                "singular": "tradingbot",
                "kind": s.KIND,
                "listKind": f"{s.KIND}List",
                "shortNames": ["tb"],
                "categories": ["novapulse"],
            },
            "versions": [
                {
                    "name": s.VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": printer_columns(),
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "description": "A NovaPulse trading bot run by the operator. "
                            "Its name must be a DNS-1035 label of at most 63 characters (no "
                            "dots): it names the bot's Service and children.",
                            "required": ["spec"],
                            "properties": {
                                "apiVersion": {"type": "string", "description":
                                               f"{s.API_VERSION}"},
                                "kind": {"type": "string", "description": s.KIND},
                                "metadata": {"type": "object"},
                                "spec": spec_schema(),
                                "status": status_schema(),
                            },
                            "x-kubernetes-validations": [name_rule()],
                        }
                    },
                }
            ],
        },
    }


def render_crd_yaml() -> str:
    header = "# Generated by `python -m novapulse_operator.crd` (make crds). Do not edit.\n"
    return header + yaml.safe_dump(build_crd(), sort_keys=False, width=100)


def main() -> None:
    sys.stdout.write(render_crd_yaml())


if __name__ == "__main__":
    main()
