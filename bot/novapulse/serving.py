"""Run a local server (the replay feed, the Kraken emulator) until SIGINT or SIGTERM."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Callable
from typing import Protocol

log = logging.getLogger("novapulse.serving")


class LocalServer(Protocol):
    @property
    def url(self) -> str: ...

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


async def serve_until_signal(server: LocalServer,
                             describe: Callable[[], str] | None = None) -> None:
    """Start, print the URL (for scripts), log what `describe` says once started (the port may
    have been chosen then), wait for a signal, stop."""
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
        await stop.wait()
    finally:
        await server.stop()
