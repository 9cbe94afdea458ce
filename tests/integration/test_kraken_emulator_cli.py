"""`novapulse kraken-emulator` as a process: serves until SIGTERM, faults from --faults,
balances from --balance, refuses bad arguments with the reason, never prints the secret."""

from __future__ import annotations

import asyncio
import base64
import os
import signal
import subprocess
import sys
from pathlib import Path

import aiohttp
import ccxt.async_support as ccxt
import pytest

pytestmark = pytest.mark.integration

ETH = Path(__file__).resolve().parents[2] / "data" / "sample" / "ETH_BTC-5m.csv.gz"
KEY = "cli-test-key"
SECRET = base64.b64encode(os.urandom(64)).decode()
START_TIMEOUT_S = 60  # a cold interpreter on a loaded machine


def _command(*args: str) -> list[str]:
    return [sys.executable, "-m", "novapulse.cli", "kraken-emulator", *args]


async def test_the_command_serves_the_account_its_arguments_describe() -> None:
    process = await asyncio.create_subprocess_exec(
        *_command("--data", str(ETH), "--balance", "BTC=1.5", "ETH=3", "--fee", "0.1",
                  "--faults", "BalanceEx:5xx@1", "--now", "1530403200"),
        env={**os.environ, "KRAKEN_API_KEY": KEY, "KRAKEN_API_SECRET": SECRET},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    assert process.stdout is not None and process.stderr is not None
    try:
        url = (await asyncio.wait_for(process.stdout.readline(), START_TIMEOUT_S)).decode().strip()
        exchange = ccxt.kraken({"apiKey": KEY, "secret": SECRET, "enableRateLimit": False})
        exchange.urls["api"] = {**exchange.urls["api"], "public": url, "private": url}
        try:
            with pytest.raises(ccxt.ExchangeNotAvailable):
                await exchange.fetch_balance()
            balance = await exchange.fetch_balance()
            order = await exchange.create_order("ETH/BTC", "market", "sell", 1, None)
            fetched = await exchange.fetch_order(order["id"])
        finally:
            await exchange.close()
        async with aiohttp.ClientSession() as session, session.get(
                f"{url}/_emulator/market") as response:
            market = await response.json()
    finally:
        process.send_signal(signal.SIGTERM)
        stdout, stderr = await asyncio.wait_for(process.communicate(), START_TIMEOUT_S)
    assert process.returncode == 0
    assert balance["total"] == {"BTC": 1.5, "ETH": 3.0}
    assert market["now"] == 1530403200
    price = float(market["prices"]["ETH/BTC"])
    assert fetched["average"] == pytest.approx(price, abs=1e-8)
    assert float(fetched["fee"]["cost"]) == pytest.approx(price * 0.001, abs=1e-8)
    assert SECRET not in (stdout + stderr).decode()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--api-key", KEY, "--api-secret", "not base64!"], "must be base64"),
        (["--api-key", KEY], "--api-key and --api-secret are required"),
        (["--api-key", KEY, "--api-secret", SECRET, "--balance", "BTC"], "bad --balance 'BTC'"),
        (["--api-key", KEY, "--api-secret", SECRET, "--faults", "AddOrder:boom@1"],
         "unknown fault 'boom'"),
        (["--api-key", KEY, "--api-secret", SECRET, "--fee", "100"], "--fee must be"),
        (["--api-key", KEY, "--api-secret", SECRET, "--data", "nowhere.csv"],
         "cannot tell pair and timeframe"),
    ],
)
def test_bad_arguments_exit_2_with_the_reason(args: list[str], message: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KRAKEN_API_")}
    result = subprocess.run(_command(*args), capture_output=True, text=True, env=env,
                            timeout=START_TIMEOUT_S, check=False)
    assert result.returncode == 2
    assert message in result.stderr
    assert SECRET not in result.stderr + result.stdout
