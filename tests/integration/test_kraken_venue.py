"""KrakenVenue through ccxt against the Kraken REST emulator over loopback: orders carry their
client order id and are found again by it, every injected fault reaches `submit` as runbook 4's
class, an order accepted before a timeout is found (so it is never sent twice), a wrong secret
is an authentication error, volumes are rounded and held to the pair's minimums before they
leave, the canary cap holds, and reconciliation sees open orders and balances."""

from __future__ import annotations

import base64
import dataclasses
import logging
import uuid
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path

import pytest

from novapulse.emulators.kraken_pairs import PairRules as EmulatedRules
from novapulse.emulators.kraken_rest import KrakenRestEmulator
from novapulse.execution.kraken import KrakenVenue
from novapulse.execution.venue import ErrorClass, OrderIntent, OrderState, VenueError
from novapulse.market.candle_files import load_candles
from novapulse.models import OrderKind, Side

pytestmark = pytest.mark.integration

ETH = Path(__file__).resolve().parents[2] / "data" / "sample" / "ETH_BTC-5m.csv.gz"
CANDLES = load_candles(ETH)
NOW = CANDLES[-1].ts + 120
PRICE = CANDLES[-1].close  # the emulator fills market orders at the current candle's close
KEY = "NovaPulseIntegrationKey"
SECRET = base64.b64encode(b"integration secret for the emulated account, 64 bytes......").decode()
FEE_RATE = 0.0026


def intent(quantity: float, *, kind: OrderKind = OrderKind.ENTRY, side: Side | None = None,
           client_order_id: str | None = None) -> OrderIntent:
    return OrderIntent(
        client_order_id=client_order_id or str(uuid.uuid4()),
        trade_id="trade-1",
        pair="ETH/BTC",
        side=side or (Side.BUY if kind is OrderKind.ENTRY else Side.SELL),
        kind=kind,
        quantity=quantity,
        price=PRICE,
        ts=float(NOW),
    )


@pytest.fixture
async def emulator() -> AsyncIterator[KrakenRestEmulator]:
    rest = KrakenRestEmulator([(ETH, None)], now=lambda: NOW, api_key=KEY, api_secret=SECRET,
                              balances={"BTC": Decimal("1"), "ETH": Decimal("10")})
    await rest.start()
    yield rest
    await rest.stop()


@pytest.fixture
def waits() -> list[float]:
    """What the venue's rate limiter asked to sleep (the tests do not wait it out)."""
    return []


@pytest.fixture
async def venue(emulator: KrakenRestEmulator, waits: list[float]) -> AsyncIterator[KrakenVenue]:
    async def record(seconds: float) -> None:
        waits.append(seconds)

    kraken = KrakenVenue(KEY, SECRET, rest_url=emulator.url, rate_limit_per_second=50.0,
                         timeout_s=1.0, sleep=record)
    yield kraken
    await kraken.close()


def add_order_calls(emulator: KrakenRestEmulator) -> int:
    return emulator.faults.calls("AddOrder")


# --- the order lifecycle ------------------------------------------------------------------


async def test_a_market_buy_fills_and_is_found_again_by_its_client_order_id(
        emulator: KrakenRestEmulator, venue: KrakenVenue) -> None:
    order = intent(0.5)
    ack = await venue.submit(order)
    assert ack.state is OrderState.ACKNOWLEDGED
    assert ack.client_order_id == order.client_order_id
    assert ack.exchange_order_id is not None
    assert ack.quantity == 0.5

    [placed] = emulator.orders()
    assert placed.cl_ord_id == order.client_order_id  # cl_ord_id is what reached the API
    assert placed.txid == ack.exchange_order_id
    assert placed.volume == Decimal("0.5")

    found = await venue.lookup(order)
    assert found is not None
    assert found.state is OrderState.FILLED
    assert found.client_order_id == order.client_order_id
    assert found.exchange_order_id == ack.exchange_order_id
    assert found.filled_quantity == pytest.approx(0.5)
    assert found.average_price == pytest.approx(PRICE, abs=2e-8)  # cost/volume: within a tick
    # in BTC, the quote currency, to Kraken's 8 decimals
    assert found.fee == pytest.approx(0.5 * PRICE * FEE_RATE, abs=1e-8)
    assert found.pair == "ETH/BTC"


async def test_a_market_sell_reports_its_fee_in_the_quote_currency(
        venue: KrakenVenue) -> None:
    order = intent(2.0, kind=OrderKind.EXIT)
    await venue.submit(order)
    found = await venue.lookup(order)
    assert found is not None and found.state is OrderState.FILLED
    assert found.fee == pytest.approx(2.0 * PRICE * FEE_RATE, abs=1e-8)


