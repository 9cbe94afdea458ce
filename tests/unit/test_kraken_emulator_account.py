"""The emulated Kraken account: fills, fees, balances, holds, order checks, client order ids."""

from __future__ import annotations

import uuid
from decimal import Decimal

import pytest

from novapulse.emulators.kraken_account import EmulatedAccount
from novapulse.emulators.kraken_errors import KrakenError
from novapulse.emulators.kraken_pairs import EmulatedPair
from novapulse.emulators.kraken_requests import OrderRequest, parse_add_order
from novapulse.models import Candle

D = Decimal
PAIR = EmulatedPair("ETH/XBT", "ETH", "XBT", [Candle("ETH/BTC", 0, 0.1, 0.1, 0.1, 0.1, 1.0, 300)])
FEE = D("0.0026")


class Market:
    def __init__(self) -> None:
        self.price: Decimal | None = D("0.1")

    def price_of(self, pair: EmulatedPair) -> Decimal | None:
        return self.price


@pytest.fixture
def market() -> Market:
    return Market()


@pytest.fixture
def account(market: Market) -> EmulatedAccount:
    return EmulatedAccount(market.price_of, lambda: 1_700_000_000.0, FEE,
                           {"BTC": D("1"), "ETH": D("2")})


def order(**params: str) -> OrderRequest:
    base = {"pair": "XETHXXBT", "type": "buy", "ordertype": "market", "volume": "1"}
    return parse_add_order({**base, **params}, [PAIR])


def test_a_market_buy_fills_at_the_price_and_pays_the_fee_in_quote(
        account: EmulatedAccount) -> None:
    placed = account.add_order(order(volume="2"))
    assert placed is not None
    assert (placed.status, placed.vol_exec, placed.average_price) == ("closed", D(2), D("0.1"))
    assert placed.fee == D("0.00052000")  # 0.26 % of the 0.2 BTC cost
    assert account.balance("ETH") == D(4)
    assert account.balance("BTC") == D(1) - D("0.2") - D("0.00052")
    [trade] = account.trades_of(placed)
    assert (trade.price, trade.volume, trade.cost, trade.fee) == (D("0.1"), D(2), D("0.2"),
                                                                  D("0.00052"))


def test_a_market_sell_receives_the_cost_less_the_fee(account: EmulatedAccount) -> None:
    account.add_order(order(type="sell", volume="1.5"))
    assert account.balance("ETH") == D("0.5")
    assert account.balance("XBT") == D(1) + D("0.15") - D("0.00039")


def test_a_limit_order_that_does_not_cross_rests_and_holds_its_funds(
        account: EmulatedAccount) -> None:
    resting = account.add_order(order(ordertype="limit", price="0.05", volume="10"))
    assert resting is not None and resting.status == "open"
    assert account.balance("BTC") == D(1)
    assert account.held("BTC") == D("0.5") * (1 + FEE)
    with pytest.raises(KrakenError, match=r"^EOrder:Insufficient funds$"):
        account.add_order(order(volume="5"))  # 0.5 BTC + fee > what the resting order leaves


def test_a_limit_order_that_crosses_fills_at_once_at_the_market_price(
        account: EmulatedAccount) -> None:
    placed = account.add_order(order(ordertype="limit", price="0.2"))
    assert placed is not None
    assert (placed.status, placed.average_price) == ("closed", D("0.1"))


def test_a_resting_order_fills_at_its_limit_when_the_price_reaches_it(
        account: EmulatedAccount, market: Market) -> None:
    resting = account.add_order(order(type="sell", ordertype="limit", price="0.12"))
    assert resting is not None
    assert account.settle() == []
    market.price = D("0.13")
    assert account.settle() == [resting]
    assert (resting.status, resting.average_price) == ("closed", D("0.12"))
    assert account.balance("ETH") == D(1)


@pytest.mark.parametrize(
    ("params", "error"),
    [
        ({"type": "sell", "volume": "3"}, "EOrder:Insufficient funds"),
        ({"volume": "11"}, "EOrder:Insufficient funds"),
        ({"volume": "0.00009"}, "EOrder:Order minimum not met"),
        ({"ordertype": "limit", "price": "0.0000001", "volume": "1"},
         "EOrder:Cost minimum not met"),
    ],
)
def test_orders_kraken_would_refuse(account: EmulatedAccount, params: dict[str, str],
                                    error: str) -> None:
    with pytest.raises(KrakenError, match=f"^{error}$"):
        account.add_order(order(**params))
    assert account.orders == {}


