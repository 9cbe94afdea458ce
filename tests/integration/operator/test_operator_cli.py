"""`novapulse-operator run` as a process: standard login (KUBECONFIG), liveness, metrics."""

from __future__ import annotations

import asyncio
import os
import socket
import sys
from pathlib import Path

import aiohttp

from novapulse_operator.cli import main

from .conftest import Cluster, eventually


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _sample(exposition: str, series: str) -> float | None:
    """The value of one series in a Prometheus text exposition, None when absent."""
    for line in exposition.splitlines():
        name, _, value = line.rpartition(" ")
        if name == series:
            return float(value)
    return None


def test_crd_command_prints_the_committed_crd(capsys) -> None:  # type: ignore[no-untyped-def]
    main(["crd"])
    committed = (Path(__file__).resolve().parents[3] / "crds" / "tradingbot.yaml").read_text()
    assert capsys.readouterr().out == committed


async def test_operator_process_reconciles_and_serves_health_and_metrics(
        cluster: Cluster) -> None:
    health, metrics = _free_port(), _free_port()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "novapulse_operator.cli", "run", "--standalone",
        "--liveness", f"http://127.0.0.1:{health}/healthz", "--metrics-port", str(metrics),
        env={**os.environ}, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
    try:
        await cluster.create_bot("bot1", {"mode": "paper"})
        await eventually(lambda: cluster.child("apps/v1", "deployments", "bot1"), within=30,
                         what="the Deployment from the operator process")
        async with aiohttp.ClientSession() as http:
            async def get(url: str) -> str | None:
                try:
                    async with http.get(url) as resp:
                        return await resp.text() if resp.status == 200 else None
                except aiohttp.ClientError:
                    return None

            await eventually(lambda: get(f"http://127.0.0.1:{health}/healthz"), within=10)

            async def reconciles_ok() -> float | None:
                # The Deployment is written before the reconcile that wrote it is counted.
                text = await get(f"http://127.0.0.1:{metrics}/metrics") or ""
                return _sample(text, 'novapulse_operator_reconciles_total{result="ok"}')

            assert await eventually(reconciles_ok, within=30,
                                    what="a successful reconcile counted on /metrics") >= 1
    finally:
        proc.terminate()
        _, stderr = await asyncio.wait_for(proc.communicate(), 20)
    assert proc.returncode == 0, stderr.decode()[-2000:]
    assert b"Traceback" not in stderr, stderr.decode()[-2000:]
