"""The chart on a real kube-apiserver (envtest): `kubectl apply -f crds/` on a fresh cluster,
`helm install`, the operator running with the chart's ServiceAccount's own token reconciles a
paper TradingBot (the RBAC is enough) while a verb the chart does not grant is refused, the
admission webhook refuses a cross-field config error at `kubectl apply`, `helm upgrade` keeps
the webhook certificate, and `helm uninstall` leaves no orphans.

One control plane for the module; the steps depend on each other and run in order."""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from support.envtest import ControlPlane, ControlPlaneError, assets_dir, free_port, kubeconfig

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "novapulse"
RELEASE, NAMESPACE, BOTS = "np", "novapulse", "bots"
OPERATOR_SA = f"{RELEASE}-novapulse-operator"
TLS_SECRET = f"{OPERATOR_SA}-webhook-tls"
WAIT = 90.0

PAPER_BOT = {
    "apiVersion": "novapulse.io/v1alpha1", "kind": "TradingBot",
    "metadata": {"name": "paper-eth", "namespace": BOTS,
                 # no kubelet here: the bot never answers, so a paper bot is let go at once
                 "annotations": {"novapulse.io/bot-endpoint": "http://127.0.0.1:9"}},
    "spec": {"mode": "paper", "pairs": ["ETH/BTC"],
             "config": {"risk": {"stop_loss_pct": 2.0, "take_profit_pct": 4.0}}},
}
CROSS_FIELD_ERROR = {
    **PAPER_BOT, "metadata": {"name": "bad-tp", "namespace": BOTS},
    "spec": {"mode": "paper", "config": {"risk": {"stop_loss_pct": 8.0, "take_profit_pct": 1.0}}},
}


def wait_for(what: str, condition: Callable[[], Any], timeout: float = WAIT) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.2)


