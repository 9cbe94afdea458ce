"""ccxt's async Kraken client against the Kraken REST emulator: one consistent exchange.

Orders placed, found by client order id, cancelled; balances that fills move; every injected
fault surfacing as the ccxt exception a bot must handle; a request answered never (after its
order was accepted) leaving exactly one order, found by its client order id.
"""

from __future__ import annotations

import base64
import os
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import ccxt.async_support as ccxt
import pytest

from novapulse.emulators.kraken_auth import api_sign
from novapulse.emulators.kraken_rest import KrakenRestEmulator
from novapulse.market.candle_files import load_candles

pytestmark = pytest.mark.integration

ETH = Path(__file__).resolve().parents[2] / "data" / "sample" / "ETH_BTC-5m.csv.gz"
CANDLES = load_candles(ETH)
NOW = CANDLES[-1].ts + 120
PRICE = Decimal(repr(CANDLES[-1].close))  # what orders fill at: the current candle's close
KEY = "emulator-test-key"
SECRET = base64.b64encode(os.urandom(64)).decode()
FEE_RATE = Decimal("0.0026")
# Long enough for a loaded machine to answer a normal request, short enough to wait out.
SHORT_TIMEOUT_MS = 2500


@pytest.fixture
async def emulator() -> AsyncIterator[KrakenRestEmulator]:
    rest = KrakenRestEmulator([(ETH, None)], now=lambda: NOW, api_key=KEY, api_secret=SECRET,
                              balances={"BTC": Decimal(1), "ETH": Decimal(2)})
    await rest.start()
    yield rest
    await rest.stop()


@asynccontextmanager
async def kraken(emulator: KrakenRestEmulator, *, key: str = KEY,
                 secret: str = SECRET) -> AsyncIterator[Any]:
    exchange = ccxt.kraken({"apiKey": key, "secret": secret, "enableRateLimit": False})
    exchange.urls["api"] = {**exchange.urls["api"], "public": emulator.url,
                            "private": emulator.url}
    try:
        await exchange.load_markets()
        yield exchange
    finally:
        await exchange.close()


def cost_and_fee(volume: Decimal, price: Decimal = PRICE) -> tuple[Decimal, Decimal]:
    cost = (volume * price).quantize(Decimal("1e-8"))
    return cost, (cost * FEE_RATE).quantize(Decimal("1e-8"))


async def test_a_market_order_with_a_client_order_id_round_trips(
        emulator: KrakenRestEmulator) -> None:
    cid = str(uuid.uuid4())
    async with kraken(emulator) as exchange:
        assert (await exchange.fetch_balance())["total"] == {"BTC": 1.0, "ETH": 2.0}
        created = await exchange.create_order("ETH/BTC", "market", "buy", 0.5, None,
                                              {"clientOrderId": cid})
        order = await exchange.fetch_order(created["id"])
        closed = await exchange.fetch_closed_orders(params={"clientOrderId": cid})
        balance = await exchange.fetch_balance()
        trades = await exchange.fetch_my_trades()
    cost, fee = cost_and_fee(Decimal("0.5"))
    assert (order["status"], order["filled"], order["clientOrderId"]) == ("closed", 0.5, cid)
    assert order["average"] == float(cost / Decimal("0.5"))  # cost is rounded to 8 decimals
    assert Decimal(str(order["fee"]["cost"])) == fee and order["fee"]["currency"] == "BTC"
    assert [o["id"] for o in closed] == [created["id"]]
    assert balance["total"] == {"BTC": float(1 - cost - fee), "ETH": 2.5}
    assert [(t["order"], t["amount"], t["price"]) for t in trades] == [
        (created["id"], 0.5, float(PRICE))]


async def test_a_limit_order_that_does_not_cross_rests_holds_funds_and_cancels(
        emulator: KrakenRestEmulator) -> None:
    limit = float(PRICE / 2)
    async with kraken(emulator) as exchange:
        created = await exchange.create_order("ETH/BTC", "limit", "buy", 1, limit,
                                              {"clientOrderId": "rest-1"})
        found = await exchange.fetch_open_orders(params={"clientOrderId": "rest-1"})
        balance = await exchange.fetch_balance()
        with pytest.raises(ccxt.ExchangeError, match="EOrder:Duplicate order"):
            await exchange.create_order("ETH/BTC", "limit", "buy", 1, limit,
                                        {"clientOrderId": "rest-1"})
        await exchange.cancel_order(None, params={"clientOrderId": "rest-1"})
        cancelled = await exchange.fetch_order(created["id"])
        still_open = await exchange.fetch_open_orders()
        reused = await exchange.create_order("ETH/BTC", "market", "buy", 0.1, None,
                                             {"clientOrderId": "rest-1"})
    assert [o["id"] for o in found] == [created["id"]]
    assert balance["used"]["BTC"] == pytest.approx(float(PRICE / 2 * (1 + FEE_RATE)))
    assert cancelled["status"] == "canceled" and still_open == []
    assert [o.cl_ord_id for o in emulator.orders()] == ["rest-1", "rest-1"]
    assert emulator.account.orders[reused["id"]].status == "closed"


