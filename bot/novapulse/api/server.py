"""Serve the API with uvicorn on a thread and event loop of its own.

Why a thread: `/api/v1/health` must answer 503 when the bot's main loop is stuck, and a stuck
asyncio loop cannot answer anything. On its own loop, the API keeps answering: health reads the
main loop's heartbeat, every other endpoint is carried onto the main loop by `BotGateway` and
answers 503 when that loop does not take the call in time.

The socket is bound by the caller's thread before serving, so a port conflict (runbook 10)
is reported at start-up as an error, not lost in a thread.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import threading

import uvicorn
from fastapi import FastAPI

log = logging.getLogger("novapulse.api")

START_TIMEOUT_S = 10.0
GRACEFUL_SHUTDOWN_S = 1


class ApiServerError(Exception):
    pass


def bind_socket(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ApiServerError(f"cannot listen on {host}:{port}: {exc.strerror or exc} "
                             "(another process on this port? see runbook 10)") from exc
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


class ApiServer:
    def __init__(self, app: FastAPI, host: str, port: int) -> None:
        self._sock = bind_socket(host, port)
        self.host = host
        self.port: int = self._sock.getsockname()[1]
        config = uvicorn.Config(app, log_config=None, access_log=False, lifespan="off",
                                ws="none", timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._serve, name="api", daemon=True)
        self._failure: BaseException | None = None

    @property
    def url(self) -> str:
        shown = "localhost" if self.host in {"0.0.0.0", "::", ""} else self.host
        if ":" in shown:
            shown = f"[{shown}]"
        return f"http://{shown}:{self.port}"

    def _serve(self) -> None:
        try:
            asyncio.run(self._server.serve(sockets=[self._sock]))
        except BaseException as exc:  # a thread's failure would otherwise be lost
            self._failure = exc
            log.error("the API server stopped: %s", type(exc).__name__)

    async def start(self) -> None:
        self._thread.start()
        deadline = asyncio.get_running_loop().time() + START_TIMEOUT_S
        while not self._server.started:
            if not self._thread.is_alive() or asyncio.get_running_loop().time() > deadline:
                self._sock.close()
                raise ApiServerError(f"the API server did not start: {self._failure!r}")
            await asyncio.sleep(0.01)

    async def stop(self) -> None:
        self._server.should_exit = True
        await asyncio.to_thread(self._thread.join, GRACEFUL_SHUTDOWN_S + 5.0)
        self._sock.close()
