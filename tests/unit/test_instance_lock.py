"""The flock guard `data/instance.lock`, with real processes holding and dying."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from novapulse.instance_lock import (
    HolderInfo,
    InstanceAlreadyRunning,
    InstanceLock,
    clear_if_stale,
    lock_status,
)

HOLDER_SCRIPT = """
import sys, time
from pathlib import Path
from novapulse.instance_lock import HolderInfo, InstanceAlreadyRunning, InstanceLock
lock = InstanceLock(Path(sys.argv[1]), HolderInfo.current(sys.argv[2]))
try:
    lock.acquire()
except InstanceAlreadyRunning as exc:
    print(exc, file=sys.stderr)
    sys.exit(3)
print("ready", flush=True)
time.sleep(600)
"""


def spawn_holder(path: Path, identity: str = "acct-1") -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER_SCRIPT, str(path), identity], text=True,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**os.environ, "POD_NAME": "pod-a"})
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "ready", proc.stderr.read() if proc.stderr else ""
    return proc


@pytest.fixture
def lock_path(tmp_path: Path) -> Path:
    return tmp_path / "data" / "instance.lock"


@pytest.fixture
def live_holder(lock_path: Path) -> Iterator[subprocess.Popen[str]]:
    proc = spawn_holder(lock_path)
    yield proc
    proc.kill()
    proc.wait()


def test_acquire_records_holder_heartbeat_and_release_removes(lock_path: Path) -> None:
    lock = InstanceLock(lock_path, HolderInfo.current("acct-1"))
    lock.acquire()
    first = json.loads(lock_path.read_text())
    assert first["pid"] == os.getpid() and first["identity"] == "acct-1"
    assert first["host"] == socket.gethostname()
    time.sleep(0.01)
    lock.heartbeat()
    assert json.loads(lock_path.read_text())["heartbeat_at"] > first["heartbeat_at"]
    status = lock_status(lock_path)
    assert status.held and not status.stale and status.holder_pid_alive
    lock.release()
    assert not lock_path.exists()
    assert not lock_status(lock_path).exists


def test_second_lock_in_same_process_is_refused(lock_path: Path) -> None:
    with InstanceLock(lock_path, HolderInfo.current()), \
            pytest.raises(InstanceAlreadyRunning):
        InstanceLock(lock_path, HolderInfo.current()).acquire()


def test_second_process_is_refused_with_a_clear_message(lock_path: Path) -> None:
    holder = HolderInfo.current("acct-1")
    holder.pod = "pod-z"
    with InstanceLock(lock_path, holder):
        proc = subprocess.run([sys.executable, "-c", HOLDER_SCRIPT, str(lock_path), "acct-1"],
                              capture_output=True, text=True, timeout=30)
    assert proc.returncode == 3
    message = proc.stderr.strip()
    assert message.startswith(
        f"another NovaPulse instance is running: pod pod-z pid {os.getpid()} on host "
        f"{socket.gethostname()} since ")
    assert "(identity acct-1)" in message
    assert "two bots on one account would place double orders" in message


def test_live_holder_in_another_process(lock_path: Path,
                                        live_holder: subprocess.Popen[str]) -> None:
    with pytest.raises(InstanceAlreadyRunning, match=f"pod pod-a pid {live_holder.pid} "):
        InstanceLock(lock_path, HolderInfo.current()).acquire()
    before = lock_path.read_text()
    status = lock_status(lock_path)
    assert status.held is True and status.stale is False
    result = clear_if_stale(lock_path)
    assert not result.cleared and result.live
    assert lock_path.read_text() == before
    assert lock_status(lock_path).held  # the probes did not disturb the holder


def test_kill_9_leaves_a_stale_lock_that_clear_removes(lock_path: Path) -> None:
    proc = spawn_holder(lock_path)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    status = lock_status(lock_path)
    assert status.exists and status.stale and status.held is False
    assert status.holder is not None and status.holder.pid == proc.pid
    assert status.holder_pid_alive is False
    assert f"pid {proc.pid} is dead" in status.reason
    result = clear_if_stale(lock_path)
    assert result.cleared and not lock_path.exists()
    assert not clear_if_stale(lock_path).cleared  # nothing left: a no-op
    with InstanceLock(lock_path, HolderInfo.current()):
        assert lock_status(lock_path).held


def test_unreaped_zombie_holder_is_dead(lock_path: Path) -> None:
    proc = spawn_holder(lock_path)
    os.kill(proc.pid, signal.SIGKILL)
    try:
        deadline = time.monotonic() + 5
        while lock_status(lock_path).held and time.monotonic() < deadline:
            time.sleep(0.02)
        status = lock_status(lock_path)  # kill(pid, 0) still succeeds on the zombie
        assert status.stale and status.holder_pid_alive is False
    finally:
        proc.wait()


def test_old_heartbeat_on_a_held_lock_is_not_stale(lock_path: Path) -> None:
    holder = HolderInfo.current()
    holder.heartbeat_at -= 3600
    with InstanceLock(lock_path, holder):
        status = lock_status(lock_path, stale_after_s=60)
        assert not status.stale and "may be hung" in status.reason
        assert not clear_if_stale(lock_path, stale_after_s=60).cleared
        assert lock_path.exists()


def test_unreadable_lock_nobody_holds_is_stale(lock_path: Path) -> None:
    lock_path.parent.mkdir(parents=True)
    lock_path.write_text("{not json")
    status = lock_status(lock_path)
    assert status.stale and status.holder is None
    assert clear_if_stale(lock_path).cleared


def test_acquire_retries_when_the_file_is_unlinked_under_it(
        lock_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import fcntl

    real_flock = fcntl.flock
    calls: list[int] = []

    def flock_after_clear(fd: int, op: int) -> None:
        if not calls:  # clear_if_stale unlinks the file between our open and our flock
            lock_path.unlink()
        calls.append(op)
        real_flock(fd, op)

    monkeypatch.setattr(fcntl, "flock", flock_after_clear)
    with InstanceLock(lock_path, HolderInfo.current()) as lock:
        assert lock.held and len(calls) == 2
        assert json.loads(lock_path.read_text())["pid"] == os.getpid()
