"""spec.analytics (OpenSearch) and spec.telegram as the bot gets them: config, env, egress
(pure). Both are soft dependencies: nothing of them may keep the bot from starting."""

from __future__ import annotations

from typing import Any

import kubernetes_validate
import pytest
import yaml

from novapulse.config import build_config
from novapulse_operator import manifests, netpol, rendering
from novapulse_operator.crd import build_crd
from novapulse_operator.manifests import Owner
from novapulse_operator.spec import RULE_ANALYTICS_ENDPOINT_MSG, parse_spec, spec_rule_violations

OWNER = Owner(name="bot", namespace="trading", uid="u1")
SPEC: dict[str, Any] = {
    "mode": "paper", "pairs": ["ETH/BTC"],
    "analytics": {"endpoint": "http://opensearch.logging.svc:9200",
                  "credentialsSecretRef": {"name": "os-creds"}},
    "telegram": {"tokenSecretRef": {"name": "tg"}, "chatIds": [12345, -1001]},
}


def test_rendered_into_the_config_the_bot_validates() -> None:
    spec = parse_spec(SPEC)
    rendered = rendering.render(spec, "paper", "trading/bot")
    tree = yaml.safe_load(rendered.text)
    assert tree["analytics"] == {"enabled": True, "url": "http://opensearch.logging.svc:9200"}
    assert tree["telegram"] == {"enabled": True, "allowed_chat_ids": [12345, -1001]}
    assert rendering.validate(spec, "paper", "trading/bot") == []
    config = build_config(tree, source="test")
    assert config.analytics.enabled and config.telegram.allowed_chat_ids == [12345, -1001]


def test_secrets_reach_the_pod_by_reference_only_and_optional() -> None:
    spec = parse_spec({**SPEC, "telegram": {"tokenSecretRef": {"name": "tg", "key": "token"},
                                            "chatIds": [1]}})
    env = {e["name"]: e for e in manifests.env(OWNER, spec, "paper")}
    for name in ("OPENSEARCH_USERNAME", "OPENSEARCH_PASSWORD"):
        assert env[name]["valueFrom"]["secretKeyRef"] == {"name": "os-creds", "key": name,
                                                          "optional": True}
    assert env["TELEGRAM_BOT_TOKEN"]["valueFrom"]["secretKeyRef"] == {
        "name": "tg", "key": "token", "optional": True}
    config_map = manifests.config_map(OWNER, rendering.render(spec, "paper", "trading/bot"))
    assert "os-creds" not in str(config_map) and "tg" not in config_map["data"]["config.yaml"]


def test_without_them_nothing_is_added() -> None:
    spec = parse_spec({"mode": "paper"})
    names = {e["name"] for e in manifests.env(OWNER, spec, "paper")}
    assert not names & {"OPENSEARCH_USERNAME", "OPENSEARCH_PASSWORD", "TELEGRAM_BOT_TOKEN"}
    tree = yaml.safe_load(rendering.render(spec, "paper", "trading/bot").text)
    assert "analytics" not in tree and "telegram" not in tree


def _egress(endpoint: str) -> list[dict[str, Any]]:
    spec = parse_spec({**SPEC, "analytics": {"endpoint": endpoint}})
    built = manifests.network_policy(OWNER, spec, netpol.OperatorPeer(), None)
    kubernetes_validate.validate(built, "1.33", strict=True)
    return list(built["spec"]["egress"][2:])  # after DNS and HTTPS


@pytest.mark.parametrize(("endpoint", "rules"), [
    ("http://opensearch.logging.svc:9200", [
        {"ports": [{"protocol": "TCP", "port": 9200}],
         "to": [{"namespaceSelector": {"matchLabels": {
             "kubernetes.io/metadata.name": "logging"}}}]}]),
    ("http://opensearch", [  # a Service beside the bot, the client's default port
        {"ports": [{"protocol": "TCP", "port": 9200}],
         "to": [{"namespaceSelector": {"matchLabels": {
             "kubernetes.io/metadata.name": "trading"}}}]}]),
    ("https://search.example.com:9243", [{"ports": [{"protocol": "TCP", "port": 9243}]}]),
    ("https://search.example.com", []),  # 443: the HTTPS rule has it already
])
def test_egress_opens_opensearch_port(endpoint: str, rules: list[dict[str, Any]]) -> None:
    assert _egress(endpoint) == rules


@pytest.mark.parametrize(("endpoint", "ok"), [
    ("https://os:9200", True), ("http://os.logging.svc:9200/prefix", True),
    ("https://admin:pw@os:9200", False), ("ftp://os", False), ("os:9200", False),
])
def test_endpoint_rule_in_the_crd_and_its_mirror(endpoint: str, ok: bool) -> None:
    import re
    schema = build_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    pattern = schema["properties"]["spec"]["properties"]["analytics"]["properties"][
        "endpoint"]["pattern"]
    assert (re.fullmatch(pattern, endpoint) is not None) is ok
    errors = spec_rule_violations({"mode": "paper", "analytics": {"endpoint": endpoint}})
    assert (RULE_ANALYTICS_ENDPOINT_MSG not in errors) is ok
