"""The Kraken emulator's HTTP control API: orphans, outside fills, ghosts, faults, balances,
prices — and what a Kraken client then sees."""

from __future__ import annotations

import base64
import os
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import ccxt.async_support as ccxt
import pytest

from novapulse.emulators.kraken_rest import KrakenRestEmulator
from novapulse.market.candle_files import load_candles

pytestmark = pytest.mark.integration

ETH = Path(__file__).resolve().parents[2] / "data" / "sample" / "ETH_BTC-5m.csv.gz"
CANDLES = load_candles(ETH)
NOW = CANDLES[-1].ts + 120
KEY = "control-test-key"
SECRET = base64.b64encode(os.urandom(64)).decode()


@pytest.fixture
async def emulator() -> AsyncIterator[KrakenRestEmulator]:
    rest = KrakenRestEmulator([(ETH, None)], now=lambda: NOW, api_key=KEY, api_secret=SECRET,
                              balances={"BTC": Decimal(1), "ETH": Decimal(2)})
    await rest.start()
    yield rest
    await rest.stop()


@pytest.fixture
async def exchange(emulator: KrakenRestEmulator) -> AsyncIterator[Any]:
    client = ccxt.kraken({"apiKey": KEY, "secret": SECRET, "enableRateLimit": False})
    client.urls["api"] = {**client.urls["api"], "public": emulator.url, "private": emulator.url}
    try:
        yield client
    finally:
        await client.close()


async def control(emulator: KrakenRestEmulator, method: str, path: str,
                  body: dict[str, Any] | None = None) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as session, session.request(
            method, f"{emulator.url}/_emulator{path}", json=body) as response:
        return response.status, await response.json()


async def test_an_order_placed_outside_the_bot_is_an_open_order_to_any_client(
        emulator: KrakenRestEmulator, exchange: Any) -> None:
    status, placed = await control(emulator, "POST", "/orders", {
        "pair": "ETH/BTC", "type": "sell", "ordertype": "limit", "volume": "0.5",
        "price": "0.5", "cl_ord_id": "by-hand"})
    open_orders = await exchange.fetch_open_orders()
    _, listed = await control(emulator, "GET", "/orders?status=open")
    assert status == 201
    assert placed["order"]["source"] == "outside" and placed["order"]["status"] == "open"
    assert [(o["id"], o["clientOrderId"], o["side"], o["amount"]) for o in open_orders] == [
        (placed["order"]["txid"], "by-hand", "sell", 0.5)]
    assert [o["txid"] for o in listed["orders"]] == [placed["order"]["txid"]]


async def test_an_outside_order_kraken_would_refuse_is_refused_with_its_string(
        emulator: KrakenRestEmulator) -> None:
    status, body = await control(emulator, "POST", "/orders", {
        "pair": "ETH/BTC", "type": "buy", "volume": "500"})
    assert (status, body) == (400, {"error": "EOrder:Insufficient funds"})
    assert emulator.orders() == []


async def test_an_order_filled_outside_the_bot_shows_closed_with_its_fill(
        emulator: KrakenRestEmulator, exchange: Any) -> None:
    resting = await exchange.create_order("ETH/BTC", "limit", "sell", 1, 0.5,
                                           {"clientOrderId": "exit-1"})
    status, filled = await control(emulator, "POST", "/orders/exit-1/fill", {"price": "0.2"})
    order = await exchange.fetch_order(resting["id"])
    balance = await exchange.fetch_balance()
    assert status == 200 and filled["orders"][0]["status"] == "closed"
    assert (order["status"], order["filled"], order["average"]) == ("closed", 1.0, 0.2)
    assert balance["total"]["ETH"] == 1.0