async def test_lookup_of_an_order_never_sent_is_none(
        emulator: KrakenRestEmulator, venue: KrakenVenue) -> None:
    await venue.submit(intent(0.5))
    assert await venue.lookup(intent(0.5)) is None


async def test_lookup_finds_an_order_still_open(
        emulator: KrakenRestEmulator, venue: KrakenVenue) -> None:
    cid = str(uuid.uuid4())
    resting = emulator.place_outside_order("ETH/BTC", "buy", "0.3", ordertype="limit",
                                           price=f"{PRICE / 2:.8f}", cl_ord_id=cid)
    found = await venue.lookup(intent(0.3, client_order_id=cid))
    assert found is not None
    assert found.state is OrderState.ACKNOWLEDGED
    assert found.exchange_order_id == resting.txid
    assert found.filled_quantity == 0.0 and found.average_price is None


async def test_a_resend_of_an_open_order_answers_with_that_order(
        emulator: KrakenRestEmulator, venue: KrakenVenue) -> None:
    cid = str(uuid.uuid4())
    resting = emulator.place_outside_order("ETH/BTC", "buy", "0.3", ordertype="limit",
                                           price=f"{PRICE / 2:.8f}", cl_ord_id=cid)
    report = await venue.submit(intent(0.3, client_order_id=cid))
    assert report.exchange_order_id == resting.txid
    assert len(emulator.orders()) == 1


async def test_cancel_by_client_order_id(emulator: KrakenRestEmulator,
                                         venue: KrakenVenue) -> None:
    cid = str(uuid.uuid4())
    emulator.place_outside_order("ETH/BTC", "buy", "0.3", ordertype="limit",
                                 price=f"{PRICE / 2:.8f}", cl_ord_id=cid)
    report = await venue.cancel(intent(0.3, client_order_id=cid))
    assert report is not None and report.state is OrderState.CANCELLED
    assert [o.status for o in emulator.orders()] == ["canceled"]
    assert await venue.cancel(intent(0.3)) is None  # never placed


# --- faults -------------------------------------------------------------------------------


@pytest.mark.parametrize(("fault", "expected", "retryable", "kraken_text"), [
    ("invalid_key", ErrorClass.AUTHENTICATION, False, "EAPI:Invalid key"),
    ("invalid_signature", ErrorClass.AUTHENTICATION, False, "EAPI:Invalid signature"),
    ("insufficient_funds", ErrorClass.INSUFFICIENT_FUNDS, False, "EOrder:Insufficient funds"),
    ("invalid_volume", ErrorClass.INVALID_ORDER, False, "EGeneral:Invalid arguments:volume"),
    ("invalid_price", ErrorClass.INVALID_ORDER, False, "EGeneral:Invalid arguments:price"),
    ("order_minimum", ErrorClass.INVALID_ORDER, False, "EOrder:Order minimum not met"),
    ("rate_limit", ErrorClass.RATE_LIMIT, True, "EAPI:Rate limit exceeded"),
    ("5xx", ErrorClass.UNAVAILABLE, True, "EService:Unavailable"),
    ("invalid_nonce", ErrorClass.NETWORK, True, "EAPI:Invalid nonce"),
])
async def test_each_refusal_reaches_submit_as_its_class(
        emulator: KrakenRestEmulator, venue: KrakenVenue, waits: list[float], fault: str,
        expected: ErrorClass, retryable: bool, kraken_text: str) -> None:
    await venue.load_markets()
    emulator.inject_fault("AddOrder", fault)
    order = intent(0.5)
    with pytest.raises(VenueError) as caught:
        await venue.submit(order)
    assert (caught.value.error, caught.value.retryable) == (expected, retryable)
    assert kraken_text in caught.value.message
    assert KEY not in str(caught.value) and SECRET not in str(caught.value)
    assert emulator.orders() == []
    waits.clear()
    assert await venue.lookup(order) is None
    if expected is ErrorClass.RATE_LIMIT:
        # backed off: the next call waits for Kraken's counter to decay (Starter: 0.33/s)
        assert waits and waits[0] == pytest.approx(1 / 0.33, rel=0.05)
    else:
        assert max(waits, default=0.0) < 0.1


