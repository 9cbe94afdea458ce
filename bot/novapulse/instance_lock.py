"""The local single-instance guard: `data/instance.lock`, held with `flock`, naming its holder.

The kernel drops a flock when its process dies, however it dies, so "is the flock held?" is
the liveness test: a lock file nobody holds is stale by definition and safe to remove. The
JSON inside (pod, pid, host, start, heartbeat, identity) says who to blame when it is held.
Where flock is not supported (some network file systems) the pid and heartbeat decide.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import logging
import os
import socket
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

log = logging.getLogger("novapulse.instance_lock")

LOCK_FILE_NAME = "instance.lock"
DEFAULT_STALE_AFTER_S = 60.0
# A `lock status` probe holds a shared flock for microseconds; retrying briefly keeps such a
# probe from being mistaken for a running bot. A live holder holds for hours, so no harm.
_ACQUIRE_ATTEMPTS = 5
_ACQUIRE_RETRY_S = 0.05
_FLOCK_UNSUPPORTED = {errno.ENOLCK, errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS}


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class HolderInfo:
    pod: str
    pid: int
    host: str
    started_at: float
    heartbeat_at: float
    identity: str

    @classmethod
    def current(cls, identity: str = "default") -> HolderInfo:
        host = socket.gethostname()
        now = time.time()
        return cls(pod=os.environ.get("POD_NAME") or host, pid=os.getpid(), host=host,
                   started_at=now, heartbeat_at=now, identity=identity)

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> HolderInfo | None:
        try:
            raw = json.loads(text)
            return cls(pod=str(raw["pod"]), pid=int(raw["pid"]), host=str(raw["host"]),
                       started_at=float(raw["started_at"]),
                       heartbeat_at=float(raw["heartbeat_at"]), identity=str(raw["identity"]))
        except (ValueError, KeyError, TypeError):
            return None

    def describe(self) -> str:
        return (f"pod {self.pod} pid {self.pid} on host {self.host} since "
                f"{_iso(self.started_at)} (identity {self.identity})")


class InstanceAlreadyRunning(RuntimeError):
    def __init__(self, path: Path, holder: HolderInfo | None) -> None:
        self.path = path
        self.holder = holder
        who = holder.describe() if holder else "holder not recorded yet"
        super().__init__(
            f"another NovaPulse instance is running: {who} — two bots on one account would "
            f"place double orders (lock {path}; `novapulse lock status` shows it)")


def _read_holder(path: Path) -> HolderInfo | None:
    try:
        return HolderInfo.from_json(path.read_text())
    except OSError:
        return None


def _same_file(fd: int, path: Path) -> bool:
    """Does `path` still name the file open on `fd`? (It may have been unlinked by
    `clear_if_stale` between our open and our flock.)"""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return False
    own = os.fstat(fd)
    return (st.st_dev, st.st_ino) == (own.st_dev, own.st_ino)


class InstanceLock:
    def __init__(self, path: Path, holder: HolderInfo) -> None:
        self.path = Path(path)
        self.holder = holder
        self._fd: int | None = None
        self._flock = True

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> None:
        """Take the lock or raise `InstanceAlreadyRunning` naming who holds it."""
        if self._fd is not None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        for _ in range(_ACQUIRE_ATTEMPTS):
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                time.sleep(_ACQUIRE_RETRY_S)
                continue
            except OSError as exc:
                if exc.errno not in _FLOCK_UNSUPPORTED:
                    os.close(fd)
                    raise
                self._acquire_without_flock(fd)
                return
            if not _same_file(fd, self.path):
                os.close(fd)
                continue
            self._fd = fd
            self._write()
            log.info("instance lock %s taken: %s", self.path, self.holder.describe())
            return
        raise InstanceAlreadyRunning(self.path, _read_holder(self.path))

    def _acquire_without_flock(self, fd: int) -> None:
        status = lock_status(self.path)
        if status.holder is not None and not status.stale:
            os.close(fd)
            raise InstanceAlreadyRunning(self.path, status.holder)
        log.warning("flock not supported on %s: guarding by pid and heartbeat only", self.path)
        self._fd, self._flock = fd, False
        self._write()

    def heartbeat(self) -> None:
        if self._fd is None:
            return
        self.holder.heartbeat_at = time.time()
        self._write(sync=False)

    def _write(self, sync: bool = True) -> None:
        assert self._fd is not None
        data = (self.holder.to_json() + "\n").encode()
        # write first, then cut: a reader never sees an empty file, at worst a stale tail
        os.pwrite(self._fd, data, 0)
        os.ftruncate(self._fd, len(data))
        if sync:
            os.fsync(self._fd)

    def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            if _same_file(fd, self.path):
                self.path.unlink()  # before unlocking, so no one locks a file about to vanish
        finally:
            os.close(fd)
        log.info("instance lock %s released", self.path)

    def __enter__(self) -> InstanceLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


@dataclass
class LockStatus:
    path: Path
    exists: bool
    holder: HolderInfo | None = None
    held: bool | None = None  # flock held by a live process; None: flock unsupported here
    heartbeat_age_s: float | None = None
    holder_pid_alive: bool | None = None  # known only when the holder is on this host
    stale: bool = False
    reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["path"] = str(self.path)
        return out


@dataclass
class ClearResult:
    cleared: bool
    live: bool  # a live (or freshly replaced) lock was found and left alone
    status: LockStatus
    message: str


def _probe_flock(path: Path) -> bool | None:
    """True when another open file description holds the flock. A shared lock taken and
    dropped at once: it never disturbs an exclusive holder."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    except OSError as exc:
        if exc.errno in _FLOCK_UNSUPPORTED:
            return None
        raise
    finally:
        os.close(fd)  # closing drops our shared lock
    return False


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    with contextlib.suppress(OSError, IndexError):
        # a zombie answers kill(0) but is dead: state is the field after "(comm)"
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0] != "Z"
    return True


