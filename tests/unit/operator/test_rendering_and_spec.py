"""Spec parsing, config rendering and the schema conversion (pure)."""

from __future__ import annotations

import pytest
import yaml

from novapulse_operator import botapi, rendering
from novapulse_operator.schema import structural
from novapulse_operator.spec import SecretRef, parse_duration, parse_spec


def test_defaults_when_the_server_did_not_apply_them() -> None:
    spec = parse_spec({})
    assert (spec.mode, spec.suspended, spec.on_delete) == ("paper", False, "closePositions")
    assert spec.resources["limits"]["memory"] == "1Gi"


@pytest.mark.parametrize(("text", "seconds"), [("24h", 86400), ("1h30m", 5400), ("45s", 45)])
def test_durations(text: str, seconds: int) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "1d", "soon"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)


def test_rendered_config_merges_spec_and_operator_fields() -> None:
    spec = parse_spec({"pairs": ["LTC/XBT"], "canary": {"maxNotional": 25},
                       "config": {"risk": {"max_open_positions": 2},
                                  "trading": {"mode": "live", "warmup_bars": 300}}})
    tree = yaml.safe_load(rendering.render(spec, "paper", "ns/bot").text)
    assert tree["trading"] == {"mode": "paper", "pairs": ["LTC/XBT"], "warmup_bars": 300}
    assert tree["risk"] == {"max_open_positions": 2}
    assert tree["exchange"] == {"canary_max_notional": 25.0}
    assert tree["instance"] == {"data_dir": "/data", "identity": "ns/bot"}
    assert tree["dashboard"]["port"] == 8090


def test_validation_uses_the_bot_model_with_field_paths() -> None:
    spec = parse_spec({"config": {"risk": {"stop_loss_pct": 40, "take_profit_pct": 5}}})
    errors = rendering.validate(spec, "paper", "ns/bot")
    assert len(errors) == 1 and "take_profit_pct" in errors[0]
    assert rendering.validate(parse_spec({}), "paper", "ns/bot") == []


def test_structural_conversion() -> None:
    node = {"anyOf": [{"type": "string"}, {"type": "null"}], "default": None, "title": "Url"}
    assert structural(node, {}) == {"type": "string", "nullable": True}
    assert structural({"const": False, "type": "boolean"}, {}) == {
        "enum": [False], "type": "boolean"}
    assert structural({"type": "number", "exclusiveMinimum": 0}, {}) == {
        "type": "number", "minimum": 0, "exclusiveMinimum": True}
    defs = {"A": {"type": "object", "properties": {"x": {"type": "integer"}},
                  "additionalProperties": False}}
    assert structural({"$ref": "#/$defs/A"}, defs) == {
        "type": "object", "properties": {"x": {"type": "integer"}}}


def test_bot_endpoint_annotation_only_with_the_flag() -> None:
    override = {botapi.ENDPOINT_ANNOTATION: "http://x:1/"}
    assert botapi.endpoint_for("b", "ns", {}) == "http://b.ns.svc:8090"
    assert botapi.endpoint_for("b", "ns", override) == "http://b.ns.svc:8090"
    assert botapi.ignored_override(override, allow_override=False) == "http://x:1/"
    assert botapi.endpoint_for("b", "ns", override, allow_override=True) == "http://x:1"
    assert botapi.ignored_override(override, allow_override=True) is None


@pytest.mark.parametrize(("database", "secret", "cluster"), [
    ({}, None, None),
    ({"urlSecretRef": {"name": "db"}}, "db", None),
    ({"cnpg": {"cluster": "pg-main"}}, None, "pg-main"),
    ({"cnpg": {}}, None, None),
])
def test_the_database_choice(database: dict[str, object], secret: str | None,
                             cluster: str | None) -> None:
    spec = parse_spec({"database": database})
    assert spec.database_secret == (SecretRef(secret) if secret else None)
    assert spec.database_cnpg == cluster


def test_the_database_choice_never_reaches_the_config() -> None:
    """DATABASE_URL is the pod's env (secretKeyRef): the rendered config names no database."""
    spec = parse_spec({"database": {"cnpg": {"cluster": "pg"}}})
    assert "database" not in yaml.safe_load(rendering.render(spec, "paper", "ns/bot").text)
