"""The Kraken venue's pure parts: volume rounding and minimums, the canary cap, WS v2 pair
names from ccxt's markets, order reports from ccxt's orders, and runbook 4's error classes
from the exceptions ccxt raises for Kraken's real error strings — with the API key and secret
in no message and no log."""

from __future__ import annotations

import base64
import json
import logging
from decimal import Decimal
from typing import Any

import aiohttp
import ccxt.async_support as ccxt_async
import pytest
from ccxt.base import errors as ccxt_errors

from novapulse.execution.kraken import KrakenVenue
from novapulse.execution.kraken_errors import classify, venue_error
from novapulse.execution.kraken_markets import pair_rules, ws_v2_pair
from novapulse.execution.kraken_reports import order_report
from novapulse.execution.precision import PairRules, round_volume, size_order
from novapulse.execution.venue import ErrorClass, OrderIntent, OrderState, Venue, VenueError
from novapulse.models import OrderKind, Side

KEY = "novapulse-test-key-7f3a"
SECRET = base64.b64encode(b"a very secret secret for HMAC-SHA512 " * 2).decode()

ETH_BTC = PairRules(
    pair="ETH/BTC",
    symbol="ETH/BTC",
    quote="BTC",
    volume_step=Decimal("0.00000001"),
    min_volume=Decimal("0.02"),
    min_cost=Decimal("0.0002"),
)


def intent(quantity: float, price: float = 0.05, kind: OrderKind = OrderKind.ENTRY) -> OrderIntent:
    return OrderIntent(
        client_order_id="5f0c7d1e-3c1b-5a43-9a55-0d3f4b2f6a11",
        trade_id="t-1",
        pair="ETH/BTC",
        side=Side.BUY if kind is OrderKind.ENTRY else Side.SELL,
        kind=kind,
        quantity=quantity,
        price=price,
        ts=1_500_000_000.0,
    )


# --- precision and minimums ---------------------------------------------------------------


def test_volume_rounds_down_to_the_lot_precision() -> None:
    assert round_volume(ETH_BTC, 0.123456789) == Decimal("0.12345678")
    assert round_volume(ETH_BTC, 0.1) == Decimal("0.10000000")
    assert size_order(ETH_BTC, intent(0.999999999)).volume == Decimal("0.99999999")


def test_volume_below_the_minimum_is_refused_naming_pair_volume_and_precision() -> None:
    with pytest.raises(VenueError) as caught:
        size_order(ETH_BTC, intent(0.019999999))
    error = caught.value
    assert error.error is ErrorClass.INVALID_ORDER
    assert error.retryable is False
    assert error.message == ("ETH/BTC: volume 0.01999999 is below the minimum order 0.02 "
                             "(volume precision 8 decimals)")


def test_cost_below_the_minimum_is_refused() -> None:
    with pytest.raises(VenueError) as caught:
        size_order(ETH_BTC, intent(0.03, price=0.005))
    assert caught.value.error is ErrorClass.INVALID_ORDER
    assert caught.value.message == (
        "ETH/BTC: volume 0.03000000 at 0.005 costs 0.00015 BTC, below the minimum cost 0.0002 "
        "BTC (volume precision 8 decimals)")


@pytest.mark.parametrize("quantity", [0.0, -1.0, float("nan"), float("inf")])
def test_a_nonsensical_quantity_is_refused(quantity: float) -> None:
    with pytest.raises(VenueError, match="quantity must be a positive number") as caught:
        size_order(ETH_BTC, intent(quantity))
    assert caught.value.error is ErrorClass.INVALID_ORDER


# --- canary cap ---------------------------------------------------------------------------


def test_canary_cuts_an_entry_above_the_cap_down_to_it() -> None:
    sized = size_order(ETH_BTC, intent(2.0, price=0.07), canary_max_notional=0.01)
    assert sized.volume == Decimal("0.14285714")  # 0.01 / 0.07, rounded down
    assert sized.volume * Decimal("0.07") <= Decimal("0.01")
    assert sized.resized_from == 2.0
    assert sized.note == "canary cap: entry resized from 2 to 0.14285714"


def test_canary_leaves_an_entry_within_the_cap_alone() -> None:
    sized = size_order(ETH_BTC, intent(0.1, price=0.07), canary_max_notional=0.01)
    assert sized.volume == Decimal("0.10000000")
    assert sized.resized_from is None


def test_canary_never_resizes_an_exit() -> None:
    sized = size_order(ETH_BTC, intent(2.0, price=0.07, kind=OrderKind.EXIT),
                       canary_max_notional=0.01)
    assert sized.volume == Decimal("2.00000000")


def test_canary_refuses_an_entry_the_cap_leaves_below_the_minimum() -> None:
    with pytest.raises(VenueError) as caught:
        size_order(ETH_BTC, intent(2.0, price=0.07), canary_max_notional=0.001)
    error = caught.value
    assert error.error is ErrorClass.INVALID_ORDER and error.retryable is False
    assert error.message == (
        "ETH/BTC: volume 0.01428571 is below the minimum order 0.02 (volume precision 8 "
        "decimals); the canary cap 0.001 BTC allows no more than that (intent was 2)")


