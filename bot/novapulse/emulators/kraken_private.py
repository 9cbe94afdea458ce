"""Kraken's private REST endpoints over the emulated account, behind API-Key/API-Sign checks.

Served: Balance, BalanceEx, AddOrder, CancelOrder, QueryOrders, OpenOrders, ClosedOrders and
TradesHistory. Client order ids as Kraken handles them: AddOrder takes `cl_ord_id` (or
`userref`, not both) and refuses a cl_ord_id an open order already has; CancelOrder takes
`cl_ord_id` or `txid` (an order id or a userref); OpenOrders and ClosedOrders filter by
`cl_ord_id` and `userref`; QueryOrders takes `txid` (required) and filters by `userref` only,
as Kraken does.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import web

from novapulse.emulators import kraken_errors as errors
from novapulse.emulators import kraken_render as render
from novapulse.emulators.kraken_account import EmulatedAccount, EmulatedOrder
from novapulse.emulators.kraken_auth import ApiKeys
from novapulse.emulators.kraken_errors import KrakenError
from novapulse.emulators.kraken_pairs import EmulatedPair
from novapulse.emulators.kraken_requests import (
    OrderFilter,
    parse_add_order,
    parse_filter,
    parse_flag,
    parse_txids,
    parse_userref,
)
from novapulse.emulators.kraken_serving import Handler, kraken_error, kraken_result

Params = dict[str, str]
Action = Callable[[Params], Any]

PAGE_SIZE = 50
PRIVATE_ENDPOINTS = ("Balance", "BalanceEx", "AddOrder", "CancelOrder", "QueryOrders",
                     "OpenOrders", "ClosedOrders", "TradesHistory")


class PrivateApi:
    def __init__(self, account: EmulatedAccount, keys: ApiKeys,
                 pairs: Callable[[], Iterable[EmulatedPair]]) -> None:
        self.account = account
        self.keys = keys
        self._pairs = pairs

    def routes(self) -> list[tuple[str, str, Handler]]:
        actions: dict[str, Action] = {
            "Balance": lambda _: render.balances(self.account),
            "BalanceEx": lambda _: render.balances_extended(self.account),
            "AddOrder": self._add_order,
            "CancelOrder": self._cancel_order,
            "QueryOrders": self._query_orders,
            "OpenOrders": self._open_orders,
            "ClosedOrders": self._closed_orders,
            "TradesHistory": self._trades_history,
        }
        return [("POST", f"/0/private/{name}", self._serve(action))
                for name, action in actions.items()]

    def _serve(self, action: Action) -> Handler:
        async def handle(request: web.Request) -> web.StreamResponse:
            body = await request.read()
            try:
                params = _params(body, request.content_type)
                self.keys.authenticate(request.headers.get("API-Key"),
                                       request.headers.get("API-Sign"), request.path, body,
                                       params.get("nonce"))
                self.account.settle()
                return kraken_result(action(params))
            except KrakenError as exc:
                return kraken_error(exc.message)

        return handle

    # --- endpoints --------------------------------------------------------------------

    def _add_order(self, params: Params) -> dict[str, Any]:
        request = parse_add_order(params, self._pairs())
        order = self.account.add_order(request)
        text = render.describe(request.pair, request.side, request.volume, request.price)
        result: dict[str, Any] = {"descr": {"order": text}}
        if order is not None:
            result["txid"] = [order.txid]
        return result

    def _cancel_order(self, params: Params) -> dict[str, Any]:
        if cl_ord_id := params.get("cl_ord_id"):
            targets = self.account.by_cl_ord_id(cl_ord_id)
        elif txid := params.get("txid"):
            targets = self.account.by_txid_or_userref(txid)
        else:
            raise KrakenError(errors.invalid_argument("txid"))
        return {"count": self.account.cancel(targets)}

    def _query_orders(self, params: Params) -> dict[str, Any]:
        txids = parse_txids(params.get("txid"))
        userref = parse_userref(params.get("userref"))
        with_trades = parse_flag(params.get("trades"))
        result = {}
        for txid in txids:
            order = self.account.orders.get(txid)
            if order is None:
                raise KrakenError(errors.INVALID_ORDER)
            if userref is None or order.userref == userref:
                result[txid] = render.order_info(order, with_trades=with_trades)
        return result

    def _open_orders(self, params: Params) -> dict[str, Any]:
        found = self._filtered(self.account.open_orders(), parse_filter(params))
        return {"open": found}

    def _closed_orders(self, params: Params) -> dict[str, Any]:
        selector = parse_filter(params)
        orders = [o for o in self.account.closed_orders() if self._in_window(o, selector)]
        found = self._filtered(orders, selector)
        page = dict(list(found.items())[selector.offset: selector.offset + PAGE_SIZE])
        return {"closed": page, "count": len(found)}

    def _trades_history(self, params: Params) -> dict[str, Any]:
        selector = parse_filter(params)
        start, end = self._bound(selector.start, "start"), self._bound(selector.end, "end")
        trades = [t for t in reversed(self.account.trades.values())
                  if (start is None or t.time > start) and (end is None or t.time < end)]
        page = trades[selector.offset: selector.offset + PAGE_SIZE]
        return {"trades": {t.trade_id: render.trade_info(t) for t in page}, "count": len(trades)}

    # --- selection --------------------------------------------------------------------

    def _filtered(self, orders: Iterable[EmulatedOrder], selector: OrderFilter) -> dict[str, Any]:
        """Newest first, restricted to a userref and a cl_ord_id when given."""
        return {
            o.txid: render.order_info(o, with_trades=selector.with_trades)
            for o in reversed(list(orders))
            if (selector.userref is None or o.userref == selector.userref)
            and (selector.cl_ord_id is None or o.cl_ord_id == selector.cl_ord_id)
        }

    def _in_window(self, order: EmulatedOrder, selector: OrderFilter) -> bool:
        """ClosedOrders' start/end (exclusive), judged on open or close time (`closetime=both`)."""
        start, end = self._bound(selector.start, "start"), self._bound(selector.end, "end")
        times = [t for t in (order.opentm, order.closetm) if t is not None]
        return any((start is None or t > start) and (end is None or t < end) for t in times)

    def _bound(self, value: str | None, name: str) -> float | None:
        """A start/end: a unix timestamp, or an order's txid meaning its open time."""
        if value is None or value == "":
            return None
        order = self.account.orders.get(value)
        if order is not None:
            return order.opentm
        try:
            return float(value)
        except ValueError:
            raise KrakenError(errors.invalid_argument(name)) from None


def _params(body: bytes, content_type: str) -> Params:
    text = body.decode("utf-8", errors="replace")
    if content_type == "application/json":
        try:
            data = json.loads(text or "{}")
        except json.JSONDecodeError:
            raise KrakenError(errors.INVALID_ARGUMENTS) from None
        if not isinstance(data, dict):
            raise KrakenError(errors.INVALID_ARGUMENTS)
        return {str(k): v if isinstance(v, str) else json.dumps(v) for k, v in data.items()}
    return dict(parse_qsl(text, keep_blank_values=True))