async def test_a_vanished_order_is_a_ghost_no_client_can_find(
        emulator: KrakenRestEmulator, exchange: Any) -> None:
    bought = await exchange.create_order("ETH/BTC", "market", "buy", 0.5, None,
                                         {"clientOrderId": "entry-1"})
    status, body = await control(emulator, "DELETE", "/orders/entry-1")
    closed = await exchange.fetch_closed_orders(params={"clientOrderId": "entry-1"})
    trades = await exchange.fetch_my_trades()
    assert (status, body) == (200, {"forgotten": [bought["id"]]})
    assert closed == [] and trades == []
    with pytest.raises(ccxt.InvalidOrder, match="EOrder:Invalid order"):
        await exchange.fetch_order(bought["id"])
    missing_status, _ = await control(emulator, "DELETE", "/orders/entry-1")
    assert missing_status == 404


async def test_an_order_cancelled_outside_the_bot_is_cancelled_for_every_client(
        emulator: KrakenRestEmulator, exchange: Any) -> None:
    resting = await exchange.create_order("ETH/BTC", "limit", "buy", 1, 0.01,
                                          {"clientOrderId": "entry-2"})
    status, body = await control(emulator, "POST", "/orders/entry-2/cancel")
    order = await exchange.fetch_order(resting["id"])
    assert (status, body) == (200, {"count": 1})
    assert order["status"] == "canceled"


async def test_balances_set_from_outside_are_what_clients_see(
        emulator: KrakenRestEmulator, exchange: Any) -> None:
    status, body = await control(emulator, "POST", "/balances", {"ETH": "0", "USD": "150.5"})
    balance = await exchange.fetch_balance()
    assert status == 200 and body["XETH"] == "0.0000000000" and body["ZUSD"] == "150.5000000000"
    assert balance["total"] == {"BTC": 1.0, "ETH": 0.0, "USD": 150.5}
    bad_status, bad = await control(emulator, "POST", "/balances", {"ETH": "-1"})
    assert bad_status == 400 and "must not be negative" in bad["error"]


async def test_a_price_set_from_outside_fills_the_resting_orders_it_reaches(
        emulator: KrakenRestEmulator, exchange: Any) -> None:
    resting = await exchange.create_order("ETH/BTC", "limit", "buy", 1, 0.05)
    status, market = await control(emulator, "POST", "/market", {"prices": {"ETH/BTC": "0.04"}})
    order = await exchange.fetch_order(resting["id"])
    assert status == 200 and market["prices"] == {"ETH/BTC": "0.04"}
    assert (order["status"], order["average"]) == ("closed", 0.05)
    market_buy = await exchange.create_order("ETH/BTC", "market", "buy", 1, None)
    assert (await exchange.fetch_order(market_buy["id"]))["average"] == 0.04


async def test_faults_armed_over_http_fail_the_calls_they_name(
        emulator: KrakenRestEmulator, exchange: Any) -> None:
    await exchange.fetch_balance()
    status, armed = await control(emulator, "POST", "/faults",
                                  {"endpoint": "BalanceEx", "fault": "5xx", "times": 2})
    spec_status, _ = await control(emulator, "POST", "/faults", {"spec": "AddOrder:rate_limit@1"})
    for _ in range(2):
        with pytest.raises(ccxt.ExchangeNotAvailable):
            await exchange.fetch_balance()
    await exchange.fetch_balance()
    with pytest.raises(ccxt.DDoSProtection):
        await exchange.create_order("ETH/BTC", "market", "buy", 0.1, None)
    _, report = await control(emulator, "GET", "/faults")
    assert (status, spec_status) == (200, 200)
    assert [f["call"] for f in armed["armed"]] == [2, 3]
    assert report["calls"]["BalanceEx"] == 4 and report["pending"] == []
    assert [(f["endpoint"], f["fault"]) for f in report["fired"]] == [
        ("BalanceEx", "5xx"), ("BalanceEx", "5xx"), ("AddOrder", "rate_limit")]


async def test_a_bad_fault_request_is_refused_with_the_reason(
        emulator: KrakenRestEmulator) -> None:
    status, body = await control(emulator, "POST", "/faults", {"spec": "AddOrder:meltdown@1"})
    assert status == 400 and "unknown fault 'meltdown'" in body["error"]
    cleared_status, cleared = await control(emulator, "DELETE", "/faults")
    assert cleared_status == 200 and cleared["pending"] == []
