"""Two real live bots on one Kraken key, with different names, sharing one database: the
second cannot take the instance lock, because in live mode the lock guards the account."""

from __future__ import annotations

import asyncio
import signal
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import bcrypt
import pytest

from novapulse.account import exchange_account_identity
from novapulse.market.replay_server import ReplayServer
from support.bot_env import bot_environment, free_port

SAMPLES = Path(__file__).resolve().parents[2] / "data" / "sample"
PAIRS = "[ETH/BTC]"
API_KEY = "Qm7Zt2Lx9Rv4Kp1Ws8Nc3Bf6Hj0Dg5AyQm7Zt2Lx9Rv4Kp1Ws8Nc3Bf6"
LIVE_SECRETS = {
    "DASHBOARD_ADMIN_KEY": "admin-Zq8vN3kL1pX7rT5wB2mC9dF4",
    "DASHBOARD_SESSION_SECRET": "session-aK9xQ2mZ7vB4nL8pR3tW6yE1uI5",
    "DASHBOARD_ADMIN_PASSWORD_HASH": bcrypt.hashpw(b"a password", bcrypt.gensalt(4)).decode(),
    "KRAKEN_API_KEY": API_KEY,
    "KRAKEN_API_SECRET": "Xw4Pb9Lm2Zq7Rt1Kv6Nc3Hs8Fj0Dg5Ay+/w=",
}


@pytest.fixture
async def replay() -> AsyncIterator[ReplayServer]:
    server = ReplayServer([(SAMPLES / "ETH_BTC-5m.csv.gz", None)], speed=3_000,
                          start_index=300, snapshot_size=300, heartbeat_interval=0.5)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


async def start_live_bot(replay: ReplayServer, dsn: str, data_dir: Path, identity: str,
                         ) -> tuple[asyncio.subprocess.Process, Path]:
    log_path = data_dir.parent / f"{data_dir.name}.log"
    environ = bot_environment(dsn, PAIRS, NOVAPULSE__DASHBOARD__HOST="127.0.0.1",
                              NOVAPULSE__INSTANCE__IDENTITY=identity, **LIVE_SECRETS)
    with log_path.open("wb") as handle:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "novapulse.cli", "run", "--mode", "live", "--feed",
            replay.url, "--data-dir", str(data_dir), "--port", str(free_port()), env=environ,
            stdout=handle, stderr=handle)
    return proc, log_path


def read_log(log_path: Path) -> str:
    return log_path.read_text(errors="replace")


async def wait_for_log(proc: asyncio.subprocess.Process, log_path: Path, text: str,
                       within_s: float = 60.0) -> None:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline and proc.returncode is None:
        if text in read_log(log_path):
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"never logged {text!r}:\n{read_log(log_path)[-3000:]}")


async def test_a_second_live_bot_on_the_same_key_cannot_take_the_lock_whatever_its_name(
        replay: ReplayServer, pg_dsn: str, tmp_path: Path) -> None:
    first, first_log = await start_live_bot(replay, pg_dsn, tmp_path / "a", "team-a/eth-bot")
    second: asyncio.subprocess.Process | None = None
    try:
        await wait_for_log(first, first_log, "holding the database instance lock")
        second, second_log = await start_live_bot(replay, pg_dsn, tmp_path / "b",
                                                  "team-b/btc-bot")
        assert await asyncio.wait_for(second.wait(), 60) == 3, read_log(second_log)[-3000:]
        refusal = read_log(second_log)
        account = exchange_account_identity(API_KEY)
        assert f"holds the database lock for identity '{account}'" in refusal
        assert API_KEY not in refusal and API_KEY not in read_log(first_log)
    finally:
        for proc in (first, second):
            if proc is not None and proc.returncode is None:
                proc.send_signal(signal.SIGTERM)
        if second is not None:
            await asyncio.wait_for(second.wait(), 30)
        assert await asyncio.wait_for(first.wait(), 30) == 0, read_log(first_log)[-3000:]
