"""The CRD: fresh, a valid CRD, and a schema that accepts the examples and refuses bad CRs.

The structural schema is checked with jsonschema (draft 4 = OpenAPI 3.0 semantics) in strict
mode (unknown fields refused, as `kubectl apply` does by default). The CEL rules are
evaluated with cel-python, and the same logic in Python (`spec_rule_violations`) is checked
to agree with them.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import celpy
import jsonschema
import kubernetes_validate
import pytest
import yaml

from novapulse.config import ConfigError, build_config
from novapulse_operator.crd import build_crd, name_rule, quantity_rule, render_crd_yaml
from novapulse_operator.spec import (
    RULE_CANARY_DURATION_MSG,
    RULE_NAME_MSG,
    RULE_ONE_DATABASE_MSG,
    name_violations,
    spec_rule_violations,
)

ROOT = Path(__file__).resolve().parents[3]
EXAMPLES = sorted((ROOT / "examples").glob("tradingbot-*.yaml"))


def _crd_version() -> dict[str, Any]:
    return dict(build_crd()["spec"]["versions"][0])


def _strict(node: Any) -> Any:
    """OpenAPI v3.0 → JSON schema draft 4: nullable, and unknown fields refused."""
    if isinstance(node, dict):
        out = {k: _strict(v) for k, v in node.items() if not k.startswith("x-kubernetes")}
        if node.get("nullable"):
            out["type"] = [node["type"], "null"]
        if "properties" in node and not node.get("x-kubernetes-preserve-unknown-fields"):
            out.setdefault("additionalProperties", False)
        return out
    if isinstance(node, list):
        return [_strict(v) for v in node]
    return node


def _defaulted(spec: dict[str, Any]) -> dict[str, Any]:
    """What the API server's defaulting does before CEL runs (top-level defaults only)."""
    props = _crd_version()["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]
    return {**{k: v["default"] for k, v in props.items() if "default" in v}, **spec}


def schema_errors(obj: dict[str, Any]) -> list[str]:
    schema = _strict(_crd_version()["schema"]["openAPIV3Schema"])
    validator = jsonschema.Draft4Validator(schema)
    return [f"{'.'.join(map(str, e.path))}: {e.message}" for e in validator.iter_errors(obj)]


def cel_errors(spec: dict[str, Any]) -> list[str]:
    rules = _crd_version()["schema"]["openAPIV3Schema"]["properties"]["spec"][
        "x-kubernetes-validations"]
    env = celpy.Environment()
    activation = {"self": celpy.json_to_cel(_defaulted(spec))}
    return [r["message"] for r in rules
            if not env.program(env.compile(r["rule"])).evaluate(activation)]


def test_committed_crd_is_fresh() -> None:
    committed = (ROOT / "crds" / "tradingbot.yaml").read_text()
    assert committed == render_crd_yaml(), "crds/ is stale: run `make crds`"


def test_crd_is_a_valid_apiextensions_v1_object() -> None:
    kubernetes_validate.validate(build_crd(), "1.33", strict=True)


def test_crd_names_and_columns() -> None:
    crd = build_crd()
    names = crd["spec"]["names"]
    assert crd["metadata"]["name"] == "tradingbots.novapulse.io"
    assert (names["kind"], names["shortNames"], names["categories"]) == (
        "TradingBot", ["tb"], ["novapulse"])
    version = _crd_version()
    assert version["name"] == "v1alpha1" and version["subresources"] == {"status": {}}
    shown = [c["name"] for c in version["additionalPrinterColumns"] if "priority" not in c]
    assert shown == ["Mode", "Phase", "Feed", "Paused", "Positions", "PnL", "Age"]


def test_config_schema_comes_from_the_bot_model() -> None:
    config = _crd_version()["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"][
        "config"]
    risk = config["properties"]["risk"]["properties"]["risk_per_trade_pct"]
    assert (risk["minimum"], risk["exclusiveMinimum"], risk["maximum"]) == (0, True, 10)
    assert config["properties"]["trading"]["properties"]["mode"]["enum"] == [
        "paper", "canary", "live"]


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_examples_are_accepted(path: Path) -> None:
    obj = yaml.safe_load(path.read_text())
    assert schema_errors(obj) == []
    assert cel_errors(obj["spec"]) == []
    assert spec_rule_violations(_defaulted(obj["spec"])) == []


def _paper() -> dict[str, Any]:
    return dict(yaml.safe_load((ROOT / "examples" / "tradingbot-paper.yaml").read_text()))


def _mutated(change: dict[str, Any]) -> dict[str, Any]:
    obj = copy.deepcopy(_paper())
    obj["spec"].update(change)
    return obj


@pytest.mark.parametrize(("change", "expected"), [
    ({"mode": "yolo"}, "spec.mode: 'yolo' is not one of"),
    ({"onDelete": "forget"}, "spec.onDelete: 'forget' is not one of"),
    ({"config": {"risk": {"risk_per_trade_pct": 25}}},
     "spec.config.risk.risk_per_trade_pct: 25 is greater than the maximum of 10"),
    ({"config": {"risk": {"risk_per_trade_pct": 0}}},
     "spec.config.risk.risk_per_trade_pct: 0 is less than or equal to the minimum of 0"),
    ({"config": {"trading": {"timeframe_minutes": 7}}}, "timeframe_minutes: 7 is not one of"),
    ({"config": {"riks": {}}}, "Additional properties are not allowed ('riks'"),
    ({"pairs": ["eth-btc"]}, "spec.pairs.0: 'eth-btc' does not match"),
    ({"canary": {"minDuration": "one day"}}, "spec.canary.minDuration: 'one day' does not"),
])
def test_schema_rejects(change: dict[str, Any], expected: str) -> None:
    errors = schema_errors(_mutated(change))
    assert any(e.startswith(expected) or expected in e for e in errors), errors


@pytest.mark.parametrize(("spec", "expected"), [
    ({"mode": "live"}, ["canary and live modes need spec.exchange.credentialsSecretRef",
                        "canary and live modes need spec.dashboard.secretRef"]),
    ({"mode": "canary", "exchange": {"credentialsSecretRef": {"name": "k"}}},
     ["canary and live modes need spec.dashboard.secretRef"]),
    ({"mode": "live", "exchange": {"credentialsSecretRef": {"name": "k"}},
      "dashboard": {"secretRef": {"name": "d"}}}, []),
    ({"mode": "paper"}, []),
    ({}, []),
    ({"config": {"database": {"url": "postgresql://u:p@db/x"}}},
     ["spec.config.database.url is not allowed (it would land in a ConfigMap): "
      "use spec.database.urlSecretRef"]),
    ({"database": {"urlSecretRef": {"name": "db"}, "cnpg": {"cluster": "pg"}}},
     [RULE_ONE_DATABASE_MSG]),
    ({"database": {"cnpg": {"cluster": "pg"}}}, []),
    ({"database": {"urlSecretRef": {"name": "db"}}}, []),
    ({"canary": {"requiredBeforeLive": True}}, [RULE_CANARY_DURATION_MSG]),
    ({"canary": {"requiredBeforeLive": True, "minDuration": "0m0s"}},
     [RULE_CANARY_DURATION_MSG]),
    ({"canary": {"requiredBeforeLive": True, "minDuration": "10s"}}, []),
    ({"canary": {"requiredBeforeLive": False}}, []),
    ({"canary": {"minDuration": "0s"}}, []),
])
def test_cel_rules_and_their_python_mirror_agree(spec: dict[str, Any],
                                                 expected: list[str]) -> None:
    assert cel_errors(spec) == expected
    assert spec_rule_violations(_defaulted(spec)) == expected


@pytest.mark.parametrize("pair", ["ETH/BTC", "XDG/BTC", "nonsense", "eth/btc", "ETH-BTC",
                                  "ETHBTC", "E/BTC", "ETH/BTC/X", "TOOLONGNAME1/BTC"])
def test_crd_pairs_and_the_bot_model_refuse_the_same_pairs(pair: str) -> None:
    crd_accepts = not schema_errors(_mutated({"pairs": [pair]}))
    try:
        build_config({"trading": {"pairs": [pair]}})
        model_accepts = True
    except ConfigError as exc:
        model_accepts = not any(e.startswith("trading.pairs.0:") for e in exc.errors)
    assert crd_accepts == model_accepts
    assert crd_accepts == (pair in ("ETH/BTC", "XDG/BTC"))


@pytest.mark.parametrize(("duration", "accepted"), [
    ("24h", True), ("1h30m", True), ("45s", True), ("", False), ("one day", False),
    ("1d", False), ("h", False)])
def test_durations_must_be_non_empty_and_well_formed(duration: str, accepted: bool) -> None:
    errors = schema_errors(_mutated({"canary": {"minDuration": duration}}))
    assert (errors == []) == accepted, errors


def test_every_duration_field_is_checked() -> None:
    """Any spec field named like a duration carries the duration pattern and minLength 1."""
    found = []

    def walk(node: dict[str, Any], path: str) -> None:
        for name, child in node.get("properties", {}).items():
            if "duration" in name.lower() or "After" in name:
                found.append(path + name)
                assert child.get("minLength") == 1 and child.get("pattern"), path + name
            walk(child, f"{path}{name}.")

    walk(_crd_version()["schema"]["openAPIV3Schema"]["properties"]["spec"], "spec.")
    assert found == ["spec.canary.minDuration", "spec.remediation.feed.pauseAfter",
                     "spec.remediation.feed.restartAfter",
                     "spec.remediation.feed.resumeAfterHealthy",
                     "spec.remediation.restarts.unhealthyAfter"]


RECONNECT = ("spec.config.feed.reconnect_initial_seconds must not exceed reconnect_max_seconds "
             "(defaults 1 and 60)")
QUOTE = ("every pair (spec.pairs, else spec.config.trading.pairs) must be quoted in the account "
         "currency spec.config.trading.account_currency (default BTC): the bot does not "
         "convert between currencies")


@pytest.mark.parametrize(("spec", "expected"), [
    ({"config": {"feed": {"reconnect_initial_seconds": 30, "reconnect_max_seconds": 10}}},
     [RECONNECT]),
    ({"config": {"feed": {"reconnect_max_seconds": 0.5}}}, [RECONNECT]),
    ({"config": {"feed": {"reconnect_initial_seconds": 2.5, "reconnect_max_seconds": 2.5}}}, []),
    ({"pairs": ["ETH/BTC", "ETH/USD"]}, [QUOTE]),
    ({"config": {"trading": {"pairs": ["ETH/EUR"]}}}, [QUOTE]),
    ({"config": {"trading": {"account_currency": "USD"}}}, [QUOTE]),
    ({"pairs": ["ETH/USD"], "config": {"trading": {"account_currency": "USD"}}}, []),
])
def test_config_cross_field_rules_in_cel_match_the_bot_model(spec: dict[str, Any],
                                                             expected: list[str]) -> None:
    assert cel_errors(spec) == expected
    assert spec_rule_violations(_defaulted(spec)) == expected
    bot_view = copy.deepcopy(spec.get("config", {}))
    if "pairs" in spec:
        bot_view.setdefault("trading", {})["pairs"] = spec["pairs"]
    try:
        build_config(bot_view)
        model_refuses = False
    except ConfigError:
        model_refuses = True
    assert model_refuses == bool(expected)


def _cel(rule: str, value: Any) -> bool:
    env = celpy.Environment()
    return bool(env.program(env.compile(rule)).evaluate({"self": celpy.json_to_cel(value)}))


@pytest.mark.parametrize(("name", "accepted"), [
    ("paper-eth", True), ("a" * 63, True), ("b0t", True), ("paper.eth", False),
    ("a" * 64, False), ("bot-" + "x" * 66, False), ("9lives", False), ("bot-", False),
    ("Paper", False), ("paper_eth", False)])
def test_the_name_rule_and_its_python_mirror_agree(name: str, accepted: bool) -> None:
    """The name becomes a Service name (DNS-1035 label) and label values (≤ 63)."""
    rule = name_rule()
    assert _cel(rule["rule"], {"metadata": {"name": name}}) == accepted
    assert name_violations(name) == ([] if accepted else [RULE_NAME_MSG])
    assert rule["message"] == RULE_NAME_MSG


def _quantity_fields(node: dict[str, Any], path: str) -> list[str]:
    """Every int-or-string field below `node` (the quantities), maps' values as `path.*`."""
    found = [path] if node.get("x-kubernetes-int-or-string") else []
    for name, child in (node.get("properties") or {}).items():
        if name != "config":
            found += _quantity_fields(child, f"{path}.{name}")
    extra = node.get("additionalProperties")
    if isinstance(extra, dict):
        found += _quantity_fields(extra, f"{path}.*")
    return found


def test_every_quantity_field_carries_the_quantity_rule() -> None:
    spec = _crd_version()["schema"]["openAPIV3Schema"]["properties"]["spec"]
    fields = _quantity_fields(spec, "spec")
    assert fields == ["spec.resources.requests.*", "spec.resources.limits.*",
                      "spec.storage.size", "spec.remediation.oom.ceiling"]

    def node(path: str) -> dict[str, Any]:
        here = spec
        for part in path.split(".")[1:]:
            here = here["additionalProperties"] if part == "*" else here["properties"][part]
        return here

    for path in fields:
        assert node(path)["x-kubernetes-validations"] == [quantity_rule()], path


@pytest.mark.parametrize(("value", "accepted"), [
    ("5Gi", True), ("512Mi", True), ("250m", True), ("1.5Gi", True), ("2e9", True),
    (".5", True), ("1", True), (2, True), (0, True), ("huge", False), ("lots", False),
    ("-5Gi", False), (-1, False), ("1 core", False), ("4 GB", False), ("5gi", False),
    ("", False)])
def test_the_quantity_rule(value: str | int, accepted: bool) -> None:
    assert _cel(quantity_rule()["rule"], value) == accepted


def _undescribed(node: dict[str, Any], path: str) -> list[str]:
    missing = [] if node.get("description") else [path]
    for name, child in (node.get("properties") or {}).items():
        if path == "spec" and name == "config":
            continue  # the bot's own model: described where the model describes
        missing += _undescribed(child, f"{path}.{name}")
    items = node.get("items")
    if isinstance(items, dict) and items.get("properties"):
        missing += _undescribed(items, f"{path}[]")
    return missing


def test_kubectl_explain_has_something_to_say_about_every_field() -> None:
    root = _crd_version()["schema"]["openAPIV3Schema"]
    assert root["description"]
    assert _undescribed(root["properties"]["spec"], "spec") == []
    assert _undescribed(root["properties"]["status"], "status") == []
    assert root["properties"]["spec"]["properties"]["config"]["description"]
