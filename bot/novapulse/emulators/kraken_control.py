"""The emulator's HTTP control API, under `/_emulator/`, for tests in other processes.

    GET    /_emulator/orders[?status=open|closed|canceled]   every order the exchange holds
    POST   /_emulator/orders   {pair, type, volume, ordertype?, price?, cl_ord_id?, userref?}
                                an order placed outside the bot (an orphan)
    POST   /_emulator/orders/{ref}/fill    {price?}          filled outside the bot
    POST   /_emulator/orders/{ref}/cancel                    cancelled outside the bot
    DELETE /_emulator/orders/{ref}                           vanishes, trades and all (a ghost)
    GET    /_emulator/balances;  POST {ASSET: amount, ...}   read / set balances
    GET    /_emulator/faults;    POST {spec} or {endpoint, fault, times?};  DELETE (disarm all)
    GET    /_emulator/market;    POST {now?, prices?: {PAIR: price|null}}

`ref` is a txid, a cl_ord_id or a userref. Refusals answer 400 (Kraken's string for an order
Kraken would refuse), unknown orders 404. No authentication: bind the emulator to loopback.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

from aiohttp import web

from novapulse.emulators import kraken_render as render
from novapulse.emulators.kraken_errors import KrakenError
from novapulse.emulators.kraken_faults import FaultSpecError
from novapulse.emulators.kraken_serving import Handler

if TYPE_CHECKING:
    from novapulse.emulators.kraken_rest import KrakenRestEmulator

PREFIX = "/_emulator"
_STATUSES = ("open", "closed", "canceled")


class ControlApi:
    def __init__(self, emulator: KrakenRestEmulator) -> None:
        self.emulator = emulator

    def routes(self) -> list[tuple[str, str, Handler]]:
        return [
            ("GET", f"{PREFIX}/orders", self._orders),
            ("POST", f"{PREFIX}/orders", self._place_outside),
            ("POST", f"{PREFIX}/orders/{{ref}}/fill", self._fill),
            ("POST", f"{PREFIX}/orders/{{ref}}/cancel", self._cancel),
            ("DELETE", f"{PREFIX}/orders/{{ref}}", self._forget),
            ("GET", f"{PREFIX}/balances", self._balances),
            ("POST", f"{PREFIX}/balances", self._set_balances),
            ("GET", f"{PREFIX}/faults", self._faults),
            ("POST", f"{PREFIX}/faults", self._add_faults),
            ("DELETE", f"{PREFIX}/faults", self._clear_faults),
            ("GET", f"{PREFIX}/market", self._market),
            ("POST", f"{PREFIX}/market", self._set_market),
        ]

    async def _orders(self, request: web.Request) -> web.Response:
        status = request.query.get("status")
        if status is not None and status not in _STATUSES:
            return _refused(f"status must be one of {', '.join(_STATUSES)}")
        orders = self.emulator.orders(status)  # type: ignore[arg-type]
        return web.json_response({"orders": [render.emulator_order(o) for o in orders]})

    async def _place_outside(self, request: web.Request) -> web.Response:
        body = await _json_object(request)
        try:
            order = self.emulator.place_outside_order(
                str(body.get("pair", "")), str(body.get("type", "")), str(body.get("volume", "")),
                ordertype=str(body.get("ordertype", "market")),
                price=None if body.get("price") is None else str(body["price"]),
                cl_ord_id=body.get("cl_ord_id"), userref=body.get("userref"),
            )
        except (KrakenError, KeyError) as exc:
            return _refused(exc.message if isinstance(exc, KrakenError) else str(exc.args[0]))
        return web.json_response({"order": render.emulator_order(order)}, status=201)

    async def _fill(self, request: web.Request) -> web.Response:
        body = await _json_object(request)
        price = _decimal(body["price"], "price") if body.get("price") is not None else None
        try:
            orders = self.emulator.fill_outside(request.match_info["ref"], price)
        except KeyError as exc:
            return _not_found(str(exc.args[0]))
        return web.json_response({"orders": [render.emulator_order(o) for o in orders]})

    async def _cancel(self, request: web.Request) -> web.Response:
        try:
            count = self.emulator.cancel_outside(request.match_info["ref"])
        except KrakenError as exc:
            return _not_found(exc.message)
        return web.json_response({"count": count})

    async def _forget(self, request: web.Request) -> web.Response:
        try:
            orders = self.emulator.forget_order(request.match_info["ref"])
        except KeyError as exc:
            return _not_found(str(exc.args[0]))
        return web.json_response({"forgotten": [o.txid for o in orders]})

    async def _balances(self, request: web.Request) -> web.Response:
        return web.json_response(render.balances(self.emulator.account))

    async def _set_balances(self, request: web.Request) -> web.Response:
        body = await _json_object(request)
        amounts = {asset: _decimal(amount, asset) for asset, amount in body.items()}
        try:
            for asset, amount in amounts.items():
                self.emulator.set_balance(asset, amount)
        except ValueError as exc:
            return _refused(str(exc))
        return web.json_response(render.balances(self.emulator.account))

    async def _faults(self, request: web.Request) -> web.Response:
        return web.json_response(self.emulator.faults.report())

    async def _add_faults(self, request: web.Request) -> web.Response:
        body = await _json_object(request)
        try:
            if "spec" in body:
                armed = self.emulator.schedule_faults(str(body["spec"]))
            else:
                armed = self.emulator.inject_fault(str(body.get("endpoint", "")),
                                                   str(body.get("fault", "")),
                                                   int(body.get("times", 1)))
        except (FaultSpecError, ValueError) as exc:
            return _refused(str(exc))
        return web.json_response({"armed": [f.as_dict() for f in armed]})

    async def _clear_faults(self, request: web.Request) -> web.Response:
        self.emulator.faults.clear()
        return web.json_response(self.emulator.faults.report())

    async def _market(self, request: web.Request) -> web.Response:
        return web.json_response(self.emulator.market.state())

    async def _set_market(self, request: web.Request) -> web.Response:
        body = await _json_object(request)
        try:
            if "now" in body:
                now = body["now"]
                self.emulator.set_now(None if now is None else float(now))
            for pair, price in (body.get("prices") or {}).items():
                self.emulator.set_price(pair, None if price is None else _decimal(price, pair))
        except (KeyError, ValueError, TypeError) as exc:
            return _refused(str(exc.args[0]) if exc.args else str(exc))
        return web.json_response(self.emulator.market.state())


async def _json_object(request: web.Request) -> dict[str, Any]:
    if not request.can_read_body:
        return {}
    try:
        body = await request.json()
    except ValueError:
        raise web.HTTPBadRequest(text="body must be a JSON object") from None
    if not isinstance(body, dict):
        raise web.HTTPBadRequest(text="body must be a JSON object")
    return body


def _decimal(value: Any, name: str) -> Decimal:
    try:
        return Decimal(str(value))
    except InvalidOperation:
        raise web.HTTPBadRequest(text=f"{name}: not a number: {value!r}") from None


def _refused(message: str) -> web.Response:
    return web.json_response({"error": message}, status=400)


def _not_found(message: str) -> web.Response:
    return web.json_response({"error": message}, status=404)
