"""The TradingBot CustomResourceDefinition, built from code (pure) and written to crds/.

`python -m novapulse_operator.crd > crds/tradingbot.yaml` (or `make crds`) regenerates it;
a unit test fails when the committed file is stale.
"""

from __future__ import annotations

import sys
from typing import Any

import yaml

from novapulse.config import MAX_PAIRS, PAIR_MAX_LENGTH, PAIR_PATTERN, config_json_schema
from novapulse_operator import spec as s
from novapulse_operator.schema import config_schema

_SECRET_REF = {
    "type": "object",
    "required": ["name"],
    "properties": {
        "name": {"type": "string", "minLength": 1, "maxLength": 253},
        "key": {"type": "string", "minLength": 1},
    },
}


def _secret_ref(description: str) -> dict[str, Any]:
    return {**_SECRET_REF, "description": description}


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


def _quantity() -> dict[str, Any]:
    return {
        "anyOf": [{"type": "integer"}, {"type": "string"}],
        "x-kubernetes-int-or-string": True,
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
                    "ceiling": {**_quantity(), "default": d["oom"]["ceiling"],
                                "description": "Never raise the memory limit above this; "
                                "at the ceiling, retention settings are reduced instead."},
                },
            },
            "staleLock": {
                "type": "object",
                "default": {},
                "description": "Runbook 1: an instance lock left by a pod that is gone.",
                "properties": {"enabled": {"type": "boolean",
                                           "default": d["staleLock"]["enabled"]}},
            },
        },
    }


def spec_schema() -> dict[str, Any]:
    resources_map = {"type": "object", "additionalProperties": _quantity()}
    return {
        "type": "object",
        "properties": {
            "mode": {
                "type": "string",
                "enum": list(s.MODES),
                "default": "paper",
                "description": "paper: simulated fills. canary: live orders capped by notional. "
                "live: real orders. canary and live pass the live gate first (runbook 11).",
            },
            "suspended": {"type": "boolean", "default": False},
            "image": {"type": "string", "default": s.DEFAULT_IMAGE, "minLength": 1},
            "imagePullPolicy": {
                "type": "string",
                "enum": ["Always", "IfNotPresent", "Never"],
                "default": "IfNotPresent",
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
                "properties": {
                    "name": {"type": "string", "enum": ["kraken"], "default": "kraken"},
                    "credentialsSecretRef": _secret_ref(
                        "Secret with KRAKEN_API_KEY and KRAKEN_API_SECRET."
                    ),
                },
            },
            "dashboard": {
                "type": "object",
                "properties": {
                    "secretRef": _secret_ref(
                        "Secret with DASHBOARD_ADMIN_KEY, DASHBOARD_SESSION_SECRET and "
                        "DASHBOARD_ADMIN_PASSWORD_HASH. Paper mode without it: generated."
                    ),
                },
            },
            "database": {
                "type": "object",
                "description": "Absent: the bot runs its embedded PostgreSQL on the data PVC.",
                "properties": {
                    "urlSecretRef": _secret_ref("Secret holding a PostgreSQL URL (key: "
                                                "`key`, default DATABASE_URL)."),
                },
            },
            "canary": {
                "type": "object",
                "properties": {
                    "maxNotional": {"type": "number", "exclusiveMinimum": True, "minimum": 0},
                    "minDuration": _duration(
                        "With requiredBeforeLive: time in canary before live."
                    ),
                    "requiredBeforeLive": {"type": "boolean", "default": False},
                },
            },
            "resources": {
                "type": "object",
                "properties": {"requests": resources_map, "limits": resources_map},
            },
            "storage": {
                "type": "object",
                "properties": {
                    "size": {**_quantity(), "default": "5Gi"},
                    "storageClassName": {"type": "string"},
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
                        "says otherwise); reaches the pod as env TELEGRAM_BOT_TOKEN only."),
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
                "rule": "!has(self.config) || !has(self.config.database) || "
                "!has(self.config.database.url)",
                "message": s.RULE_NO_DB_URL_MSG,
            },
            *_config_rules(),
        ],
    }


def status_schema() -> dict[str, Any]:
    condition = {
        "type": "object",
        "required": ["type", "status"],
        "properties": {
            "type": {"type": "string"},
            "status": {"type": "string", "enum": ["True", "False", "Unknown"]},
            "reason": {"type": "string"},
            "message": {"type": "string"},
            "observedGeneration": {"type": "integer"},
            "lastTransitionTime": {"type": "string", "format": "date-time"},
        },
    }
    return {
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": True,
        "properties": {
            "phase": {"type": "string"},
            "observedGeneration": {"type": "integer"},
            "effectiveMode": {"type": "string", "nullable": True},
            "canarySince": {"type": "string", "nullable": True},
            "configHash": {"type": "string"},
            "conditions": {
                "type": "array",
                "items": condition,
                "x-kubernetes-list-type": "map",
                "x-kubernetes-list-map-keys": ["type"],
            },
            "bot": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
            "remediation": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
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
                            "description": "A NovaPulse trading bot run by the operator.",
                            "required": ["spec"],
                            "properties": {
                                "apiVersion": {"type": "string"},
                                "kind": {"type": "string"},
                                "metadata": {"type": "object"},
                                "spec": spec_schema(),
                                "status": status_schema(),
                            },
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