async def test_orders_kraken_refuses_surface_as_ccxt_classes(
        emulator: KrakenRestEmulator) -> None:
    async with kraken(emulator) as exchange:
        with pytest.raises(ccxt.InsufficientFunds, match="EOrder:Insufficient funds"):
            await exchange.create_order("ETH/BTC", "market", "buy", 1000, None)
        with pytest.raises(ccxt.InvalidOrder, match="EOrder:Order minimum not met"):
            await exchange.create_order("ETH/BTC", "market", "sell", 0.00005, None)
        with pytest.raises(ccxt.OrderNotFound, match="EOrder:Unknown order"):
            await exchange.cancel_order("OAAAAA-BBBBB-CCCCCC")
    assert emulator.orders() == []


@pytest.mark.parametrize(
    ("endpoint", "fault", "error_class", "message"),
    [
        ("AddOrder", "invalid_key", ccxt.AuthenticationError, "EAPI:Invalid key"),
        ("AddOrder", "insufficient_funds", ccxt.InsufficientFunds, "EOrder:Insufficient funds"),
        ("AddOrder", "invalid_volume", ccxt.InvalidOrder, "EGeneral:Invalid arguments:volume"),
        ("AddOrder", "invalid_price", ccxt.InvalidOrder, "EGeneral:Invalid arguments:price"),
        ("AddOrder", "order_minimum", ccxt.InvalidOrder, "EOrder:Order minimum not met"),
        ("AddOrder", "rate_limit", ccxt.DDoSProtection, "EAPI:Rate limit exceeded"),
        ("AddOrder", "5xx", ccxt.ExchangeNotAvailable, "EService:Unavailable"),
        ("AddOrder", "invalid_nonce", ccxt.InvalidNonce, "EAPI:Invalid nonce"),
        ("Balance", "invalid_key", ccxt.AuthenticationError, "EAPI:Invalid key"),
        ("BalanceEx", "5xx", ccxt.ExchangeNotAvailable, "EService:Unavailable"),
        ("OpenOrders", "rate_limit", ccxt.DDoSProtection, "EAPI:Rate limit exceeded"),
    ],
)
async def test_each_injected_fault_is_the_ccxt_error_a_bot_handles_for_that_call_only(
        emulator: KrakenRestEmulator, endpoint: str, fault: str,
        error_class: type[Exception], message: str) -> None:
    calls = {
        "AddOrder": lambda ex: ex.create_order("ETH/BTC", "market", "buy", 0.1, None),
        "Balance": lambda ex: ex.private_post_balance(),
        "BalanceEx": lambda ex: ex.fetch_balance(),
        "OpenOrders": lambda ex: ex.fetch_open_orders(),
    }
    async with kraken(emulator) as exchange:
        emulator.inject_fault(endpoint, fault)
        with pytest.raises(error_class, match=message):
            await calls[endpoint](exchange)
        assert emulator.orders() == []  # an error answer places nothing
        await calls[endpoint](exchange)  # the next call is served
    assert emulator.faults.report()["fired"] == [{"endpoint": endpoint, "call": 1, "fault": fault}]


@pytest.mark.parametrize(
    ("fault", "error_class"),
    [("timeout_after_accept", ccxt.RequestTimeout),
     ("drop_after_accept", ccxt.ExchangeNotAvailable)],
)
async def test_an_order_accepted_but_never_answered_exists_once_and_is_found_by_client_id(
        emulator: KrakenRestEmulator, fault: str, error_class: type[Exception]) -> None:
    cid = str(uuid.uuid4())
    async with kraken(emulator) as exchange:
        emulator.inject_fault("AddOrder", fault)
        exchange.timeout = SHORT_TIMEOUT_MS
        with pytest.raises(error_class) as caught:
            await exchange.create_order("ETH/BTC", "market", "buy", 0.5, None,
                                        {"clientOrderId": cid})
        exchange.timeout = 10_000
        by_client_id = await exchange.fetch_closed_orders(params={"clientOrderId": cid})
        open_now = await exchange.fetch_open_orders(params={"clientOrderId": cid})
        balance = await exchange.fetch_balance()
    assert isinstance(caught.value, ccxt.NetworkError)  # the bot's "look it up first" path
    [order] = emulator.orders()
    assert (order.cl_ord_id, order.status, order.vol_exec) == (cid, "closed", Decimal("0.5"))
    assert [(o["id"], o["status"], o["filled"]) for o in by_client_id] == [
        (order.txid, "closed", 0.5)]
    assert open_now == []
    assert balance["total"]["ETH"] == 2.5  # filled once


