"""`novapulse lock status|clear --if-stale` as an operator runs it: real processes, exit codes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

HOLDER_SCRIPT = """
import sys, time
from pathlib import Path
from novapulse.instance_lock import HolderInfo, InstanceLock
InstanceLock(Path(sys.argv[1]), HolderInfo.current("acct-1")).acquire()
print("ready", flush=True)
time.sleep(600)
"""


def spawn_holder(data_dir: Path) -> subprocess.Popen[str]:
    proc = subprocess.Popen([sys.executable, "-c", HOLDER_SCRIPT, str(data_dir / "instance.lock")],
                            text=True, stdout=subprocess.PIPE,
                            env={**os.environ, "POD_NAME": "bot-0"})
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    return proc


def lock_cli(*args: str, cwd: Path | None = None,
             env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "novapulse.lock_cli", "lock", *args],
                          capture_output=True, text=True, timeout=30, cwd=cwd,
                          env={**os.environ, **(env or {})})


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    path = tmp_path / "data"
    path.mkdir()
    return path


@pytest.fixture
def holder(data_dir: Path) -> Iterator[subprocess.Popen[str]]:
    proc = spawn_holder(data_dir)
    yield proc
    proc.kill()
    proc.wait()


def test_no_lock(data_dir: Path) -> None:
    status = lock_cli("status", "--data-dir", str(data_dir), "--json")
    assert status.returncode == 0
    assert json.loads(status.stdout)["exists"] is False
    clear = lock_cli("clear", "--if-stale", "--data-dir", str(data_dir))
    assert clear.returncode == 0 and "nothing to clear" in clear.stdout


def test_live_lock_is_reported_and_never_cleared(data_dir: Path,
                                                 holder: subprocess.Popen[str]) -> None:
    status = lock_cli("status", "--data-dir", str(data_dir), "--json")
    report = json.loads(status.stdout)
    assert status.returncode == 0
    assert report["held"] is True and report["stale"] is False
    assert report["holder"]["pid"] == holder.pid and report["holder"]["pod"] == "bot-0"
    text = lock_cli("status", "--data-dir", str(data_dir))
    assert "LIVE" in text.stdout and f"pid {holder.pid}" in text.stdout

    clear = lock_cli("clear", "--if-stale", "--data-dir", str(data_dir))
    assert clear.returncode == 1
    assert "lock is live, not touched" in clear.stderr and f"pid {holder.pid}" in clear.stderr
    assert (data_dir / "instance.lock").exists()
    assert holder.poll() is None


def test_lock_of_a_killed_bot_is_stale_and_cleared(data_dir: Path) -> None:
    proc = spawn_holder(data_dir)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    report = json.loads(lock_cli("status", "--data-dir", str(data_dir), "--json").stdout)
    assert report["stale"] is True and report["holder"]["pid"] == proc.pid
    clear = lock_cli("clear", "--if-stale", "--data-dir", str(data_dir))
    assert clear.returncode == 0 and "removed stale lock" in clear.stdout
    assert not (data_dir / "instance.lock").exists()


def test_clear_without_if_stale_refuses(data_dir: Path) -> None:
    (data_dir / "instance.lock").write_text("{}")
    clear = lock_cli("clear", "--data-dir", str(data_dir))
    assert clear.returncode == 2 and "--if-stale" in clear.stderr
    assert (data_dir / "instance.lock").exists()


def test_data_dir_defaults_to_config(tmp_path: Path, data_dir: Path,
                                     holder: subprocess.Popen[str]) -> None:
    by_env = lock_cli("status", "--json", cwd=tmp_path,
                      env={"NOVAPULSE__INSTANCE__DATA_DIR": str(data_dir)})
    assert json.loads(by_env.stdout)["holder"]["pid"] == holder.pid
    by_default = lock_cli("status", "--json", cwd=tmp_path)  # "data", relative to cwd
    assert json.loads(by_default.stdout)["held"] is True
