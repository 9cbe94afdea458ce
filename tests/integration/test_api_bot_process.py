"""The real bot process on the replay feed, its API over a real socket: the runbooks' curl
commands as written, live-mode start-up checks (runbook 11), the paper-mode login banner, and
no secret in the log, the answers or the store."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import bcrypt
import httpx
import pytest

from novapulse.config import load_config
from novapulse.market.replay_server import ReplayServer
from novapulse.models import TradeStatus
from novapulse.runner import FeedSpec, run_bot
from novapulse.secrets import LIVE_REQUIRED
from novapulse.store import Store
from support.bot_env import bot_environment, free_port
from support.bot_process import BotProcess, launch_bot
from support.store_rows import make_trade

SAMPLES = Path(__file__).resolve().parents[2] / "data" / "sample"
FILES = ["ETH_BTC-5m.csv.gz", "LTC_BTC-5m.csv.gz"]
PAIRS = "[ETH/BTC, LTC/BTC]"
PASSWORD = "correct horse battery staple"
SECRETS = {
    "DASHBOARD_ADMIN_KEY": "admin-Zq8vN3kL1pX7rT5wB2mC9dF4",
    "DASHBOARD_READ_KEY": "read-Hh3kQ2xM9vB4nL8pR3tW6yE1",
    "DASHBOARD_SESSION_SECRET": "session-aK9xQ2mZ7vB4nL8pR3tW6yE1uI5",
    "DASHBOARD_ADMIN_PASSWORD_HASH": bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(4)).decode(),
    "KRAKEN_API_KEY": "kraken-Kq2x9vB4nL8pR3tW",
    "KRAKEN_API_SECRET": "Xw4Pb9Lm2Zq7Rt1Kv6Nc3Hs8Fj0Dg5Ay+/w=",
}


@pytest.fixture
async def replay() -> AsyncIterator[ReplayServer]:
    server = ReplayServer([(SAMPLES / f, None) for f in FILES], speed=3_000, start_index=300,
                          snapshot_size=300, heartbeat_interval=0.5)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


async def start_bot(replay: ReplayServer, tmp_path: Path, dsn: str, mode: str,
                    **env: str) -> BotProcess:
    port = free_port()
    log_path = tmp_path / f"bot-{mode}.log"
    environ = bot_environment(dsn, PAIRS, NOVAPULSE__DASHBOARD__HOST="127.0.0.1", **env)
    for name in (*LIVE_REQUIRED, "DASHBOARD_READ_KEY"):
        if name not in env:
            environ.pop(name, None)
    return await launch_bot(["--mode", mode, "--feed", replay.url, "--data-dir",
                             str(tmp_path / "data")], environ, log_path, port)


async def test_runbook_curl_commands_on_the_real_bot(
        replay: ReplayServer, pg_dsn: str, tmp_path: Path) -> None:
    bot = await start_bot(replay, tmp_path, pg_dsn, "paper", **SECRETS)
    read = {"X-API-Key": SECRETS["DASHBOARD_READ_KEY"]}
    admin = {"X-API-Key": SECRETS["DASHBOARD_ADMIN_KEY"]}
    answers: list[str] = []
    try:
        await bot.wait_for_api()
        async with httpx.AsyncClient(base_url=bot.url, timeout=10) as client:
            async def get(path: str, headers: dict[str, str]) -> httpx.Response:
                resp = await client.get(path, headers=headers)
                answers.append(resp.text)
                return resp

            for _ in range(200):  # runbook 2: `... /api/v1/status ... | grep ws_connected`
                status = (await get("/api/v1/status", read)).json()
                if status["ws_connected"] and all(a is not None for a in status["feed"].values()):
                    break
                await asyncio.sleep(0.1)
            assert status["ws_connected"] is True and set(status["feed"]) == {"ETH/BTC",
                                                                              "LTC/BTC"}
            assert status["mode"] == "paper" and status["db_ok"] is True
            assert status["ws_down_s"] == 0  # connected: down for no time
            assert 0 < status["ws_up_s"] < status["uptime_s"]
            thoughts = (await get("/api/v1/thoughts", read)).json()["thoughts"]  # runbook 3
            assert isinstance(thoughts, list)
            gates = {g["gate"] for g in (await get("/api/v1/risk", read)).json()["gates"]}
            assert {"paused", "daily_loss_limit", "max_positions", "global_cooldown"} <= gates
            strategies = (await get("/api/v1/strategies", read)).json()["strategies"]  # rb 9
            assert all("runtime_disabled" in s for s in strategies)
            assert (await get("/api/v1/ready", {})).status_code == 200

            assert (await client.post("/api/v1/control/pause", headers=read)).status_code == 403
            resp = await client.post("/api/v1/control/pause", headers=admin,
                                     json={"reason": "runbook drill"})
            assert resp.json()["paused_by"] == "manual"
            # Runbooks 2 and 3: `curl -X POST .../control/resume -H "X-API-Key: $KEY"`, no body.
            resp = await client.post("/api/v1/control/resume", headers=admin)
            assert resp.status_code == 200 and resp.json()["paused"] is False

            metrics = (await get("/metrics", {})).text
            assert 'novapulse_feed_age_seconds{pair="ETH/BTC"}' in metrics
            assert "novapulse_ws_connected 1.0" in metrics
    finally:
        assert await bot.stop() == 0, bot.log()[-3000:]
    rows = await _thought_messages(pg_dsn)
    assert any("runbook drill" in m for m in rows)  # the pause reached the store
    everything = "\n".join([bot.log(), *answers, *rows])
    for name, value in SECRETS.items():
        assert value not in everything, f"{name} leaked"


async def _thought_messages(dsn: str) -> list[str]:
    conn = await asyncpg.connect(dsn)
    try:
        return [r["message"] + str(r["data"]) for r in
                await conn.fetch("SELECT message, data FROM thoughts")]
    finally:
        await conn.close()


async def test_paper_mode_prints_the_dashboard_url_and_where_the_one_time_login_is(
        replay: ReplayServer, pg_dsn: str, tmp_path: Path) -> None:
    bot = await start_bot(replay, tmp_path, pg_dsn, "paper")
    try:
        await bot.wait_for_api()
        for _ in range(100):  # the banner follows the API's start by a moment
            if "(this session only)" in bot.log():
                break
            await asyncio.sleep(0.05)
        log = bot.log()
        assert f"NovaPulse dashboard: {bot.url}" in log
        # The console is a pipe here, as in a container: the values are not on it (it is the
        # log every shipper collects) but in an owner-only file the banner names.
        match = re.search(r"read them with: cat (\S+)", log)
        assert match, log[-2000:]
        text = await asyncio.to_thread(Path(match.group(1)).read_text)
        saved = dict(line.split("=", 1) for line in text.split())
        password, admin_key = saved["password"], saved["DASHBOARD_ADMIN_KEY"]
        async with httpx.AsyncClient(base_url=bot.url) as client:
            resp = await client.post("/login", data={"password": password})
            assert resp.status_code == 303 and resp.headers["location"] == "/"
            assert (await client.get("/api/v1/status")).status_code == 200
            assert (await client.get("/api/v1/status", headers={"X-API-Key": admin_key})
                    ).status_code == 200
    finally:
        assert await bot.stop() == 0, bot.log()[-3000:]
    assert password not in bot.log() and admin_key not in bot.log()
    assert not any(password in m for m in await _thought_messages(pg_dsn))


async def test_live_mode_starts_with_every_secret(
        replay: ReplayServer, pg_dsn: str, tmp_path: Path) -> None:
    bot = await start_bot(replay, tmp_path, pg_dsn, "live", **SECRETS)
    try:
        await bot.wait_for_api()
        async with httpx.AsyncClient(base_url=bot.url) as client:
            status = await client.get("/api/v1/status",
                                      headers={"X-API-Key": SECRETS["DASHBOARD_ADMIN_KEY"]})
        assert status.json()["mode"] == "live"
    finally:
        assert await bot.stop() == 0, bot.log()[-3000:]


@pytest.mark.parametrize("missing", LIVE_REQUIRED)
def test_live_mode_without_a_variable_refuses_to_start_naming_it(
        missing: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = load_config(None, environ={}, overrides={
        "trading": {"mode": "live"}, "instance": {"data_dir": str(tmp_path / "data")}})
    env = {k: v for k, v in SECRETS.items() if k != missing}
    assert run_bot(config, FeedSpec("kraken"), env) == 2
    err = capsys.readouterr().err
    assert f"{missing} is required in live mode" in err
    assert not (tmp_path / "data").exists()  # before any lock, store or feed
    for value in env.values():
        assert value not in err


def test_cli_lists_every_missing_variable(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items()
           if k not in LIVE_REQUIRED and not k.startswith("NOVAPULSE__")}
    result = subprocess.run(
        [sys.executable, "-m", "novapulse.cli", "run", "--mode", "canary",
         "--data-dir", str(tmp_path / "data")],
        env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    for name in LIVE_REQUIRED:
        assert f"{name} is required in canary mode" in result.stderr


async def test_error_trades_are_restored_listed_and_resolved_through_the_api(
        replay: ReplayServer, pg_dsn: str, tmp_path: Path) -> None:
    """Runbook 4: an exit that gave up leaves its trade in `error` — across restarts — until an
    admin records the exit made by hand on the exchange (no hand-written SQL)."""
    store = await Store.connect(pg_dsn, identity="default")
    try:
        await store.migrate()
        await store.save_trade(make_trade("default:ETHBTC-1", status=TradeStatus.ERROR,
                                          notes="exit failed 3 times"))
    finally:
        await store.close()
    bot = await start_bot(replay, tmp_path, pg_dsn, "paper", **SECRETS)
    read = {"X-API-Key": SECRETS["DASHBOARD_READ_KEY"]}
    admin = {"X-API-Key": SECRETS["DASHBOARD_ADMIN_KEY"]}
    try:
        await bot.wait_for_api()
        async with httpx.AsyncClient(base_url=bot.url, timeout=10) as client:
            status = (await client.get("/api/v1/status", headers=read)).json()
            assert status["error_trades"] == 1
            assert [t["trade_id"] for t in status["error_trade_list"]] == ["default:ETHBTC-1"]
            path = "/api/v1/trades/default:ETHBTC-1/resolve"
            denied = await client.post(path, headers=read, json={"exit_price": 0.09})
            assert denied.status_code == 403
            bad = await client.post(path, headers=admin, json={"exit_price": -1})
            assert bad.status_code == 422
            resp = await client.post(path, headers=admin,
                                     json={"exit_price": 0.09, "note": "closed on the exchange"})
            assert resp.status_code == 200 and resp.json()["status"] == "closed"
            status = (await client.get("/api/v1/status", headers=read)).json()
            assert status["error_trades"] == 0 and status["error_trade_list"] == []
        conn = await asyncpg.connect(pg_dsn)
        try:
            row = await conn.fetchrow("SELECT status, exit_price FROM trades")
        finally:
            await conn.close()
        assert row["status"] == "closed" and row["exit_price"] == pytest.approx(0.09)
    finally:
        assert await bot.stop() == 0, bot.log()[-3000:]