@pytest.mark.parametrize("fault", ["timeout_after_accept", "drop_after_accept"])
async def test_an_order_accepted_before_the_answer_was_lost_is_found_by_lookup(
        emulator: KrakenRestEmulator, venue: KrakenVenue, fault: str) -> None:
    await venue.load_markets()
    emulator.inject_fault("AddOrder", fault)
    order = intent(0.5)
    with pytest.raises(VenueError) as caught:
        await venue.submit(order)
    assert (caught.value.error, caught.value.retryable) == (ErrorClass.NETWORK, True)
    assert "look it up by client order id" in caught.value.message
    assert add_order_calls(emulator) == 1  # the venue did not resend by itself

    found = await venue.lookup(order)
    assert found is not None, "the accepted order must be found, or the caller sends it twice"
    assert found.state is OrderState.FILLED
    assert found.filled_quantity == pytest.approx(0.5)
    [placed] = emulator.orders()
    assert found.exchange_order_id == placed.txid


async def test_a_timeout_before_accept_leaves_nothing_to_find(
        emulator: KrakenRestEmulator, venue: KrakenVenue) -> None:
    await venue.load_markets()
    emulator.inject_fault("AddOrder", "timeout_before_accept")
    order = intent(0.5)
    with pytest.raises(VenueError) as caught:
        await venue.submit(order)
    assert (caught.value.error, caught.value.retryable) == (ErrorClass.NETWORK, True)
    assert await venue.lookup(order) is None
    assert emulator.orders() == []


async def test_real_insufficient_funds_are_refused_by_the_exchange(
        emulator: KrakenRestEmulator, venue: KrakenVenue) -> None:
    with pytest.raises(VenueError) as caught:
        await venue.submit(intent(1000.0))  # costs far more than the account's 1 BTC
    assert caught.value.error is ErrorClass.INSUFFICIENT_FUNDS
    assert caught.value.message == "EOrder:Insufficient funds"


async def test_a_wrong_secret_is_an_authentication_error(emulator: KrakenRestEmulator) -> None:
    wrong = base64.b64encode(b"not the secret the exchange issued for this key.........").decode()
    kraken = KrakenVenue(KEY, wrong, rest_url=emulator.url, rate_limit_per_second=50.0)
    try:
        with pytest.raises(VenueError) as caught:
            await kraken.submit(intent(0.5))
        assert (caught.value.error, caught.value.retryable) == (ErrorClass.AUTHENTICATION, False)
        assert caught.value.message == "EAPI:Invalid signature"
        with pytest.raises(VenueError) as on_balance:
            await kraken.balances()
        assert on_balance.value.error is ErrorClass.AUTHENTICATION
    finally:
        await kraken.close()
    assert emulator.orders() == []


async def test_an_unreachable_exchange_is_unavailable() -> None:
    kraken = KrakenVenue(KEY, SECRET, rest_url="http://127.0.0.1:9", rate_limit_per_second=50.0,
                         timeout_s=2.0)
    try:
        with pytest.raises(VenueError) as caught:
            await kraken.submit(intent(0.5))
    finally:
        await kraken.close()
    assert (caught.value.error, caught.value.retryable) == (ErrorClass.UNAVAILABLE, True)


# --- precision, minimums, canary ----------------------------------------------------------


@pytest.fixture
def coarse_lots(emulator: KrakenRestEmulator) -> None:
    """ETH/BTC traded in lots of 0.0001 with a minimum of 0.02 ETH and 0.0002 BTC."""
    pair = emulator.pairs["ETH/BTC"]
    emulator.pairs["ETH/BTC"] = dataclasses.replace(pair, rules=EmulatedRules(
        lot_decimals=4, ordermin=Decimal("0.02"), costmin=Decimal("0.0002")))


@pytest.mark.usefixtures("coarse_lots")
async def test_volume_is_rounded_down_to_the_lot_precision_before_it_leaves(
        emulator: KrakenRestEmulator, venue: KrakenVenue) -> None:
    report = await venue.submit(intent(0.123456789))
    assert report.quantity == 0.1234
    [placed] = emulator.orders()
    assert placed.volume == Decimal("0.1234")


@pytest.mark.usefixtures("coarse_lots")
async def test_volume_below_the_pairs_minimum_never_leaves(
        emulator: KrakenRestEmulator, venue: KrakenVenue) -> None:
    with pytest.raises(VenueError) as caught:
        await venue.submit(intent(0.01999))
    assert (caught.value.error, caught.value.retryable) == (ErrorClass.INVALID_ORDER, False)
    assert caught.value.message == ("ETH/BTC: volume 0.0199 is below the minimum order 0.02 "
                                    "(volume precision 4 decimals)")
    assert add_order_calls(emulator) == 0


async def test_an_unknown_pair_never_leaves(emulator: KrakenRestEmulator,
                                            venue: KrakenVenue) -> None:
    with pytest.raises(VenueError) as caught:
        await venue.submit(dataclasses.replace(intent(0.5), pair="LTC/BTC"))
    assert caught.value.error is ErrorClass.INVALID_ORDER
    assert caught.value.message == "LTC/BTC: Kraken lists no such pair"
    assert add_order_calls(emulator) == 0


