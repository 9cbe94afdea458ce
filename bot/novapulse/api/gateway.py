"""Calls from the API onto the bot's event loop.

The API server runs on its own thread and event loop, so that a blocked bot loop cannot
silence `/api/v1/health`: health reads the loop's heartbeat and answers 503. Everything else
touches engine state, which only the bot loop may read or change, so it runs there; when that
loop does not answer within `timeout_s`, the call fails with `BotLoopUnresponsive` (→ 503).

With no `bot_loop` (tests over ASGITransport, where the API shares the bot's loop) calls run
directly.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


class BotLoopUnresponsive(Exception):
    """The bot's event loop did not run the call in time."""


class BotGateway:
    def __init__(self, bot_loop: asyncio.AbstractEventLoop | None = None,
                 timeout_s: float = 5.0) -> None:
        self._bot_loop = bot_loop
        self._timeout_s = timeout_s

    def _direct(self) -> bool:
        if self._bot_loop is None:
            return True
        try:
            return asyncio.get_running_loop() is self._bot_loop
        except RuntimeError:
            return False

    async def read(self, fn: Callable[[], T]) -> T:
        """Run a plain function on the bot loop and return its result."""
        if self._direct():
            return fn()

        async def wrapper() -> T:
            return fn()

        return await self.run(wrapper)

    async def run(self, make: Callable[[], Awaitable[T]]) -> T:
        """Run a coroutine on the bot loop and return its result."""
        if self._direct():
            return await make()
        assert self._bot_loop is not None

        async def as_coroutine() -> T:
            return await make()

        try:
            future = asyncio.run_coroutine_threadsafe(as_coroutine(), self._bot_loop)
        except RuntimeError as exc:  # the bot loop is closed
            raise BotLoopUnresponsive("the bot's event loop has stopped") from exc
        try:
            return await asyncio.wait_for(asyncio.wrap_future(future), self._timeout_s)
        except (TimeoutError, concurrent.futures.CancelledError) as exc:
            future.cancel()
            raise BotLoopUnresponsive(
                f"the bot's main loop did not answer within {self._timeout_s:g}s") from exc

    def post(self, fn: Callable[[], object]) -> None:
        """Run `fn` on the bot loop soon, without waiting (unsubscribing, for instance)."""
        if self._direct():
            fn()
            return
        assert self._bot_loop is not None
        with contextlib.suppress(RuntimeError):  # the bot loop is closed: nothing to undo there
            self._bot_loop.call_soon_threadsafe(fn)