async def test_an_order_never_received_does_not_exist(emulator: KrakenRestEmulator) -> None:
    async with kraken(emulator) as exchange:
        emulator.inject_fault("AddOrder", "timeout_before_accept")
        exchange.timeout = SHORT_TIMEOUT_MS
        with pytest.raises(ccxt.RequestTimeout):
            await exchange.create_order("ETH/BTC", "market", "buy", 0.5, None,
                                        {"clientOrderId": "never-arrived"})
        exchange.timeout = 10_000
        closed = await exchange.fetch_closed_orders(params={"clientOrderId": "never-arrived"})
        resent = await exchange.create_order("ETH/BTC", "market", "buy", 0.5, None,
                                             {"clientOrderId": "never-arrived"})
    assert closed == []
    assert [o.txid for o in emulator.orders()] == [resent["id"]]


async def test_a_wrong_key_is_authentication_error_and_a_wrong_secret_an_invalid_signature(
        emulator: KrakenRestEmulator) -> None:
    other_secret = base64.b64encode(os.urandom(64)).decode()
    async with kraken(emulator, key="someone-else") as exchange:
        with pytest.raises(ccxt.AuthenticationError, match="EAPI:Invalid key"):
            await exchange.fetch_balance()
    async with kraken(emulator, secret=other_secret) as exchange:
        # Kraken's answer to a bad signature; ccxt 4.5 raises it as a plain ExchangeError.
        with pytest.raises(ccxt.ExchangeError, match="EAPI:Invalid signature"):
            await exchange.create_order("ETH/BTC", "market", "buy", 0.5, None)
    assert emulator.orders() == []


async def signed_post(emulator: KrakenRestEmulator, endpoint: str, params: dict[str, str],
                      nonce: int) -> dict[str, Any]:
    path = f"/0/private/{endpoint}"
    body = "&".join(f"{k}={v}" for k, v in {"nonce": str(nonce), **params}.items()).encode()
    headers = {"API-Key": KEY, "API-Sign": api_sign(path, str(nonce), body, SECRET),
               "Content-Type": "application/x-www-form-urlencoded"}
    async with aiohttp.ClientSession() as session, session.post(
            emulator.url + path, data=body, headers=headers) as response:
        answer: dict[str, Any] = await response.json()
        return answer


async def test_a_replayed_nonce_is_refused(emulator: KrakenRestEmulator) -> None:
    nonce = time.time_ns()
    first = await signed_post(emulator, "Balance", {}, nonce)
    replayed = await signed_post(emulator, "Balance", {}, nonce)
    assert first == {"error": [], "result": {"XETH": "2.0000000000", "XXBT": "1.0000000000"}}
    assert replayed == {"error": ["EAPI:Invalid nonce"]}


async def test_validate_checks_an_order_without_placing_it(emulator: KrakenRestEmulator) -> None:
    order = {"pair": "XETHXXBT", "type": "buy", "ordertype": "market", "volume": "0.5",
             "validate": "true"}
    nonce = time.time_ns()
    valid = await signed_post(emulator, "AddOrder", order, nonce)
    too_big = await signed_post(emulator, "AddOrder", {**order, "volume": "1000"}, nonce + 1)
    assert valid == {"error": [], "result": {"descr": {"order": "buy 0.50000000 ETHXBT @ market"}}}
    assert too_big == {"error": ["EOrder:Insufficient funds"]}
    assert emulator.orders() == []


async def test_faults_from_a_spec_hit_the_calls_it_names() -> None:
    rest = KrakenRestEmulator([(ETH, None)], now=lambda: NOW, api_key=KEY, api_secret=SECRET,
                              balances={"BTC": Decimal(1)},
                              faults="AddOrder:insufficient_funds@2,AddOrder:5xx@3")
    await rest.start()
    try:
        async with kraken(rest) as exchange:
            first = await exchange.create_order("ETH/BTC", "market", "buy", 0.1, None)
            with pytest.raises(ccxt.InsufficientFunds):
                await exchange.create_order("ETH/BTC", "market", "buy", 0.1, None)
            with pytest.raises(ccxt.ExchangeNotAvailable):
                await exchange.create_order("ETH/BTC", "market", "buy", 0.1, None)
            fourth = await exchange.create_order("ETH/BTC", "market", "buy", 0.1, None)
        assert [o.txid for o in rest.orders()] == [first["id"], fourth["id"]]
    finally:
        await rest.stop()
