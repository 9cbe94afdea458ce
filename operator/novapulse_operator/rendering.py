"""The bot's config file as the operator renders it into the ConfigMap (pure).

Only overrides are rendered — the user's `spec.config` plus what the operator owns (mode,
pairs, paths, port) — so the bot's own defaults stay the bot's. Validated with the bot's
model before anything ships: a bad config never reaches a pod.
"""

from __future__ import annotations

import hashlib
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
    if "model_path" not in (spec.config.get("ml") or {}):
        tree["ml"] = {"model_path": f"{DATA_DIR}/models/trade_predictor.tflite"}
    return tree


def config_tree(spec: BotSpec, mode: Mode, identity: str) -> dict[str, Any]:
    return deep_merge(dict(spec.config), operator_overrides(spec, mode, identity))


def validate(spec: BotSpec, mode: Mode, identity: str) -> list[str]:
    """Every problem of the config the bot would get, as 'field.path: message'."""
    try:
        build_config(config_tree(spec, mode, identity), source="spec.config")
    except ConfigError as exc:
        return list(exc.errors)
    return []


def render(spec: BotSpec, mode: Mode, identity: str) -> RenderedConfig:
    text = yaml.safe_dump(config_tree(spec, mode, identity), sort_keys=True)
    return RenderedConfig(text=text, hash=hashlib.sha256(text.encode()).hexdigest()[:16])