@pytest.mark.parametrize(
    ("params", "error"),
    [
        ({"volume": "0.123456789"}, "EGeneral:Invalid arguments:volume"),
        ({"volume": "-1"}, "EGeneral:Invalid arguments:volume"),
        ({"volume": "lots"}, "EGeneral:Invalid arguments:volume"),
        ({"ordertype": "limit"}, "EGeneral:Invalid arguments:price"),
        ({"ordertype": "limit", "price": "0.123456789"},
         "EOrder:Invalid price:ETHXBT price can only be specified up to 8 decimals."),
        ({"pair": "DOGEUSD"}, "EQuery:Unknown asset pair"),
        ({"type": "hold"}, "EGeneral:Invalid arguments:type"),
        ({"ordertype": "stop-loss"}, "EGeneral:Invalid arguments:ordertype"),
        ({"cl_ord_id": "nineteen-characters"}, "EGeneral:Invalid arguments:cl_ord_id"),
        ({"cl_ord_id": "abc", "userref": "7"}, "EGeneral:Invalid arguments"),
        ({"userref": "4294967296"}, "EGeneral:Invalid arguments:userref"),
    ],
)
def test_malformed_arguments_get_krakens_strings(params: dict[str, str], error: str) -> None:
    with pytest.raises(KrakenError) as caught:
        order(**params)
    assert caught.value.message == error


@pytest.mark.parametrize("cl_ord_id", [str(uuid.uuid4()), uuid.uuid4().hex, "eighteen-chars-123"],
                         ids=["uuid", "short-uuid", "free-text"])
def test_the_three_client_order_id_formats_are_accepted(account: EmulatedAccount,
                                                        cl_ord_id: str) -> None:
    placed = account.add_order(order(cl_ord_id=cl_ord_id))
    assert placed is not None and placed.cl_ord_id == cl_ord_id


def test_a_client_order_id_is_unique_only_among_open_orders(account: EmulatedAccount) -> None:
    resting = account.add_order(order(ordertype="limit", price="0.05", cl_ord_id="exit-1"))
    assert resting is not None
    with pytest.raises(KrakenError, match=r"^EOrder:Duplicate order$"):
        account.add_order(order(cl_ord_id="exit-1"))
    assert account.cancel(account.by_cl_ord_id("exit-1")) == 1
    again = account.add_order(order(cl_ord_id="exit-1"))
    assert again is not None and again.status == "closed"
    filled_twice = account.add_order(order(cl_ord_id="exit-1"))  # the last one is closed too
    assert filled_twice is not None
    assert len(account.by_cl_ord_id("exit-1")) == 3


def test_validate_checks_without_placing(account: EmulatedAccount) -> None:
    assert account.add_order(order(validate="true")) is None
    assert account.orders == {} and account.balance("BTC") == D(1)
    with pytest.raises(KrakenError, match="Insufficient funds"):
        account.add_order(order(volume="100", validate="true"))


def test_cancel_by_userref_cancels_every_open_order_of_it(account: EmulatedAccount) -> None:
    for price in ("0.05", "0.06"):
        account.add_order(order(ordertype="limit", price=price, userref="42"))
    account.add_order(order(ordertype="limit", price="0.07", userref="43"))
    assert account.cancel(account.by_txid_or_userref("42")) == 2
    assert [o.userref for o in account.open_orders()] == [43]
    with pytest.raises(KrakenError, match=r"^EOrder:Unknown order$"):
        account.cancel(account.by_txid_or_userref("42"))


def test_no_price_yet_means_the_market_takes_no_orders(account: EmulatedAccount,
                                                       market: Market) -> None:
    market.price = None
    with pytest.raises(KrakenError, match=r"^EService:Market in cancel_only mode$"):
        account.add_order(order())


def test_outside_helpers_fill_and_forget_orders(account: EmulatedAccount) -> None:
    resting = account.add_order(order(ordertype="limit", price="0.05", cl_ord_id="orphan"))
    assert resting is not None
    [filled] = account.fill_outside("orphan", D("0.04"))
    assert (filled.status, filled.average_price) == ("closed", D("0.04"))
    assert account.balance("ETH") == D(3)
    account.forget(filled.txid)
    assert account.orders == {} and account.trades == {}
    assert account.balance("ETH") == D(3)  # the fill's effect stays: only the record is gone
    with pytest.raises(KeyError):
        account.forget(filled.txid)


def test_order_ids_look_like_krakens() -> None:
    account = EmulatedAccount(lambda pair: D("0.1"), lambda: 0.0, FEE, {"BTC": D(1)})
    placed = account.add_order(order())
    assert placed is not None
    assert [len(part) for part in placed.txid.split("-")] == [6, 5, 6]
    assert placed.txid[0] == "O" and placed.trade_ids[0][0] == "T"
