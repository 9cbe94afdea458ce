"""The chart without a cluster: lint, templates for several value sets, every manifest valid
against the Kubernetes schemas, restricted Pod Security, least-privilege RBAC, and the CRDs
identical to crds/."""

from __future__ import annotations

import base64
import ipaddress
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
from cryptography import x509

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "novapulse"
K8S_VERSION = "1.33"
CUSTOM_KINDS = {"TradingBot", "ClusterKopfPeering", "ServiceMonitor", "PrometheusRule"}

VALUE_SETS: dict[str, list[str]] = {
    "default": [],
    "namespaced-no-webhook": ["--set", "watchNamespaces={bots,research}",
                              "--set", "webhook.enabled=false"],
    "everything": ["--set", "sampleBot.enabled=true",
                   "--set", "metrics.serviceMonitor.enabled=true",
                   "--set", "metrics.prometheusRule.enabled=true",
                   "--set", "webhook.url=https://127.0.0.1:9443",
                   "--set", "webhook.certificate.extraIPs={127.0.0.1}",
                   "--set", "operator.verbose=true"],
    "existing-certificate": ["--set", "webhook.certificate.existingSecret=my-tls",
                             "--set", "webhook.certificate.caBundle=Q0E="],
}

# docs/operator.md, "RBAC the chart must grant" — exactly these, in every served namespace.
NAMESPACED_RULES = {
    ("novapulse.io", "tradingbots"): {"get", "list", "watch", "patch"},
    ("novapulse.io", "tradingbots/status"): {"get", "list", "watch", "patch"},
    ("", "pods"): {"get", "list", "delete"},
    ("", "configmaps"): {"get", "create", "patch"},
    ("", "services"): {"get", "create", "patch"},
    ("", "serviceaccounts"): {"get", "create", "patch"},
    ("", "persistentvolumeclaims"): {"get", "create", "patch"},
    ("apps", "deployments"): {"get", "create", "patch"},
    ("networking.k8s.io", "networkpolicies"): {"get", "create", "patch"},
    ("", "secrets"): {"get", "create", "patch"},
    ("", "events"): {"create"},
}
CLUSTER_RULES = {
    ("apiextensions.k8s.io", "customresourcedefinitions"): {"list", "watch"},
    ("", "namespaces"): {"get", "list", "watch"},
}
PEERING_RULES = {("kopf.dev", "clusterkopfpeerings"): {"get", "list", "watch", "patch"}}


@pytest.fixture(scope="module", params=sorted(VALUE_SETS))
def rendered(request: pytest.FixtureRequest, tools: Any) -> tuple[str, list[dict[str, Any]]]:
    name = request.param
    return name, tools.template(*VALUE_SETS[name])


def flatten(rules: list[dict[str, Any]]) -> dict[tuple[str, str], set[str]]:
    out: dict[tuple[str, str], set[str]] = {}
    for rule in rules:
        assert "resourceNames" not in rule or rule["verbs"] == ["get"], rule
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                out.setdefault((group, resource), set()).update(rule["verbs"])
    return out


def operator_roles(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] in ("ClusterRole", "Role")
            and "helm.sh/hook" not in (d["metadata"].get("annotations") or {})]


def pod_specs(docs: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    specs = []
    for doc in docs:
        if doc["kind"] == "Pod":
            specs.append((doc["metadata"]["name"], doc["spec"]))
        elif doc["kind"] in ("Deployment", "StatefulSet", "DaemonSet", "Job"):
            specs.append((doc["metadata"]["name"], doc["spec"]["template"]["spec"]))
    return specs


def test_lint_strict_for_every_value_set(tools: Any) -> None:
    for args in VALUE_SETS.values():
        tools.run("helm", "lint", "--strict", str(CHART), *args)


def test_every_manifest_is_valid_against_the_kubernetes_schemas(
        rendered: tuple[str, list[dict[str, Any]]]) -> None:
    name, docs = rendered
    for doc in docs:
        if doc["kind"] in CUSTOM_KINDS:
            continue
        try:
            kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{name}: {doc['kind']} {doc['metadata']['name']}: {exc}")


def test_restricted_pod_security(rendered: tuple[str, list[dict[str, Any]]]) -> None:
    name, docs = rendered
    specs = pod_specs(docs)
    assert {n for n, _ in specs} >= {"np-novapulse-operator", "np-novapulse-operator-test"}
    for pod, spec in specs:
        where = f"{name}/{pod}"
        assert spec["securityContext"]["runAsNonRoot"] is True, where
        assert spec["securityContext"]["runAsUser"] == 10001, where
        assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}, where
        assert not spec.get("hostNetwork") and not spec.get("hostPID"), where
        for volume in spec.get("volumes", []):
            assert "hostPath" not in volume, where
        for container in spec["containers"] + spec.get("initContainers", []):
            ctx = container["securityContext"]
            assert ctx["allowPrivilegeEscalation"] is False, where
            assert ctx["readOnlyRootFilesystem"] is True, where
            assert ctx["capabilities"]["drop"] == ["ALL"], where
            assert not ctx["capabilities"].get("add"), where
            assert ctx.get("privileged") is not True, where
            assert "limits" in container["resources"], where


