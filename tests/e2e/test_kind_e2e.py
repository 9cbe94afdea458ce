"""End to end on a real cluster (kind, or any cluster `KUBECONFIG` names, e.g. after
`make kind-demo`): install the chart, apply a paper TradingBot, see it Ready with the bot's
status mirrored, a config change rolls the pod, a manual pause survives the operator's
reconciles, and uninstall leaves nothing. The cluster must run the image (`E2E_IMAGE`,
default novapulse:0.1.0 — `make kind-demo` loads it) and reach Kraken's public feed.

Skipped with the reason when `KUBECONFIG` is unset or its cluster does not answer."""

from __future__ import annotations

import base64
import json
import os
import socket
import subprocess
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "novapulse"
KUBECTL = os.environ.get("E2E_KUBECTL", str(ROOT / ".tools" / "kubectl"))
HELM = os.environ.get("E2E_HELM", str(ROOT / ".tools" / "helm"))
IMAGE = os.environ.get("E2E_IMAGE", "novapulse:0.1.0")
RELEASE, NAMESPACE, BOT = "np-e2e", "novapulse-e2e", "paper-e2e"
READY_TIMEOUT = 600.0


def run(tool: str, *args: str, check: bool = True, stdin: str | None = None,
        timeout: float = 600) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([tool, *args], input=stdin, capture_output=True, text=True,
                            timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(f"{Path(tool).name} {' '.join(args)}: {result.stderr}")
    return result


def kubectl(*args: str, **kw: Any) -> subprocess.CompletedProcess[str]:
    return run(KUBECTL, *args, **kw)


def get(*args: str) -> dict[str, Any] | None:
    result = kubectl("get", *args, "-o", "json", check=False)
    return json.loads(result.stdout) if result.returncode == 0 else None


def wait_for(what: str, condition: Callable[[], Any], timeout: float = READY_TIMEOUT) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(1)


def condition(bot: dict[str, Any] | None, kind: str) -> str | None:
    for cond in ((bot or {}).get("status") or {}).get("conditions") or []:
        if cond.get("type") == kind:
            return str(cond.get("status"))
    return None


def bot() -> dict[str, Any] | None:
    return get("tradingbot", BOT, "-n", NAMESPACE)


def bot_pods() -> list[dict[str, Any]]:
    pods = get("pods", "-n", NAMESPACE, "-l", f"novapulse.io/tradingbot={BOT}") or {}
    return [p for p in pods.get("items", []) if not p["metadata"].get("deletionTimestamp")]


def ready_pod() -> dict[str, Any] | None:
    for pod in bot_pods():
        statuses = pod.get("status", {}).get("containerStatuses") or []
        if statuses and all(s.get("ready") for s in statuses):
            return pod
    return None


@pytest.fixture(scope="module")
def cluster() -> None:
    if not os.environ.get("KUBECONFIG"):
        pytest.skip("KUBECONFIG is unset: the e2e tests need a real cluster (make kind-demo)")
    for tool in (KUBECTL, HELM):
        if not os.access(tool, os.X_OK):
            pytest.skip(f"{tool} absent: run `python scripts/fetch_tools.py`")
    probe = kubectl("--request-timeout=5s", "get", "--raw=/version", check=False)
    if probe.returncode != 0:
        pytest.skip(f"the cluster KUBECONFIG names does not answer: {probe.stderr.strip()}")


@pytest.fixture(scope="module")
def installed(cluster: None) -> Iterator[None]:
    repository, _, tag = IMAGE.rpartition(":")
    run(HELM, "upgrade", "--install", RELEASE, str(CHART), "--namespace", NAMESPACE,
        "--create-namespace", "--wait", "--timeout", "5m",
        "--set", f"image.repository={repository}", "--set", f"image.tag={tag}",
        # its own peering group: a release from `make kind-demo` may own `novapulse`
        "--set", f"operator.peeringName={RELEASE}")
    yield
    kubectl("delete", "tradingbot", BOT, "-n", NAMESPACE, "--ignore-not-found",
            "--timeout=180s", check=False)
    run(HELM, "uninstall", RELEASE, "--namespace", NAMESPACE, "--wait", check=False)
    kubectl("delete", "namespace", NAMESPACE, "--ignore-not-found", "--wait=false",
            check=False)


@pytest.fixture(scope="module")
def paper_bot(installed: None) -> dict[str, Any]:
    manifest = {
        "apiVersion": "novapulse.io/v1alpha1", "kind": "TradingBot",
        "metadata": {"name": BOT, "namespace": NAMESPACE},
        "spec": {"mode": "paper", "image": IMAGE, "pairs": ["ETH/BTC"],
                 "storage": {"size": "1Gi"},
                 "remediation": {"feed": {"pauseAfter": "10m", "restartAfter": "30m"}},
                 "config": {"risk": {"max_open_positions": 3}}},
    }
    kubectl("apply", "-f", "-", stdin=json.dumps(manifest))
    return wait_for("the paper bot Ready", lambda: (
        b := bot()) is not None and condition(b, "Ready") == "True" and b)


def test_install_and_a_paper_bot_becomes_ready_with_status(paper_bot: dict[str, Any]) -> None:
    status = paper_bot["status"]
    assert status["phase"] == "Running"
    assert status["observedGeneration"] == paper_bot["metadata"]["generation"]
    assert condition(paper_bot, "ConfigValid") == "True"
    wait_for("status.bot mirrored from the bot's API",
             lambda: ((bot() or {}).get("status") or {}).get("bot", {}).get("lastSeen"))
    printed = kubectl("get", "tradingbots", "-n", NAMESPACE).stdout
    assert BOT in printed and "paper" in printed and "Running" in printed


def test_a_config_change_rolls_the_pod(paper_bot: dict[str, Any]) -> None:
    before = wait_for("a ready pod", ready_pod)
    old_hash = before["metadata"]["annotations"]["novapulse.io/config-hash"]
    kubectl("patch", "tradingbot", BOT, "-n", NAMESPACE, "--type=merge", "-p",
            json.dumps({"spec": {"config": {"risk": {"max_open_positions": 2}}}}))

    def rolled() -> dict[str, Any] | None:
        pod = ready_pod()
        if pod and pod["metadata"]["uid"] != before["metadata"]["uid"]:
            return pod
        return None

    after = wait_for("a new ready pod with the new config", rolled)
    assert after["metadata"]["annotations"]["novapulse.io/config-hash"] != old_hash
    assert len(bot_pods()) == 1  # Recreate: never two bots


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def bot_api(paper_bot: dict[str, Any]) -> Iterator[tuple[str, str]]:
    secret = get("secret", f"{BOT}-dashboard", "-n", NAMESPACE)
    assert secret is not None
    key = base64.b64decode(secret["data"]["DASHBOARD_ADMIN_KEY"]).decode()
    port = free_port()
    forward = subprocess.Popen([KUBECTL, "port-forward", "-n", NAMESPACE, f"svc/{BOT}",
                                f"{port}:8090"], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"

    def answers() -> bool:
        try:
            with urllib.request.urlopen(f"{url}/api/v1/health", timeout=3):
                return True
        except OSError:
            return False

    try:
        wait_for("the port-forward to the bot", answers, timeout=60)
        yield url, key
    finally:
        forward.terminate()
        forward.wait(10)


def test_a_manual_pause_survives_the_operator(bot_api: tuple[str, str]) -> None:
    url, key = bot_api
    request = urllib.request.Request(
        f"{url}/api/v1/control/pause", method="POST", data=b'{"reason": "e2e: by hand"}',
        headers={"X-API-Key": key, "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as resp:
        assert resp.status == 200

    def mirrored() -> str | None:
        view = ((bot() or {}).get("status") or {}).get("bot") or {}
        return view.get("lastSeen") if view.get("paused") else None

    seen = {wait_for("the pause in status.bot", mirrored, timeout=120)}
    # Several polls by the operator later the pause is still the human's.
    while len(seen) < 4:
        view = ((bot() or {}).get("status") or {}).get("bot") or {}
        assert view.get("paused") is True and view.get("pausedBy") == "manual", view
        seen.add(view.get("lastSeen"))
        time.sleep(1)


def test_uninstall_leaves_nothing(paper_bot: dict[str, Any]) -> None:
    kubectl("delete", "tradingbot", BOT, "-n", NAMESPACE, "--timeout=180s")
    wait_for("the bot's children collected", lambda: not bot_pods() and not (
        get("deployment,service,configmap,persistentvolumeclaim", "-n", NAMESPACE, "-l",
            f"novapulse.io/tradingbot={BOT}") or {"items": []})["items"])
    run(HELM, "uninstall", RELEASE, "--namespace", NAMESPACE, "--wait")
    selector = f"app.kubernetes.io/instance={RELEASE}"
    assert not (get("all,secret,serviceaccount,role,rolebinding", "-n", NAMESPACE, "-l",
                    selector) or {"items": []})["items"]
    assert not (get("clusterrole,clusterrolebinding,validatingwebhookconfiguration",
                    "-l", selector) or {"items": []})["items"]
