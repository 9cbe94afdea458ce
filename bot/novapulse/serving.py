"""Run a local server (the replay feed, the Kraken emulator) until SIGINT or SIGTERM."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Awaitable, Callable
from typing import Protocol

log = logging.getLogger("novapulse.serving")


class LocalServer(Protocol):
    @property
    def url(self) -> str: ...

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


async def serve_until_signal(server: LocalServer,
                             describe: Callable[[], str] | None = None,
                             until: Callable[[], Awaitable[object]] | None = None) -> None:
    """Start, print the URL (for scripts), log what `describe` says once started (the port may
    have been chosen then), wait for a signal (or for `until()` to return), stop."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(signum, stop.set)
    await server.start()
    print(server.url, flush=True)
    if describe is not None:
        log.info(describe())
    try:
        waits: list[asyncio.Future[object]] = [asyncio.ensure_future(stop.wait())]
        if until is not None:
            waits.append(asyncio.ensure_future(until()))
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for wait in waits:
                wait.cancel()
    finally:
        await server.stop()