# --- pair names ---------------------------------------------------------------------------


def _market(symbol: str, wsname: str, step: float, ordermin: float,
            costmin: float | None) -> dict[str, Any]:
    return {
        "symbol": symbol, "wsId": wsname, "spot": True,
        "precision": {"amount": step, "price": 1e-5},
        "limits": {"amount": {"min": ordermin}, "cost": {"min": costmin}},
    }


def test_pairs_are_keyed_by_their_ws_v2_names() -> None:
    assert ws_v2_pair("ETH/XBT") == "ETH/BTC"
    assert ws_v2_pair("XDG/XBT") == "DOGE/BTC"
    rules = pair_rules({
        "ETH/BTC": _market("ETH/BTC", "ETH/XBT", 1e-08, 0.002, 0.00002),
        "DOGE/BTC": _market("DOGE/BTC", "XDG/XBT", 1.0, 50.0, None),
    })
    assert set(rules) == {"ETH/BTC", "DOGE/BTC"}
    eth = rules["ETH/BTC"]
    assert (eth.symbol, eth.quote, eth.volume_step, eth.min_volume, eth.min_cost) == (
        "ETH/BTC", "BTC", Decimal("1E-8"), Decimal("0.002"), Decimal("0.00002"))
    assert eth.volume_decimals == 8
    doge = rules["DOGE/BTC"]
    assert doge.volume_decimals == 0 and doge.min_cost == 0


# --- error taxonomy -----------------------------------------------------------------------


def _raised_by_ccxt(kraken_error: str, status: int = 200) -> Exception:
    """The exception ccxt's Kraken client raises for a response carrying `kraken_error`."""
    exchange = ccxt_async.kraken()
    body = json.dumps({"error": [kraken_error]})
    try:
        exchange.handle_errors(status, "OK", "https://api.kraken.com/0/private/AddOrder", "POST",
                               {}, body, json.loads(body), {}, "")
        exchange.handle_http_status_code(status, "", "https://api.kraken.com/0/private/AddOrder",
                                         "POST", body)
    except Exception as exc:
        return exc
    raise AssertionError(f"ccxt raised nothing for {kraken_error}")


@pytest.mark.parametrize(("kraken_error", "expected", "retryable"), [
    ("EAPI:Invalid key", ErrorClass.AUTHENTICATION, False),
    ("EGeneral:Permission denied", ErrorClass.AUTHENTICATION, False),
    ("EOrder:Insufficient funds", ErrorClass.INSUFFICIENT_FUNDS, False),
    ("EOrder:Order minimum not met", ErrorClass.INVALID_ORDER, False),
    ("EGeneral:Invalid arguments:volume", ErrorClass.INVALID_ORDER, False),
    ("EQuery:Invalid asset pair", ErrorClass.INVALID_ORDER, False),
    ("EAPI:Rate limit exceeded", ErrorClass.RATE_LIMIT, True),
    ("EOrder:Rate limit exceeded", ErrorClass.RATE_LIMIT, True),
    ("EService: Throttled: 1700000000", ErrorClass.RATE_LIMIT, True),
    ("EService:Unavailable", ErrorClass.UNAVAILABLE, True),
    ("EService:Market in cancel_only mode", ErrorClass.UNAVAILABLE, True),
    ("EAPI:Invalid signature", ErrorClass.AUTHENTICATION, False),
    ("EOrder:Cost minimum not met", ErrorClass.INVALID_ORDER, False),
    ("EQuery:Unknown asset pair", ErrorClass.INVALID_ORDER, False),
    ("EAPI:Invalid nonce", ErrorClass.NETWORK, True),
    ("EGeneral:Unknown method", ErrorClass.OTHER, False),
])
def test_kraken_errors_take_runbook_4s_classes(kraken_error: str, expected: ErrorClass,
                                               retryable: bool) -> None:
    error = venue_error(_raised_by_ccxt(kraken_error))
    assert (error.error, error.retryable) == (expected, retryable)
    assert kraken_error in error.message
    assert not error.message.startswith("kraken {")  # the exchange's text, not ccxt's wrapping


def test_the_exchanges_text_is_kept_verbatim() -> None:
    error = venue_error(_raised_by_ccxt("EOrder:Insufficient funds"))
    assert error.message == "EOrder:Insufficient funds"
    assert str(error) == "InsufficientFunds: EOrder:Insufficient funds"


def test_http_503_is_unavailable() -> None:
    error = venue_error(_raised_by_ccxt("EService:Unavailable", status=503))
    assert (error.error, error.retryable) == (ErrorClass.UNAVAILABLE, True)


def test_a_timeout_is_network_and_says_to_look_up_first() -> None:
    error = venue_error(ccxt_errors.RequestTimeout("kraken POST https://x/0/private/AddOrder"))
    assert (error.error, error.retryable) == (ErrorClass.NETWORK, True)
    assert "look it up by client order id before sending it again" in error.message