async def canary_venue(emulator: KrakenRestEmulator, cap: float) -> KrakenVenue:
    return KrakenVenue(KEY, SECRET, rest_url=emulator.url, rate_limit_per_second=50.0,
                       canary_max_notional=cap)


async def test_canary_cap_resizes_an_entry_down_to_the_cap(
        emulator: KrakenRestEmulator) -> None:
    kraken = await canary_venue(emulator, 0.001)
    try:
        report = await kraken.submit(intent(1.0))
    finally:
        await kraken.close()
    [placed] = emulator.orders()
    assert placed.volume * Decimal(repr(PRICE)) <= Decimal("0.001")
    assert placed.volume == (Decimal("0.001") / Decimal(repr(PRICE))).quantize(
        Decimal("0.00000001"), rounding="ROUND_DOWN")
    assert report.quantity == float(placed.volume)
    assert report.message.startswith("canary cap: entry resized from 1 to ")


async def test_canary_cap_never_resizes_an_exit(emulator: KrakenRestEmulator) -> None:
    kraken = await canary_venue(emulator, 0.001)
    try:
        await kraken.submit(intent(2.0, kind=OrderKind.EXIT))
    finally:
        await kraken.close()
    [placed] = emulator.orders()
    assert placed.volume == Decimal("2")


@pytest.mark.usefixtures("coarse_lots")
async def test_canary_refuses_an_entry_the_cap_leaves_below_the_minimum(
        emulator: KrakenRestEmulator) -> None:
    kraken = await canary_venue(emulator, 0.0003)  # 0.0003 BTC buys < 0.02 ETH at this price
    try:
        with pytest.raises(VenueError) as caught:
            await kraken.submit(intent(1.0))
    finally:
        await kraken.close()
    assert (caught.value.error, caught.value.retryable) == (ErrorClass.INVALID_ORDER, False)
    assert "canary cap 0.0003 BTC" in caught.value.message
    assert add_order_calls(emulator) == 0


# --- reconciliation -----------------------------------------------------------------------


async def test_open_orders_show_orders_placed_outside_the_bot(
        emulator: KrakenRestEmulator, venue: KrakenVenue) -> None:
    await venue.submit(intent(0.5))  # fills at once: not open
    orphan = emulator.place_outside_order("ETH/BTC", "sell", "1.5", ordertype="limit",
                                          price=f"{PRICE * 2:.8f}")
    [report] = await venue.open_orders()
    assert report.exchange_order_id == orphan.txid
    assert report.pair == "ETH/BTC"
    assert report.quantity == 1.5
    assert report.state is OrderState.ACKNOWLEDGED
    assert report.client_order_id == ""


async def test_balances_are_free_amounts_in_ws_v2_spelling(
        emulator: KrakenRestEmulator, venue: KrakenVenue) -> None:
    await venue.submit(intent(0.5))
    emulator.place_outside_order("ETH/BTC", "sell", "1.5", ordertype="limit",
                                 price=f"{PRICE * 2:.8f}")  # holds 1.5 ETH
    balances = await venue.balances()
    assert "XBT" not in balances and "XXBT" not in balances
    spent = 0.5 * PRICE * (1 + FEE_RATE)
    assert balances["BTC"] == pytest.approx(1.0 - spent, rel=1e-6)
    assert balances["ETH"] == pytest.approx(10.0 + 0.5 - 1.5)


# --- secrets and rate limiting ------------------------------------------------------------


async def test_neither_key_nor_secret_reaches_any_log(
        emulator: KrakenRestEmulator, venue: KrakenVenue,
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    order = intent(0.5)
    await venue.submit(order)
    await venue.lookup(order)
    await venue.balances()
    assert "AddOrder" in caplog.text  # ccxt did log its requests
    assert KEY not in caplog.text
    assert SECRET not in caplog.text


async def test_calls_wait_for_the_configured_rate(emulator: KrakenRestEmulator) -> None:
    waits: list[float] = []

    async def record(seconds: float) -> None:
        waits.append(seconds)

    kraken = KrakenVenue(KEY, SECRET, rest_url=emulator.url, rate_limit_per_second=2.0,
                         clock=lambda: 0.0, sleep=record)
    try:
        order = intent(0.5)
        await kraken.submit(order)  # Assets, AssetPairs, AddOrder
        await kraken.lookup(order)  # OpenOrders, ClosedOrders
    finally:
        await kraken.close()
    # a bucket of 2 at 2 per second, on a clock that stands still: the third call waits
    # half a second, every later one half a second more
    assert waits == pytest.approx([0.5, 1.0, 1.5])
