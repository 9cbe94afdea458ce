"""The bot's config file as the operator renders it into the ConfigMap (pure).

Only overrides are rendered — the user's `spec.config` plus what the operator owns (mode,
pairs, paths, port) — so the bot's own defaults stay the bot's. Validated with the bot's
model before anything ships: a bad config never reaches a pod.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import yaml

from novapulse.config import ConfigError, build_config, deep_merge
from novapulse_operator.spec import BOT_PORT, BotSpec, Mode

CONFIG_FILE = "config.yaml"
CONFIG_DIR = "/etc/novapulse"
DATA_DIR = "/data"


@dataclass(frozen=True)
class RenderedConfig:
    text: str
    hash: str


def operator_overrides(spec: BotSpec, mode: Mode, identity: str) -> dict[str, Any]:
    trading: dict[str, Any] = {"mode": mode}
    if spec.pairs:
        trading["pairs"] = list(spec.pairs)
    tree: dict[str, Any] = {
        "trading": trading,
        "dashboard": {"host": "0.0.0.0", "port": BOT_PORT},
        "instance": {"data_dir": DATA_DIR, "identity": identity},
    }
    if spec.canary.max_notional is not None:
        tree["exchange"] = {"canary_max_notional": spec.canary.max_notional}
    if spec.analytics is not None:
        tree["analytics"] = {"enabled": True, "url": spec.analytics.endpoint}
    if spec.telegram is not None:
        tree["telegram"] = {"enabled": True, "allowed_chat_ids": list(spec.telegram.chat_ids)}
    if "model_path" not in (spec.config.get("ml") or {}):
        tree["ml"] = {"model_path": f"{DATA_DIR}/models/trade_predictor.tflite"}
    return tree


def reduced_retention(tree: dict[str, Any], steps: Mapping[str, int]) -> dict[str, Any]:
    """Runbook 6: each retention setting at most its step's value (never raised)."""
    current = build_config(tree, source="spec.config")
    out: dict[str, Any] = {}
    for path, target in steps.items():
        section, name = path.split(".")
        value = getattr(getattr(current, section), name)
        out.setdefault(section, {})[name] = min(int(value), target)
    return out


def config_tree(spec: BotSpec, mode: Mode, identity: str,
                retention: Mapping[str, int] | None = None) -> dict[str, Any]:
    tree = deep_merge(dict(spec.config), operator_overrides(spec, mode, identity))
    if retention:
        # an invalid config is reported by validate(); then there is nothing to reduce
        with contextlib.suppress(ConfigError):
            tree = deep_merge(tree, reduced_retention(tree, retention))
    return tree


def validate(spec: BotSpec, mode: Mode, identity: str) -> list[str]:
    """Every problem of the config the bot would get, as 'field.path: message'."""
    try:
        build_config(config_tree(spec, mode, identity), source="spec.config")
    except ConfigError as exc:
        return list(exc.errors)
    return []


def render(spec: BotSpec, mode: Mode, identity: str,
           retention: Mapping[str, int] | None = None) -> RenderedConfig:
    text = yaml.safe_dump(config_tree(spec, mode, identity, retention), sort_keys=True)
    return RenderedConfig(text=text, hash=hashlib.sha256(text.encode()).hexdigest()[:16])
