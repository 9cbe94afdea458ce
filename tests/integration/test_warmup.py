"""Warm-up through ccxt against the local Kraken REST emulator: paging, failures."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from novapulse.emulators.kraken_rest import KrakenRestEmulator
from novapulse.market.candle_files import load_candles
from novapulse.market.warmup import fetch_warmup

pytestmark = pytest.mark.integration

ETH = Path(__file__).resolve().parents[2] / "data" / "sample" / "ETH_BTC-5m.csv.gz"
CANDLES = load_candles(ETH)
NOW = CANDLES[-1].ts + 120  # the file's last candle is still open


@pytest.fixture
async def emulator() -> AsyncIterator[KrakenRestEmulator]:
    rest = KrakenRestEmulator([(ETH, None), (ETH, "ALT/BTC")], now=lambda: NOW)
    await rest.start()
    yield rest
    await rest.stop()


async def test_pages_past_720_and_drops_the_open_candle(emulator: KrakenRestEmulator) -> None:
    result = await fetch_warmup(["ETH/BTC", "ALT/BTC"], 5, 1000, rest_url=emulator.url, now=NOW,
                                rate_limit=False)
    assert result["ETH/BTC"] == CANDLES[-1001:-1]
    assert [c.ts for c in result["ALT/BTC"]] == [c.ts for c in CANDLES[-1001:-1]]
    ohlc_calls = [r for r in emulator.requests if r.startswith("/0/public/OHLC")]
    assert len(ohlc_calls) >= 4  # two pages per pair at least


async def test_failing_exchange_returns_nothing_with_a_warning(
    emulator: KrakenRestEmulator, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    emulator.fail_requests()
    result = await fetch_warmup(["ETH/BTC"], 5, 300, rest_url=emulator.url, now=NOW,
                                rate_limit=False)
    assert result == {"ETH/BTC": []}
    assert "warm-up unavailable for ETH/BTC" in caplog.text
    assert "continuing without" in caplog.text


async def test_unreachable_exchange_returns_nothing(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    result = await fetch_warmup(["ETH/BTC"], 5, 300, rest_url="http://127.0.0.1:9", now=NOW,
                                timeout_s=2, rate_limit=False)
    assert result == {"ETH/BTC": []}
    assert "warm-up unavailable for ETH/BTC" in caplog.text


async def test_emulator_speaks_krakens_shapes(emulator: KrakenRestEmulator) -> None:
    import aiohttp

    async with aiohttp.ClientSession() as session, session.get(f"{emulator.url}/0/public/OHLC",
                           params={"pair": "XETHXXBT", "interval": "5", "since": "0"}) as r:
        body = await r.json()
    rows = body["result"]["XETHXXBT"]
    assert body["error"] == [] and len(rows) == 720
    assert rows[0][0] == CANDLES[0].ts and len(rows[0]) == 8
    assert body["result"]["last"] == CANDLES[719].ts