def _broken_connection(cause: BaseException) -> ccxt_errors.ExchangeNotAvailable:
    exc = ccxt_errors.ExchangeNotAvailable("kraken POST https://x/0/private/AddOrder")
    exc.__cause__ = cause
    return exc


def test_a_connection_lost_mid_request_is_network_the_order_may_exist() -> None:
    lost = _broken_connection(aiohttp.ServerDisconnectedError())
    assert classify(lost) == (ErrorClass.NETWORK, True)


def test_a_connection_never_opened_is_unavailable() -> None:
    refused = _broken_connection(aiohttp.ClientConnectorError(
        aiohttp.client_reqrep.ConnectionKey("x", 443, True, True, None, None, None),
        OSError(111, "Connection refused")))
    assert classify(refused) == (ErrorClass.UNAVAILABLE, True)


def test_secrets_are_scrubbed_from_messages() -> None:
    leaky = ccxt_errors.ExchangeError(f"kraken failed for {KEY} with {SECRET}")
    error = venue_error(leaky, secrets=(KEY, SECRET))
    assert KEY not in str(error) and SECRET not in str(error)
    assert "***" in error.message


# --- construction and logs ----------------------------------------------------------------


@pytest.mark.parametrize(("key", "secret", "message"), [
    ("", SECRET, "the Kraken API key is empty"),
    (KEY, "  ", "the Kraken API secret is empty"),
    (KEY, "not base64 at all!", "the Kraken API secret is not base64"),
])
def test_unusable_credentials_are_refused_without_naming_them(key: str, secret: str,
                                                              message: str) -> None:
    with pytest.raises(ValueError, match=message) as caught:
        KrakenVenue(key, secret)
    assert secret.strip() == "" or secret not in str(caught.value)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"rest_url": "127.0.0.1:8080"}, "rest_url must be an http"),
    ({"canary_max_notional": 0.0}, "canary_max_notional must be a positive number"),
    ({"rate_limit_per_second": 0.0}, "rate_limit_per_second must be positive"),
])
def test_bad_settings_are_refused(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        KrakenVenue(KEY, SECRET, **kwargs)


async def test_the_venue_names_neither_key_nor_secret() -> None:
    venue: Venue = KrakenVenue(KEY, SECRET, rest_url="http://127.0.0.1:9/")  # a Venue, typed
    assert isinstance(venue, KrakenVenue)
    try:
        assert KEY not in repr(venue) and SECRET not in repr(venue)
        assert venue.rest_url == "http://127.0.0.1:9"
    finally:
        await venue.close()


async def test_ccxts_request_logging_never_shows_the_api_key(
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    venue = KrakenVenue(KEY, SECRET)
    try:
        # what ccxt logs before every request: method, url, headers, body
        venue._exchange.logger.debug(
            "%s %s, Request: %s %s", "POST", "https://api.kraken.com/0/private/AddOrder",
            {"API-Key": KEY, "API-Sign": "c2lnbmF0dXJl", "Content-Type": "x"}, "nonce=1")
    finally:
        await venue.close()
    assert "AddOrder" in caplog.text
    assert KEY not in caplog.text
    assert "c2lnbmF0dXJl" not in caplog.text
    assert "'API-Key': '***'" in caplog.text


# --- order reports ------------------------------------------------------------------------


def _ccxt_order(status: str, filled: float, *, fee: float = 0.0, fee_currency: str = "BTC",
                average: float | None = 0.05) -> dict[str, Any]:
    """An order in ccxt's unified structure, as its Kraken client parses OpenOrders et al."""
    return {"id": "OABC12-DEF34-GHI567", "clientOrderId": "cid-1", "symbol": "ETH/BTC",
            "status": status, "amount": 2.0, "filled": filled, "average": average,
            "fee": {"cost": str(fee), "currency": fee_currency}}


@pytest.mark.parametrize(("status", "filled", "state"), [
    ("open", 0.0, OrderState.ACKNOWLEDGED),
    ("open", 0.5, OrderState.PARTIALLY_FILLED),
    ("closed", 2.0, OrderState.FILLED),
    ("canceled", 0.5, OrderState.CANCELLED),
    ("expired", 0.0, OrderState.CANCELLED),
    ("something new", 0.0, OrderState.UNKNOWN),
])
def test_kraken_statuses_become_order_states(status: str, filled: float,
                                             state: OrderState) -> None:
    report = order_report(_ccxt_order(status, filled), {"ETH/BTC": "ETH/BTC"})
    assert report.state is state
    assert report.filled_quantity == filled
    assert report.average_price == (0.05 if filled else None)
    assert (report.pair, report.quantity, report.exchange_order_id) == (
        "ETH/BTC", 2.0, "OABC12-DEF34-GHI567")


def test_a_fee_charged_in_the_base_currency_is_reported_in_the_quote() -> None:
    in_eth = order_report(_ccxt_order("closed", 2.0, fee=0.004, fee_currency="ETH"), {})
    assert in_eth.fee == pytest.approx(0.004 * 0.05)
    in_btc = order_report(_ccxt_order("closed", 2.0, fee=0.0002, fee_currency="BTC"), {})
    assert in_btc.fee == pytest.approx(0.0002)
