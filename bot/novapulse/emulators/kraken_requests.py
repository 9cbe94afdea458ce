"""Kraken private request parameters, checked as Kraken checks them, into typed requests.

Each parser raises KrakenError with the string Kraken answers for the first bad argument.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Literal

from novapulse.emulators import kraken_errors as errors
from novapulse.emulators.kraken_errors import KrakenError
from novapulse.emulators.kraken_pairs import EmulatedPair

Side = Literal["buy", "sell"]
OrderType = Literal["market", "limit"]

# cl_ord_id comes in three formats: a long UUID (36 characters with hyphens), a short UUID
# (32 hex digits) or free text of at most 18 characters.
_LONG_UUID = re.compile(r"^[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}$", re.IGNORECASE)
_SHORT_UUID = re.compile(r"^[0-9a-f]{32}$", re.IGNORECASE)
_FREE_TEXT = re.compile(r"^[\x21-\x7e]{1,18}$")
_SIDES: dict[str, Side] = {"buy": "buy", "sell": "sell"}
_ORDER_TYPES: dict[str, OrderType] = {"market": "market", "limit": "limit"}
_INT32 = range(-(2**31), 2**31)
_TRUE = {"true", "1"}


@dataclass(frozen=True, slots=True)
class OrderRequest:
    pair: EmulatedPair
    side: Side
    ordertype: OrderType
    volume: Decimal
    price: Decimal | None  # the limit price; None for market orders
    cl_ord_id: str | None = None
    userref: int | None = None
    validate: bool = False


@dataclass(frozen=True, slots=True)
class OrderFilter:
    """What OpenOrders / ClosedOrders restrict their answer to."""

    userref: int | None = None
    cl_ord_id: str | None = None
    with_trades: bool = False
    start: str | None = None  # a timestamp or an order's txid (its opentm)
    end: str | None = None
    offset: int = 0


def is_valid_cl_ord_id(value: str) -> bool:
    return bool(_LONG_UUID.match(value) or _SHORT_UUID.match(value) or _FREE_TEXT.match(value))


def parse_add_order(params: Mapping[str, str], pairs: Iterable[EmulatedPair]) -> OrderRequest:
    pair = find_pair(params.get("pair"), pairs)
    side = _SIDES.get(params.get("type", ""))
    if side is None:
        raise KrakenError(errors.invalid_argument("type"))
    ordertype = _ORDER_TYPES.get(params.get("ordertype", ""))
    if ordertype is None:
        # Kraken has more order types; the emulator trades these two.
        raise KrakenError(errors.invalid_argument("ordertype"))
    if "viqc" in params.get("oflags", "").split(","):
        raise KrakenError(errors.invalid_argument("viqc"))
    volume = _decimal(params.get("volume"), "volume")
    if _decimals(volume) > pair.rules.lot_decimals:
        raise KrakenError(errors.invalid_argument("volume"))
    price = None
    if ordertype == "limit":
        price = _decimal(params.get("price"), "price")
        if _decimals(price) > pair.rules.pair_decimals:
            raise KrakenError(errors.price_precision(pair.altname, pair.rules.pair_decimals))
    cl_ord_id = params.get("cl_ord_id")
    userref = parse_userref(params.get("userref"))
    if cl_ord_id is not None and userref is not None:
        raise KrakenError(errors.INVALID_ARGUMENTS)  # the two are mutually exclusive
    if cl_ord_id is not None and not is_valid_cl_ord_id(cl_ord_id):
        raise KrakenError(errors.invalid_argument("cl_ord_id"))
    return OrderRequest(pair, side, ordertype, volume, price, cl_ord_id, userref,
                        parse_flag(params.get("validate")))


def parse_filter(params: Mapping[str, str]) -> OrderFilter:
    offset_text = params.get("ofs", "0")
    if not offset_text.isdigit():
        raise KrakenError(errors.invalid_argument("ofs"))
    return OrderFilter(
        userref=parse_userref(params.get("userref")),
        cl_ord_id=params.get("cl_ord_id"),
        with_trades=parse_flag(params.get("trades")),
        start=params.get("start"),
        end=params.get("end"),
        offset=int(offset_text),
    )


def parse_txids(value: str | None) -> list[str]:
    """QueryOrders' `txid`: required, comma-separated, at most 50."""
    txids = [t.strip() for t in (value or "").split(",") if t.strip()]
    if not txids or len(txids) > 50:
        raise KrakenError(errors.invalid_argument("txid"))
    return txids


def parse_userref(value: str | None) -> int | None:
    if value is None or value == "":
        return None
    try:
        userref = int(value)
    except ValueError:
        raise KrakenError(errors.invalid_argument("userref")) from None
    if userref not in _INT32:
        raise KrakenError(errors.invalid_argument("userref"))
    return userref


def parse_flag(value: str | None) -> bool:
    return (value or "").strip().lower() in _TRUE


def find_pair(name: str | None, pairs: Iterable[EmulatedPair]) -> EmulatedPair:
    if not name:
        raise KrakenError(errors.invalid_argument("pair"))
    for pair in pairs:
        if pair.named(name):
            return pair
    raise KrakenError(errors.UNKNOWN_PAIR)


def _decimal(value: str | None, name: str) -> Decimal:
    try:
        number = Decimal(value or "")
    except InvalidOperation:
        raise KrakenError(errors.invalid_argument(name)) from None
    if not number.is_finite() or number <= 0:
        raise KrakenError(errors.invalid_argument(name))
    return number


def _decimals(number: Decimal) -> int:
    exponent = number.normalize().as_tuple().exponent
    return max(0, -exponent) if isinstance(exponent, int) else 0