class Cluster:
    def __init__(self, plane: ControlPlane, tools: Any, workdir: Path) -> None:
        self.plane, self.tools, self.workdir = plane, tools, workdir
        self.admin_env = {"KUBECONFIG": str(plane.kubeconfig)}

    def kubectl(self, *args: str, env: dict[str, str] | None = None, check: bool = True,
                stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        cmd = [str(self.tools.kubectl), *args]
        result = subprocess.run(cmd, input=stdin, capture_output=True, text=True, timeout=60,
                                env={**os.environ, **(env or self.admin_env)})
        if check and result.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)}: {result.stderr}")
        return result

    def helm(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.tools.run("helm", *args, env=self.admin_env, check=check, timeout=180)

    def get(self, *args: str) -> dict[str, Any] | None:
        result = self.kubectl("get", *args, "-o", "json", check=False)
        return json.loads(result.stdout) if result.returncode == 0 else None

    def apply(self, obj: dict[str, Any], *args: str, env: dict[str, str] | None = None,
              ) -> subprocess.CompletedProcess[str]:
        return self.kubectl("apply", "-f", "-", *args, stdin=json.dumps(obj), env=env,
                            check=False)

    def service_account_env(self, namespace: str, name: str) -> dict[str, str]:
        """A KUBECONFIG with exactly the rights of that ServiceAccount (TokenRequest)."""
        token = self.kubectl("-n", namespace, "create", "token", name,
                             "--duration", "1h").stdout.strip()
        assert self.plane.certs is not None
        path = self.workdir / f"{name}.kubeconfig"
        path.write_text(yaml.safe_dump(kubeconfig(self.plane.url, self.plane.certs.ca_cert,
                                                  token)))
        return {"KUBECONFIG": str(path)}

    def labelled(self, kinds: str, selector: str, namespace: str | None = None) -> list[str]:
        scope = ["-n", namespace] if namespace else ["-A"]
        out = self.get(kinds, *scope, "-l", selector) or {"items": []}
        return [f"{o['kind']}/{o['metadata']['name']}" for o in out["items"]]


@pytest.fixture(scope="module")
def cluster(tools: Any) -> Iterator[Cluster]:
    try:
        assets = assets_dir()
    except ControlPlaneError as exc:
        pytest.fail(str(exc))
    if assets is None:
        if os.environ.get("CI", "").lower() in {"1", "true", "yes"}:
            pytest.fail("KUBEBUILDER_ASSETS is not set (CI must provide it: make envtest)")
        pytest.skip("KUBEBUILDER_ASSETS is not set: run `make envtest` and export it")
    plane = ControlPlane(assets)
    plane.start()
    try:
        with tempfile.TemporaryDirectory(prefix="chart-") as tmp:
            yield Cluster(plane, tools, Path(tmp))
    finally:
        plane.stop()


@pytest.fixture(scope="module")
def webhook_port() -> int:
    return free_port()


@pytest.fixture(scope="module")
def installed(cluster: Cluster, webhook_port: int) -> Cluster:
    # The README's first command, on a fresh cluster: it must work the first time.
    result = cluster.kubectl("apply", "-f", str(ROOT / "crds"))
    assert "tradingbots.novapulse.io created" in result.stdout, result.stdout
    cluster.kubectl("create", "namespace", NAMESPACE)
    cluster.kubectl("create", "namespace", BOTS)
    # The operator runs outside the cluster here (no kubelet): the API server calls it on
    # loopback, with the certificate the chart generates (its SANs extended for the address).
    cluster.helm("install", RELEASE, str(CHART), "--namespace", NAMESPACE,
                 "--set", f"webhook.url=https://127.0.0.1:{webhook_port}",
                 "--set", "webhook.certificate.extraIPs={127.0.0.1}")
    return cluster


@pytest.fixture(scope="module")
def operator(installed: Cluster, webhook_port: int) -> Iterator[subprocess.Popen[str]]:
    """`novapulse-operator run` as the chart's Deployment runs it, with the chart's
    ServiceAccount token and the chart's webhook certificate."""
    cert_dir = installed.workdir / "webhook"
    cert_dir.mkdir()
    secret = installed.get("secret", "-n", NAMESPACE, TLS_SECRET)
    assert secret is not None
    for key in ("tls.crt", "tls.key"):
        (cert_dir / key).write_bytes(base64.b64decode(secret["data"][key]))
    env = installed.service_account_env(NAMESPACE, OPERATOR_SA)
    liveness = free_port()
    log = (installed.workdir / "operator.log").open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", "novapulse_operator.cli", "run", "--priority", "100",
         "--liveness", f"http://127.0.0.1:{liveness}/healthz", "--metrics-port", "0",
         "--webhook-port", str(webhook_port), "--webhook-addr", "127.0.0.1",
         "--webhook-cert-dir", str(cert_dir), "--resync-seconds", "5"],
        env={**os.environ, **env}, stdout=log, stderr=subprocess.STDOUT, text=True)
    log.close()

    def alive() -> bool:
        assert process.poll() is None, operator_log(installed)
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{liveness}/healthz", timeout=2):
                return True
        except OSError:
            return False

    try:
        wait_for("the operator's liveness endpoint", alive)
        yield process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)


def operator_log(cluster: Cluster) -> str:
    return (cluster.workdir / "operator.log").read_text(errors="replace")


def test_operator_with_the_charts_service_account_reconciles_a_paper_bot(
        installed: Cluster, operator: subprocess.Popen[str]) -> None:
    result = installed.apply(PAPER_BOT)
    assert result.returncode == 0, result.stderr

    def reconciled() -> dict[str, Any] | None:
        bot = installed.get("tradingbot", "-n", BOTS, "paper-eth") or {}
        status = bot.get("status") or {}
        return bot if status.get("observedGeneration") == 1 and status.get("phase") else None

    try:
        bot = wait_for("the paper bot's status", reconciled)
    except AssertionError:
        print(operator_log(installed)[-6000:])
        raise
    uid = bot["metadata"]["uid"]
    for kind in ("deployment", "configmap/paper-eth-config", "service", "serviceaccount",
                 "persistentvolumeclaim/paper-eth-data", "networkpolicy"):
        name = kind if "/" in kind else f"{kind}/paper-eth"
        child = wait_for(name, lambda n=name: installed.get(n, "-n", BOTS))
        assert [o["uid"] for o in child["metadata"]["ownerReferences"]] == [uid], name
    # A Deployment → ReplicaSet → Pod made by the controller-manager, with the bot's config.
    wait_for("the bot's pod", lambda: installed.labelled(
        "pods", "novapulse.io/tradingbot=paper-eth", BOTS))
    log = operator_log(installed)
    assert "Forbidden" not in log and " 403" not in log, log[-4000:]


