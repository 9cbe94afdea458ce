"""The TradingBot CustomResourceDefinition, built from code (pure) and written to crds/.

`python -m novapulse_operator.crd > crds/tradingbot.yaml` (or `make crds`) regenerates it;
a unit test fails when the committed file is stale.
"""

from __future__ import annotations

import sys
from typing import Any

import yaml

from novapulse.config import config_json_schema
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


def _quantity() -> dict[str, Any]:
    return {
        "anyOf": [{"type": "integer"}, {"type": "string"}],
        "x-kubernetes-int-or-string": True,
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
                "maxItems": 50,
                "items": {"type": "string", "pattern": "^[A-Z0-9]{2,10}/[A-Z0-9]{2,10}$"},
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
                    "minDuration": {
                        "type": "string",
                        "pattern": "^([0-9]+h)?([0-9]+m)?([0-9]+s)?$",
                        "description": "With requiredBeforeLive: time in canary before live.",
                    },
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
            "remediation": {
                "type": "object",
                "description": "Automatic runbooks (see docs/operator.md).",
                "x-kubernetes-preserve-unknown-fields": True,
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
