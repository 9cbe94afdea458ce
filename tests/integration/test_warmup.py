"""Warm-up through ccxt against the local Kraken REST emulator, which serves OHLC as Kraken
does (only the newest 720 candles, whatever `since` says): shortfalls, failures."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
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


async def test_newest_closed_bars_from_one_call_per_pair(
    emulator: KrakenRestEmulator, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    result = await fetch_warmup(["ETH/BTC", "ALT/BTC"], 5, 500, rest_url=emulator.url, now=NOW,
                                rate_limit=False)
    assert result["ETH/BTC"] == CANDLES[-501:-1]  # the still-open candle is dropped
    assert [c.ts for c in result["ALT/BTC"]] == [c.ts for c in CANDLES[-501:-1]]
    ohlc_calls = [r for r in emulator.requests if r.startswith("/0/public/OHLC")]
    assert len(ohlc_calls) == 2
    assert "warm-up" not in caplog.text


async def test_more_than_kraken_keeps_gets_719_bars_and_says_so(
    emulator: KrakenRestEmulator, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    result = await fetch_warmup(["ETH/BTC"], 5, 1000, rest_url=emulator.url, now=NOW,
                                rate_limit=False)
    assert result["ETH/BTC"] == CANDLES[-720:-1]
    assert ("warm-up for ETH/BTC: only 719 of 1000 bars arrived (Kraken's REST OHLC serves "
            "only its newest 720 candles); the indicators fill up from the live feed"
            ) in caplog.text


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


async def _ohlc(emulator: KrakenRestEmulator, since: int) -> dict[str, Any]:
    async with aiohttp.ClientSession() as session, session.get(
            f"{emulator.url}/0/public/OHLC",
            params={"pair": "XETHXXBT", "interval": "5", "since": str(since)}) as response:
        body: dict[str, Any] = await response.json()
    assert body["error"] == []
    return dict(body["result"])


async def test_emulator_serves_only_the_newest_720_like_kraken(
        emulator: KrakenRestEmulator) -> None:
    result = await _ohlc(emulator, since=0)
    rows = result["XETHXXBT"]
    assert [r[0] for r in rows] == [c.ts for c in CANDLES[-720:]]
    assert len(rows[0]) == 8
    assert result["last"] == CANDLES[-2].ts  # the newest committed candle


async def test_emulator_always_serves_the_open_candle(emulator: KrakenRestEmulator) -> None:
    rows = (await _ohlc(emulator, since=CANDLES[-100].ts))["XETHXXBT"]
    assert [r[0] for r in rows] == [c.ts for c in CANDLES[-99:]]
    rows = (await _ohlc(emulator, since=NOW + 3600))["XETHXXBT"]
    assert [r[0] for r in rows] == [CANDLES[-1].ts]


async def test_emulator_history_ends_at_its_clock() -> None:
    now = CANDLES[2000].ts + 60
    rest = KrakenRestEmulator([(ETH, None)], now=lambda: now)
    await rest.start()
    try:
        rows = (await _ohlc(rest, since=0))["XETHXXBT"]
    finally:
        await rest.stop()
    assert [r[0] for r in rows] == [c.ts for c in CANDLES[1281:2001]]
