"""Builders of the children: pure functions, one test group per child."""

from __future__ import annotations

import json
from typing import Any

import bcrypt
import kubernetes_validate
import pytest

from novapulse_operator import generated, manifests, rendering
from novapulse_operator.manifests import Owner
from novapulse_operator.spec import BotSpec, Mode, parse_spec

OWNER = Owner("bot1", "trading", "uid-1")
LIVE_SPEC = parse_spec({
    "mode": "live", "exchange": {"credentialsSecretRef": {"name": "kraken"}},
    "dashboard": {"secretRef": {"name": "dash"}},
    "database": {"urlSecretRef": {"name": "db"}},
})


def build(spec: BotSpec | None = None, mode: Mode | None = "paper") -> dict[str, dict[str, Any]]:
    spec = spec or parse_spec({})
    rendered = rendering.render(spec, mode or "paper", "trading/bot1")
    return {m["kind"]: m for m in manifests.children(OWNER, spec, rendered, mode)}


def pod_spec(children: dict[str, dict[str, Any]]) -> dict[str, Any]:
    return dict(children["Deployment"]["spec"]["template"]["spec"])


def test_every_child_is_owned_labelled_and_valid() -> None:
    children = build(LIVE_SPEC, "live")
    assert set(children) == {"ServiceAccount", "ConfigMap", "PersistentVolumeClaim", "Service",
                             "NetworkPolicy", "Deployment"}
    for child in children.values():
        meta = child["metadata"]
        assert meta["namespace"] == "trading"
        assert meta["ownerReferences"] == [{
            "apiVersion": "novapulse.io/v1alpha1", "kind": "TradingBot", "name": "bot1",
            "uid": "uid-1", "controller": True, "blockOwnerDeletion": True}]
        assert meta["labels"]["novapulse.io/tradingbot"] == "bot1"
        kubernetes_validate.validate(child, "1.33", strict=True)