def test_rbac_is_exactly_what_docs_operator_md_names(
        rendered: tuple[str, list[dict[str, Any]]]) -> None:
    name, docs = rendered
    roles = operator_roles(docs)
    for role in roles:
        for rule in role["rules"]:
            assert "*" not in rule["verbs"] + rule["resources"] + rule["apiGroups"], rule
    cluster = next(r for r in roles if r["metadata"]["name"].endswith("-cluster"))
    namespaced = [r for r in roles if r is not cluster]
    if name.startswith("namespaced"):
        assert flatten(cluster["rules"]) == CLUSTER_RULES
        assert {(r["kind"], r["metadata"]["namespace"]) for r in namespaced} == {
            ("Role", "bots"), ("Role", "research")}
    else:
        assert flatten(cluster["rules"]) == CLUSTER_RULES | PEERING_RULES
        assert [r["kind"] for r in namespaced] == ["ClusterRole"]
    for role in namespaced:
        assert flatten(role["rules"]) == NAMESPACED_RULES, name


def test_helm_test_hook_reads_one_crd_and_nothing_else(tools: Any) -> None:
    docs = tools.template()
    hook_roles = [d for d in docs if d["kind"] == "ClusterRole"
                  and (d["metadata"].get("annotations") or {}).get("helm.sh/hook") == "test"]
    assert [r["rules"] for r in hook_roles] == [[{
        "apiGroups": ["apiextensions.k8s.io"], "resources": ["customresourcedefinitions"],
        "resourceNames": ["tradingbots.novapulse.io"], "verbs": ["get"]}]]


def test_chart_crds_are_identical_to_the_repository_crds() -> None:
    for crd in (ROOT / "crds").glob("*.yaml"):
        assert (CHART / "crds" / crd.name).read_text() == crd.read_text(), (
            f"charts/novapulse/crds/{crd.name} differs from crds/{crd.name}: copy it")
    assert sorted(p.name for p in (CHART / "crds").glob("*")) == sorted(
        p.name for p in (ROOT / "crds").glob("*.yaml"))


def test_webhook_certificate_is_signed_by_the_registered_ca_and_names_the_service(
        tools: Any) -> None:
    docs = tools.template(*VALUE_SETS["everything"])
    secret = next(d for d in docs if d["kind"] == "Secret")
    config = next(d for d in docs if d["kind"] == "ValidatingWebhookConfiguration")
    (hook,) = config["webhooks"]
    assert hook["failurePolicy"] == "Ignore"
    assert hook["rules"][0]["operations"] == ["CREATE", "UPDATE"]
    assert hook["clientConfig"]["url"] == "https://127.0.0.1:9443/validate-config"
    assert hook["clientConfig"]["caBundle"] == secret["data"]["ca.crt"]
    ca = x509.load_pem_x509_certificate(base64.b64decode(secret["data"]["ca.crt"]))
    leaf = x509.load_pem_x509_certificate(base64.b64decode(secret["data"]["tls.crt"]))
    leaf.verify_directly_issued_by(ca)
    sans = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "np-novapulse-operator-webhook.novapulse.svc" in sans.get_values_for_type(x509.DNSName)
    assert ipaddress.ip_address("127.0.0.1") in sans.get_values_for_type(x509.IPAddress)
    default = next(d for d in tools.template() if d["kind"] == "ValidatingWebhookConfiguration")
    assert default["webhooks"][0]["clientConfig"]["service"] == {
        "name": "np-novapulse-operator-webhook", "namespace": "novapulse", "port": 443,
        "path": "/validate-config"}


def test_namespaced_mode_refuses_a_second_replica(tools: Any) -> None:
    result = tools.run("helm", "template", "np", str(CHART), "--set", "watchNamespaces={bots}",
                       "--set", "operator.replicas=2", check=False)
    assert result.returncode != 0
    assert "operator.replicas must be 1" in result.stderr


def test_values_schema_refuses_unknown_keys_and_bad_values(tools: Any) -> None:
    for args, message in ((["--set", "operater.replicas=1"], "operater"),
                          (["--set", "webhook.failurePolicy=Maybe"], "failurePolicy"),
                          (["--set", "watchNamespaces={Bad_NS}"], "watchNamespaces")):
        result = tools.run("helm", "template", "np", str(CHART), *args, check=False)
        assert result.returncode != 0 and message in result.stderr, result.stderr


def test_sample_bot_is_a_paper_bot_on_the_chart_image(tools: Any) -> None:
    docs = tools.template("--set", "sampleBot.enabled=true", "--set", "image.tag=1.2.3")
    (bot,) = [d for d in docs if d["kind"] == "TradingBot"]
    assert bot["spec"]["mode"] == "paper"
    assert bot["spec"]["image"] == "novapulse:1.2.3"
    operator = next(d for d in docs if d["kind"] == "Deployment")
    assert operator["spec"]["template"]["spec"]["containers"][0]["image"] == "novapulse:1.2.3"
