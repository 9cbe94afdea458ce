"""How injected faults reach the wire: error answers, HTTP 503, and answers that never come."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from aiohttp import web
from aiohttp.typedefs import Middleware

from novapulse.emulators.kraken_faults import FAULT_ERRORS, Fault, FaultPlan

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
_API_PREFIXES = ("/0/public/", "/0/private/")


def kraken_error(message: str, status: int = 200) -> web.Response:
    return web.json_response({"error": [message]}, status=status)


def kraken_result(result: object) -> web.Response:
    return web.json_response({"error": [], "result": result})


class UnansweredRequests:
    """Requests the emulator holds without answering, until the client gives up (or `hold_s`)."""

    def __init__(self, hold_s: float) -> None:
        self.hold_s = hold_s
        self._release = asyncio.Event()

    async def hold_then_drop(self, request: web.Request) -> web.Response:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._release.wait(), self.hold_s)
        return self.drop(request)

    @staticmethod
    def drop(request: web.Request) -> web.Response:
        """Close the connection with no answer (the response object is never written)."""
        if request.transport is not None:
            request.transport.close()
        return web.Response(status=204)

    def hold_again(self) -> None:
        self._release.clear()

    def release_all(self) -> None:
        """Stop holding (on shutdown): every held request is dropped now."""
        self._release.set()


def endpoint_of(path: str) -> str | None:
    for prefix in _API_PREFIXES:
        if path.startswith(prefix):
            return path[len(prefix):]
    return None


def fault_middleware(plan: FaultPlan, unanswered: UnansweredRequests) -> Middleware:
    @web.middleware
    async def inject_faults(request: web.Request, handler: Handler) -> web.StreamResponse:
        endpoint = endpoint_of(request.path)
        fault = plan.on_call(endpoint) if endpoint is not None else None
        if fault is None:
            return await handler(request)
        log.info("kraken emulator: %s call %d: injected %s", endpoint, plan.calls(endpoint or ""),
                 fault.value)
        if fault is Fault.SERVER_ERROR:
            return kraken_error(FAULT_ERRORS[fault], status=503)
        if fault in FAULT_ERRORS:
            return kraken_error(FAULT_ERRORS[fault])
        if fault is Fault.TIMEOUT_BEFORE_ACCEPT:
            return await unanswered.hold_then_drop(request)
        await handler(request)  # processed in full: an order is placed, then the answer is lost
        if fault is Fault.DROP_AFTER_ACCEPT:
            return unanswered.drop(request)
        return await unanswered.hold_then_drop(request)

    return inject_faults