def test_deployment_one_replica_recreate_and_probes() -> None:
    dep = build()["Deployment"]
    assert dep["spec"]["replicas"] == 1
    assert dep["spec"]["strategy"] == {"type": "Recreate"}
    container = dep["spec"]["template"]["spec"]["containers"][0]
    assert container["livenessProbe"]["httpGet"] == {"path": "/api/v1/health", "port": "http"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/api/v1/ready", "port": "http"}
    assert container["ports"] == [{"name": "http", "containerPort": 8090, "protocol": "TCP"}]
    assert container["resources"]["limits"]["memory"] == "1Gi"
    selector = dep["spec"]["selector"]["matchLabels"]
    assert selector.items() <= dep["spec"]["template"]["metadata"]["labels"].items()


def test_restricted_security_context() -> None:
    spec = pod_spec(build())
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert spec["automountServiceAccountToken"] is False
    ctx = spec["containers"][0]["securityContext"]
    assert ctx["runAsNonRoot"] is True
    assert ctx["readOnlyRootFilesystem"] is True
    assert ctx["allowPrivilegeEscalation"] is False
    assert ctx["privileged"] is False
    assert ctx["capabilities"] == {"drop": ["ALL"]}
    assert ctx["seccompProfile"] == {"type": "RuntimeDefault"}
    mounts = {m["mountPath"] for m in spec["containers"][0]["volumeMounts"]}
    assert {"/tmp", "/data", "/etc/novapulse"} <= mounts  # writable where it must be


def test_secrets_only_by_reference() -> None:
    env = {e["name"]: e for e in pod_spec(build(LIVE_SPEC, "live"))["containers"][0]["env"]}
    for key, secret in [("KRAKEN_API_KEY", "kraken"), ("KRAKEN_API_SECRET", "kraken"),
                        ("DASHBOARD_ADMIN_KEY", "dash"), ("DASHBOARD_SESSION_SECRET", "dash"),
                        ("DASHBOARD_ADMIN_PASSWORD_HASH", "dash"), ("DATABASE_URL", "db")]:
        assert "value" not in env[key]
        assert env[key]["valueFrom"]["secretKeyRef"]["name"] == secret
    assert env["TRADING_MODE"]["value"] == "live"


def test_paper_without_dashboard_secret_uses_the_generated_one() -> None:
    env = pod_spec(build())["containers"][0]["env"]
    refs = {e["valueFrom"]["secretKeyRef"]["name"] for e in env
            if "secretKeyRef" in e.get("valueFrom", {})}
    assert refs == {"bot1-dashboard"}


@pytest.mark.parametrize(("spec", "mode", "replicas"), [
    (parse_spec({}), "paper", 1),
    (parse_spec({"suspended": True}), "paper", 0),
    (LIVE_SPEC, None, 0),  # the live gate is closed and nothing ran before
])
def test_replicas(spec: BotSpec, mode: Mode | None, replicas: int) -> None:
    assert build(spec, mode)["Deployment"]["spec"]["replicas"] == replicas


def test_config_hash_follows_the_config() -> None:
    def hash_of(spec: BotSpec) -> str:
        dep = build(spec)["Deployment"]
        return str(dep["spec"]["template"]["metadata"]["annotations"]["novapulse.io/config-hash"])

    base = hash_of(parse_spec({"config": {"risk": {"risk_per_trade_pct": 1}}}))
    assert base == hash_of(parse_spec({"config": {"risk": {"risk_per_trade_pct": 1}}}))
    assert base != hash_of(parse_spec({"config": {"risk": {"risk_per_trade_pct": 2}}}))


def test_config_map_holds_the_rendered_config_and_no_secret() -> None:
    cm = build(LIVE_SPEC, "live")["ConfigMap"]
    text = cm["data"]["config.yaml"]
    assert "mode: live" in text and "data_dir: /data" in text
    for word in ("KRAKEN", "DASHBOARD", "password", "DATABASE_URL"):
        assert word not in text


def test_service_pvc_service_account_network_policy() -> None:
    children = build(parse_spec({"storage": {"size": "20Gi", "storageClassName": "fast"}}))
    svc = children["Service"]["spec"]
    assert svc["ports"] == [{"name": "http", "port": 8090, "targetPort": "http",
                             "protocol": "TCP"}]
    assert svc["selector"] == children["Deployment"]["spec"]["selector"]["matchLabels"]
    # The operator reaches a bot whose pod is not Ready (database down, loop stuck) too.
    assert svc["publishNotReadyAddresses"] is True
    pvc = children["PersistentVolumeClaim"]
    assert pvc["metadata"]["name"] == "bot1-data"
    assert pvc["spec"]["resources"]["requests"]["storage"] == "20Gi"
    assert pvc["spec"]["storageClassName"] == "fast"
    assert children["ServiceAccount"]["automountServiceAccountToken"] is False
    policy = children["NetworkPolicy"]["spec"]
    assert policy["policyTypes"] == ["Ingress", "Egress"]
    assert policy["ingress"][0]["ports"] == [{"protocol": "TCP", "port": 8090}]


def test_generated_dashboard_secrets_keep_the_password_away_from_the_pod() -> None:
    pod_secret, login = generated.dashboard_secrets(OWNER)
    assert pod_secret["metadata"]["name"] == "bot1-dashboard"
    assert set(pod_secret["stringData"]) == {"DASHBOARD_ADMIN_KEY", "DASHBOARD_SESSION_SECRET",
                                             "DASHBOARD_ADMIN_PASSWORD_HASH"}
    password = login["stringData"]["DASHBOARD_ADMIN_PASSWORD"]
    assert bcrypt.checkpw(password.encode(),
                          pod_secret["stringData"]["DASHBOARD_ADMIN_PASSWORD_HASH"].encode())
    pod = pod_spec(build())
    referenced = json.dumps(pod)
    # The pod names neither the password's Secret nor its key, and the one Secret it does
    # reference does not hold the password: the kubelet never fetches it for this pod.
    assert login["metadata"]["name"] not in referenced
    assert "DASHBOARD_ADMIN_PASSWORD\"" not in referenced and password not in referenced
    secret_refs = {e["valueFrom"]["secretKeyRef"]["name"] for e in pod["containers"][0]["env"]
                   if "secretKeyRef" in e.get("valueFrom", {})}
    assert secret_refs == {pod_secret["metadata"]["name"]}
    assert not [v for v in pod["volumes"] if "secret" in v or "projected" in v]
    assert login["metadata"]["name"] in generated.how_to_read(OWNER)


@pytest.mark.parametrize(("mode", "expected"), [
    ("paper", set()), ("canary", {"KRAKEN_API_KEY", "KRAKEN_API_SECRET"}),
    ("live", {"KRAKEN_API_KEY", "KRAKEN_API_SECRET"})])
def test_exchange_credentials_only_in_the_modes_that_trade(mode: Mode, expected: set[str],
                                                           ) -> None:
    # A bot switched from live to paper keeps its credentialsSecretRef in the spec.
    env = pod_spec(build(LIVE_SPEC, mode))["containers"][0]["env"]
    assert {e["name"] for e in env if e["name"].startswith("KRAKEN_")} == expected
    assert "kraken" not in json.dumps(env) or mode != "paper"