def lock_status(path: Path, stale_after_s: float = DEFAULT_STALE_AFTER_S) -> LockStatus:
    path = Path(path)
    if not path.exists():
        return LockStatus(path, exists=False, reason="no lock file")
    holder = _read_holder(path)
    held = _probe_flock(path)
    status = LockStatus(path, exists=True, holder=holder, held=held)
    who = holder.describe() if holder else "an unrecorded holder"
    if holder is not None:
        status.heartbeat_age_s = max(0.0, time.time() - holder.heartbeat_at)
        if holder.host == socket.gethostname():
            status.holder_pid_alive = _pid_alive(holder.pid)
    old = status.heartbeat_age_s is not None and status.heartbeat_age_s > stale_after_s
    if held:
        status.reason = f"held by a live process: {who}"
        if old:
            status.reason += (f"; heartbeat {status.heartbeat_age_s:.0f}s old, so it may be "
                              "hung, but it still holds the lock")
    elif held is False:
        status.stale = True
        status.reason = f"nobody holds the lock: {who} is gone"
        if status.holder_pid_alive is False:
            status.reason += f" (pid {holder.pid if holder else '?'} is dead)"
    elif status.holder_pid_alive is False:
        status.stale = True
        status.reason = f"flock unsupported; holder pid is dead on this host: {who}"
    elif old:
        status.stale = True
        status.reason = (f"flock unsupported; heartbeat {status.heartbeat_age_s:.0f}s old "
                         f"(> {stale_after_s:g}s): {who}")
    else:
        status.reason = f"flock unsupported; heartbeat is fresh: {who}"
    return status


def clear_if_stale(path: Path, stale_after_s: float = DEFAULT_STALE_AFTER_S) -> ClearResult:
    """Remove the lock file only if it is stale; a live lock is never touched."""
    status = lock_status(path, stale_after_s)
    if not status.exists:
        return ClearResult(False, False, status,
                           f"{status.path}: no lock file, nothing to clear")
    if not status.stale:
        return ClearResult(False, True, status,
                           f"{status.path}: lock is live, not touched: {status.reason}")
    try:
        fd = os.open(status.path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return ClearResult(False, False, status,
                           f"{status.path}: already gone, nothing to clear")
    try:
        if status.held is not None:
            try:
                # hold it exclusively while unlinking: a bot starting now either waits for
                # us and then sees the file gone, or creates a fresh one after
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                status = lock_status(status.path, stale_after_s)
                return ClearResult(False, True, status,
                                   f"{status.path}: taken meanwhile, not touched: {status.reason}")
        if not _same_file(fd, status.path):
            return ClearResult(False, True, status,
                               f"{status.path}: replaced meanwhile, not touched; run it again")
        status.path.unlink()
    finally:
        os.close(fd)
    log.warning("removed stale instance lock %s: %s", status.path, status.reason)
    return ClearResult(True, False, status,
                       f"{status.path}: removed stale lock ({status.reason})")