def test_a_verb_the_chart_does_not_grant_is_refused(installed: Cluster,
                                                    operator: subprocess.Popen[str]) -> None:
    env = installed.service_account_env(NAMESPACE, OPERATOR_SA)
    for args in (("get", "secrets", "-n", BOTS),                    # list: never granted
                 ("delete", "deployment", "paper-eth", "-n", BOTS),  # delete: GC's job
                 ("delete", "tradingbot", "paper-eth", "-n", BOTS),
                 ("get", "clusterroles")):
        result = installed.kubectl(*args, env=env, check=False)
        assert result.returncode != 0 and "Forbidden" in result.stderr, (args, result.stderr)
    assert installed.kubectl("auth", "can-i", "patch", "deployments", "-n", BOTS,
                             env=env).stdout.strip() == "yes"
    assert installed.kubectl("auth", "can-i", "*", "*", env=env,
                             check=False).stdout.strip() == "no"


def test_the_webhook_refuses_a_cross_field_config_error_at_kubectl_apply(
        installed: Cluster, operator: subprocess.Popen[str]) -> None:
    # failurePolicy Ignore admits while the webhook server starts: wait for it on dry runs.
    refused = wait_for("the webhook to answer", lambda: (
        r := installed.apply(CROSS_FIELD_ERROR, "--dry-run=server")).returncode != 0 and r)
    assert 'admission webhook "config.tradingbots.novapulse.io" denied' in refused.stderr
    result = installed.apply(CROSS_FIELD_ERROR)
    assert result.returncode != 0
    assert "risk.take_profit_pct must be more than a quarter of stop_loss_pct" in result.stderr
    assert installed.get("tradingbot", "-n", BOTS, "bad-tp") is None
    # An update into the same error is refused too; the stored bot stays as it was.
    bad_update = {**PAPER_BOT, "spec": CROSS_FIELD_ERROR["spec"]}
    assert installed.apply(bad_update).returncode != 0
    bot = installed.get("tradingbot", "-n", BOTS, "paper-eth")
    assert bot is not None and bot["spec"]["config"]["risk"]["take_profit_pct"] == 4.0


def test_upgrade_keeps_the_webhook_certificate_and_applies_new_values(
        installed: Cluster, operator: subprocess.Popen[str]) -> None:
    before = installed.get("secret", "-n", NAMESPACE, TLS_SECRET)
    installed.helm("upgrade", RELEASE, str(CHART), "--namespace", NAMESPACE, "--reuse-values",
                   "--set", "operator.resyncSeconds=20")
    after = installed.get("secret", "-n", NAMESPACE, TLS_SECRET)
    assert before is not None and after is not None and after["data"] == before["data"]
    config = installed.get("validatingwebhookconfiguration", OPERATOR_SA)
    assert config is not None
    assert config["webhooks"][0]["clientConfig"]["caBundle"] == before["data"]["ca.crt"]
    deployment = installed.get("deployment", "-n", NAMESPACE, OPERATOR_SA)
    assert deployment is not None
    assert "--resync-seconds=20" in deployment["spec"]["template"]["spec"]["containers"][0]["args"]


def test_uninstall_leaves_no_orphans(installed: Cluster,
                                     operator: subprocess.Popen[str]) -> None:
    # The bot first, while the operator runs (its finalizer), then its children go by GC.
    installed.kubectl("delete", "tradingbot", "paper-eth", "-n", BOTS, "--timeout=60s")
    wait_for("the bot's children to be collected", lambda: not installed.labelled(
        "deployments,replicasets,pods,configmaps,services,serviceaccounts,secrets,"
        "persistentvolumeclaims,networkpolicies", "novapulse.io/tradingbot=paper-eth", BOTS))
    operator.send_signal(signal.SIGINT)
    operator.wait(30)
    installed.helm("uninstall", RELEASE, "--namespace", NAMESPACE, "--wait")
    selector = f"app.kubernetes.io/instance={RELEASE}"
    wait_for("the release's objects to be gone", lambda: not (
        installed.labelled("deployments,replicasets,pods,services,secrets,serviceaccounts,"
                           "roles,rolebindings", selector, NAMESPACE)
        + installed.labelled("clusterroles,clusterrolebindings,"
                             "validatingwebhookconfigurations,clusterkopfpeerings", selector)))
    # Helm never deletes CRDs (that would delete every TradingBot): they stay, by design.
    assert installed.get("crd", "tradingbots.novapulse.io") is not None
