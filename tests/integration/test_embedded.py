"""The embedded PostgreSQL survives a kill -9 of the bot, and of itself, with its data."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import asyncpg
import pytest

from novapulse.store.embedded import (
    EmbeddedPostgres,
    _live_postmaster,
    _read_pid_file,
    start_embedded_postgres,
)

pytestmark = pytest.mark.integration

BOT_SCRIPT = """
import asyncio, sys, time
from pathlib import Path
import asyncpg
from novapulse.store.embedded import start_embedded_postgres
pg = start_embedded_postgres(Path(sys.argv[1]))
async def write():
    conn = await asyncpg.connect(pg.dsn)
    await conn.execute("CREATE TABLE kept (v text); INSERT INTO kept VALUES ('before kill')")
    await conn.close()
asyncio.run(write())
print(pg.pid, flush=True)
time.sleep(600)
"""


def read_kept(pg: EmbeddedPostgres) -> list[str]:
    async def read() -> list[str]:
        conn = await asyncpg.connect(pg.dsn)
        try:
            return [r["v"] for r in await conn.fetch("SELECT v FROM kept")]
        finally:
            await conn.close()
    return asyncio.run(read())


def kill_postmaster(pg: EmbeddedPostgres) -> None:
    os.kill(pg.pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while _live_postmaster(pg.pgdata) is not None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _live_postmaster(pg.pgdata) is None


def test_restart_after_kill_9_keeps_the_data() -> None:
    # not under pytest's basetemp: see tests/conftest.py
    base = Path(tempfile.mkdtemp(prefix="novapulse-kill9-"))
    data_dir = base / "data"
    bot = subprocess.Popen([sys.executable, "-c", BOT_SCRIPT, str(data_dir)], text=True,
                           stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    assert bot.stdout is not None
    first_pid = int(bot.stdout.readline())
    bot.kill()  # kill -9 of the bot: its server is a daemon and keeps running
    bot.wait()
    pg = start_embedded_postgres(data_dir)
    try:
        assert pg.reused and pg.pid == first_pid
        assert read_kept(pg) == ["before kill"]

        kill_postmaster(pg)  # the whole container died: server gone too
        pg = start_embedded_postgres(data_dir)
        assert not pg.reused and pg.pid != first_pid
        assert read_kept(pg) == ["before kill"]

        kill_postmaster(pg)  # ... and its pid now belongs to an unrelated live process
        pid_file = pg.pgdata / "postmaster.pid"
        lines = _read_pid_file(pg.pgdata)
        assert lines is not None
        pid_file.write_text("\n".join([str(os.getpid()), *lines[1:]]) + "\n")
        pg = start_embedded_postgres(data_dir)
        assert not pg.reused
        assert read_kept(pg) == ["before kill"]
        pg.stop()
        assert _live_postmaster(pg.pgdata) is None
    finally:
        pg.stop()
        shutil.rmtree(base, ignore_errors=True)
