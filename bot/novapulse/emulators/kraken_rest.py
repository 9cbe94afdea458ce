"""A local Kraken REST API: public market data and a private spot account, with fault injection.

`KrakenRestEmulator` serves Kraken's public endpoints (Time, Assets, AssetPairs, OHLC) from
candle files and its private ones (Balance, BalanceEx, AddOrder, CancelOrder, QueryOrders,
OpenOrders, ClosedOrders, TradesHistory) over one emulated account, checking API-Key, API-Sign
and nonces as Kraken does. Point ccxt at it with
`exchange.urls['api'] = {'public': emulator.url, 'private': emulator.url}` (ccxt appends
`/0/public/...` and `/0/private/...` itself).

Faults are injected per endpoint and per call (`kraken_faults`); tests and users inspect and
steer the exchange through the Python methods below or the HTTP control API under
`/_emulator/` (`kraken_control`). `fail_requests()` makes every API request answer HTTP 503.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from decimal import Decimal
from pathlib import Path

from aiohttp import web

from novapulse.emulators.kraken_account import EmulatedAccount, EmulatedOrder, OrderStatus
from novapulse.emulators.kraken_auth import ApiKeys
from novapulse.emulators.kraken_control import ControlApi
from novapulse.emulators.kraken_faults import FaultPlan, ScheduledFault
from novapulse.emulators.kraken_market import ReplayedMarket
from novapulse.emulators.kraken_pairs import DEFAULT_FEE_PCT, REST_CODES, EmulatedPair, asset_id
from novapulse.emulators.kraken_private import PRIVATE_ENDPOINTS, PrivateApi
from novapulse.emulators.kraken_public import OHLC_MAX_ROWS, PUBLIC_ENDPOINTS, PublicApi
from novapulse.emulators.kraken_requests import parse_add_order
from novapulse.emulators.kraken_serving import (
    Handler,
    UnansweredRequests,
    endpoint_of,
    fault_middleware,
    kraken_error,
)
from novapulse.market.candle_files import describe_file, load_candles

__all__ = ["OHLC_MAX_ROWS", "EmulatedPair", "KrakenRestEmulator", "asset_id"]


class KrakenRestEmulator:
    def __init__(
        self,
        sources: list[tuple[Path, str | None]],
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        now: Callable[[], float] | None = None,
        api_key: str | None = None,
        api_secret: str | None = None,
        balances: Mapping[str, Decimal] | None = None,
        fee_pct: Decimal = DEFAULT_FEE_PCT,
        faults: str | None = None,
        hold_unanswered_s: float = 120.0,
    ) -> None:
        """`sources`: candle files, each optionally traded as another pair (`ALT/BTC`).

        `api_key`/`api_secret` (base64, as Kraken issues it) is the key pair private calls
        must be signed with; `balances` the account's starting funds by asset (BTC or XBT);
        `faults` a spec such as `AddOrder:timeout_after_accept@2`; an unanswered request is
        held `hold_unanswered_s` (or until `stop()`) and then its connection closed.
        """
        self.host = host
        self._requested_port = port
        pairs: dict[str, EmulatedPair] = {}
        for path, alias in sources:
            wsname = alias or describe_file(path)[0]
            base, _, quote = (REST_CODES.get(code, code) for code in wsname.partition("/"))
            pairs[wsname] = EmulatedPair(wsname, base, quote, load_candles(path, wsname))
        self.pairs = pairs
        self.market = ReplayedMarket(pairs, now)
        self.account = EmulatedAccount(self.market.price_of, self.market.now, fee_pct / 100,
                                       balances)
        self.keys = ApiKeys()
        if api_key is not None or api_secret is not None:
            self.keys.add(api_key or "", api_secret or "")
        self.faults = FaultPlan(PUBLIC_ENDPOINTS, PRIVATE_ENDPOINTS)
        self.faults.schedule(faults)
        self._unanswered = UnansweredRequests(hold_unanswered_s)
        self._public = PublicApi(self.market, fee_pct)
        self._private = PrivateApi(self.account, self.keys, lambda: self.pairs.values())
        self._control = ControlApi(self)
        self.requests: list[str] = []
        self._failure: tuple[int, str] | None = None
        self._runner: web.AppRunner | None = None
        self._port: int | None = None

    # --- lifecycle --------------------------------------------------------------------

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("emulator is not started")
        return self._port

    @property
    def url(self) -> str:
        """Base URL for ccxt's `urls['api']['public']` and `['private']`."""
        return f"http://{self.host}:{self.port}"

    async def start(self) -> None:
        self._unanswered.hold_again()
        app = web.Application(middlewares=[
            self._record_and_fail, fault_middleware(self.faults, self._unanswered),
        ])
        routes = self._public.routes() + self._private.routes() + self._control.routes()
        for method, path, handler in routes:
            app.router.add_route(method, path, handler)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self._requested_port)
        await site.start()
        self._port = int(self._runner.addresses[0][1])

    async def stop(self) -> None:
        self._unanswered.release_all()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # --- faults -----------------------------------------------------------------------

    def inject_fault(self, endpoint: str, fault: str, times: int = 1) -> list[ScheduledFault]:
        """The next `times` calls of `endpoint` (e.g. AddOrder) fail with `fault`."""
        return self.faults.inject(endpoint, fault, times)

    def schedule_faults(self, spec: str) -> list[ScheduledFault]:
        """Faults by call number since start: `AddOrder:timeout_after_accept@2,Balance:5xx@1`."""
        return self.faults.schedule(spec)

    def fail_requests(self, status: int = 503, error: str = "EService:Unavailable") -> None:
        self._failure = (status, error)

    def recover(self) -> None:
        self._failure = None

    @web.middleware
    async def _record_and_fail(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if endpoint_of(request.path) is None:
            return await handler(request)  # the control API never fails
        self.requests.append(request.path_qs)
        if self._failure is not None:
            status, error = self._failure
            return kraken_error(error, status=status)
        return await handler(request)

    # --- the exchange, seen and moved from outside the bot ----------------------------

    def orders(self, status: OrderStatus | None = None) -> list[EmulatedOrder]:
        """Every order the exchange holds (oldest first), after filling what the price reached."""
        self.account.settle()
        return [o for o in self.account.orders.values() if status is None or o.status == status]

    def place_outside_order(
        self, pair: str, side: str, volume: Decimal | str, *, ordertype: str = "market",
        price: Decimal | str | None = None, cl_ord_id: str | None = None,
        userref: int | None = None,
    ) -> EmulatedOrder:
        """An order placed by hand on the exchange (an orphan to the bot): Kraken's checks apply."""
        params = {"pair": self.market.pair(pair).pair_id, "type": side, "ordertype": ordertype,
                  "volume": str(volume)}
        if price is not None:
            params["price"] = str(price)
        if cl_ord_id is not None:
            params["cl_ord_id"] = cl_ord_id
        if userref is not None:
            params["userref"] = str(userref)
        self.account.settle()
        order = self.account.add_order(parse_add_order(params, self.pairs.values()), "outside")
        assert order is not None  # validate was not asked for
        return order

    def fill_outside(self, ref: str, price: Decimal | None = None) -> list[EmulatedOrder]:
        """Open orders named by txid, cl_ord_id or userref fill now (at `price` if given)."""
        return self.account.fill_outside(ref, price)

    def cancel_outside(self, ref: str) -> int:
        """Open orders named by txid, cl_ord_id or userref are cancelled by hand."""
        return self.account.cancel(self.account.find(ref))

    def forget_order(self, ref: str) -> list[EmulatedOrder]:
        """Orders vanish from the exchange with their trades (balances unchanged): ghosts."""
        return self.account.forget(ref)

    def set_balance(self, asset: str, amount: Decimal | str) -> None:
        self.account.set_balance(asset, Decimal(amount))

    def set_price(self, pair: str, price: Decimal | str | None) -> None:
        """Hold `pair` at `price` (None: back to the candles); resting orders it reaches fill."""
        self.market.set_price(pair, None if price is None else Decimal(price))
        self.account.settle()

    def set_now(self, ts: float | None) -> None:
        """Stop the emulator's clock at `ts` (None: back to the clock it started with)."""
        self.market.set_now(ts)
        self.account.settle()
