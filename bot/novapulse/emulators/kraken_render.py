"""The emulated account in Kraken's response shapes (numbers as strings, as Kraken sends them)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from novapulse.emulators.kraken_account import EmulatedAccount, EmulatedOrder, EmulatedTrade
from novapulse.emulators.kraken_pairs import EmulatedPair, asset_id

BALANCE_DECIMALS = 10


def _fixed(value: Decimal, decimals: int) -> str:
    return f"{value:.{decimals}f}"


def describe(pair: EmulatedPair, side: str, volume: Decimal, limit_price: Decimal | None) -> str:
    """`buy 1.25000000 XBTUSD @ limit 37500.0`: the text AddOrder answers in `descr.order`."""
    where = "market"
    if limit_price is not None:
        where = f"limit {_fixed(limit_price, pair.rules.pair_decimals)}"
    return f"{side} {_fixed(volume, pair.rules.lot_decimals)} {pair.altname} @ {where}"


def order_description(order: EmulatedOrder) -> dict[str, str]:
    price = "0"
    if order.limit_price is not None:
        price = _fixed(order.limit_price, order.pair.rules.pair_decimals)
    return {
        "pair": order.pair.altname,
        "type": order.side,
        "ordertype": order.ordertype,
        "price": price,
        "price2": "0",
        "leverage": "none",
        "order": describe(order.pair, order.side, order.volume, order.limit_price),
        "close": "",
    }


def order_info(order: EmulatedOrder, *, with_trades: bool) -> dict[str, Any]:
    rules = order.pair.rules
    info: dict[str, Any] = {
        "refid": None,
        "userref": order.userref,
        "status": order.status,
        "reason": order.reason,
        "opentm": order.opentm,
        "starttm": 0,
        "expiretm": 0,
        "descr": order_description(order),
        "vol": _fixed(order.volume, rules.lot_decimals),
        "vol_exec": _fixed(order.vol_exec, rules.lot_decimals),
        "cost": _fixed(order.cost, rules.cost_decimals),
        "fee": _fixed(order.fee, rules.cost_decimals),
        "price": _fixed(order.average_price, rules.pair_decimals),
        "stopprice": "0.00000000",
        "limitprice": "0.00000000",
        "misc": "",
        "oflags": "fciq",
    }
    if order.cl_ord_id is not None:
        info["cl_ord_id"] = order.cl_ord_id
    if order.closetm is not None:
        info["closetm"] = order.closetm
    if with_trades and order.trade_ids:
        info["trades"] = list(order.trade_ids)
    return info


def trade_info(trade: EmulatedTrade) -> dict[str, Any]:
    rules = trade.pair.rules
    return {
        "ordertxid": trade.txid,
        "postxid": "TKH2SE-M7IF5-CFI7LT",
        "pair": trade.pair.pair_id,
        "time": trade.time,
        "type": trade.side,
        "ordertype": trade.ordertype,
        "price": _fixed(trade.price, rules.pair_decimals),
        "cost": _fixed(trade.cost, rules.cost_decimals),
        "fee": _fixed(trade.fee, rules.cost_decimals),
        "vol": _fixed(trade.volume, rules.lot_decimals),
        "margin": "0.00000000",
        "leverage": "0",
        "misc": "",
        "maker": trade.maker,
    }


def balances(account: EmulatedAccount) -> dict[str, str]:
    return {asset_id(code): _fixed(amount, BALANCE_DECIMALS)
            for code, amount in sorted(account.balances.items())}


def balances_extended(account: EmulatedAccount) -> dict[str, dict[str, str]]:
    return {
        asset_id(code): {
            "balance": _fixed(amount, BALANCE_DECIMALS),
            "hold_trade": _fixed(account.held(code), BALANCE_DECIMALS),
        }
        for code, amount in sorted(account.balances.items())
    }


def emulator_order(order: EmulatedOrder) -> dict[str, Any]:
    """An order as the control endpoint lists it: every field a test may check, plainly named."""
    return {
        "txid": order.txid,
        "pair": order.pair.wsname,
        "side": order.side,
        "ordertype": order.ordertype,
        "volume": str(order.volume),
        "limit_price": None if order.limit_price is None else str(order.limit_price),
        "status": order.status,
        "vol_exec": str(order.vol_exec),
        "cost": str(order.cost),
        "fee": str(order.fee),
        "average_price": str(order.average_price),
        "cl_ord_id": order.cl_ord_id,
        "userref": order.userref,
        "source": order.source,
        "opentm": order.opentm,
        "closetm": order.closetm,
        "trades": list(order.trade_ids),
    }
