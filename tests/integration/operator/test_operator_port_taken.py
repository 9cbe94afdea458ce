"""`novapulse-operator run` with one of its ports already taken: it exits at once, non-zero,
with one line naming the port and the setting to change — instead of logging "Address already
in use", retrying every minute and reconciling nothing meanwhile."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

EXIT_WITHIN = 30.0  # seconds; the check runs before the operator logs in anywhere


def _cli() -> str:
    beside = Path(sys.executable).with_name("novapulse-operator")
    found = str(beside) if beside.is_file() else shutil.which("novapulse-operator")
    if found is None:
        pytest.fail("the novapulse-operator command is not installed (pip install -e .)")
    return found


@contextlib.contextmanager
def taken(host: str) -> Iterator[int]:
    """A port on `host` that another process (here: this one) listens on."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        sock.listen()
        yield int(sock.getsockname()[1])


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def _run(*args: str, tmp_path: Path) -> tuple[int, list[str]]:
    """The real command, as a process; (exit code, its stderr's lines)."""
    env = {**os.environ, "KUBECONFIG": str(tmp_path / "no-cluster-needed")}
    proc = await asyncio.create_subprocess_exec(
        _cli(), "run", "--standalone", *args, env=env,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
    try:
        _, stderr = await asyncio.wait_for(proc.communicate(), EXIT_WITHIN)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        pytest.fail(f"the operator did not exit within {EXIT_WITHIN:g} s with a port taken")
    assert proc.returncode is not None
    return proc.returncode, stderr.decode().strip().splitlines()


@pytest.mark.parametrize("holder", ["127.0.0.1", "0.0.0.0"])
async def test_metrics_port_taken(tmp_path: Path, holder: str) -> None:
    with taken(holder) as port:
        code, lines = await _run("--metrics-port", str(port), "--liveness",
                                 f"http://127.0.0.1:{_free_port()}/healthz", tmp_path=tmp_path)
    assert code != 0
    assert lines == [
        f"novapulse-operator: cannot listen on 0.0.0.0:{port} for metrics: Address already in "
        "use — free the port, or choose another with --metrics-port (0 disables metrics; Helm "
        "value operator.metricsPort)"]


async def test_liveness_port_taken(tmp_path: Path) -> None:
    with taken("127.0.0.1") as port:
        url = f"http://127.0.0.1:{port}/healthz"
        code, lines = await _run("--liveness", url, "--metrics-port", "0", tmp_path=tmp_path)
    assert code != 0
    assert lines == [
        f"novapulse-operator: cannot listen on 127.0.0.1:{port} for liveness: Address already "
        f"in use — free the port, or choose another with --liveness (now {url}; '' disables "
        "it; Helm value operator.livenessPort)"]


async def test_liveness_on_every_address_while_one_holds_the_port(tmp_path: Path) -> None:
    """The chart's --liveness http://0.0.0.0:PORT/healthz collides with a listener on any one
    address of the port."""
    with taken("127.0.0.1") as port:
        code, lines = await _run("--liveness", f"http://0.0.0.0:{port}/healthz",
                                 "--metrics-port", "0", tmp_path=tmp_path)
    assert code != 0 and len(lines) == 1
    assert f"0.0.0.0:{port} for liveness: Address already in use" in lines[0]


async def test_webhook_port_taken(tmp_path: Path) -> None:
    with taken("127.0.0.1") as port:
        code, lines = await _run("--webhook-port", str(port), "--webhook-addr", "127.0.0.1",
                                 "--liveness", "", "--metrics-port", "0", tmp_path=tmp_path)
    assert code != 0 and len(lines) == 1
    assert f"127.0.0.1:{port} for the admission webhook: Address already in use" in lines[0]
    assert "--webhook-port" in lines[0] and "Helm value webhook.port" in lines[0]
