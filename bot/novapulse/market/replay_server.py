"""A local server speaking Kraken WebSocket v2 (`ohlc`), replaying recorded candles.

One replay clock for all connections: at step 0 every file is at its own first candle
(plus `start_index`), or with `start_after` at its first candle after that time (each pair
on its own: files need not begin together); each step moves every pair one candle on. A
subscriber gets an ack, a snapshot of the last `snapshot_size` candles up to the current
position (the newest one is the candle "in progress"), then an `update` per step, heartbeats
when idle. With `start_on_subscribe` the clock waits for the first subscription, so a client
that starts after the server misses nothing. Once every file is played to its end (without
`loop`) the clock stops, `finished` is set and the log says so.

Faults for runbook 2 drills, in process (`drop_connections`, `close_all`, `go_silent`,
`skip`, `refuse_connections`), on a schedule (`"drop@100,1013@200,silence@300:8,gap@400:5"`)
and over HTTP on the same port: `GET /control/state`, `POST /control/fault` with a JSON
body `{"kind": "drop|1013|silence|gap|refuse", "seconds": .., "steps": ..}`.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import dataclasses
import http
import itertools
import json
import logging
import time
from collections.abc import Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import parse_qsl, urlsplit

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from novapulse.market import kraken_protocol as kp
from novapulse.market.candle_files import describe_file, load_candles
from novapulse.models import Candle

log = logging.getLogger(__name__)

FAULT_KINDS = ("drop", "1013", "silence", "gap", "refuse")
_DEFAULT_FAULT_ARG = {"silence": 10.0, "gap": 5.0, "refuse": 10.0}
_MAX_CONTROL_BODY = 64 * 1024


class FaultSpecError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class ScheduledFault:
    step: int
    kind: str
    amount: float | None = None  # seconds for silence/refuse, steps for gap


def parse_fault_schedule(spec: str | None) -> list[ScheduledFault]:
    """`"drop@100,1013@200,silence@300:8,gap@400:5,refuse@500:3"` -> faults sorted by step."""
    faults: list[ScheduledFault] = []
    for raw_item in (spec or "").split(","):
        item = raw_item.strip()
        if not item:
            continue
        kind, at, rest = item.partition("@")
        if not at or kind not in FAULT_KINDS:
            raise FaultSpecError(
                f"bad fault {item!r}: expected KIND@STEP[:AMOUNT], KIND in {FAULT_KINDS}"
            )
        step_text, _, amount_text = rest.partition(":")
        try:
            step = int(step_text)
            amount = float(amount_text) if amount_text else None
        except ValueError:
            raise FaultSpecError(f"bad fault {item!r}: step and amount must be numbers") from None
        if step < 0 or (amount is not None and amount < 0):
            raise FaultSpecError(f"bad fault {item!r}: step and amount must not be negative")
        faults.append(ScheduledFault(step, kind, amount))
    return sorted(faults, key=lambda f: f.step)


@dataclass
class _Track:
    """One pair's recorded candles and how positions map onto them; `offset` is the position
    of the candle in progress at step 0."""

    pair: str
    candles: list[Candle]
    offset: int = 0

    @property
    def interval_s(self) -> int:
        return self.candles[0].interval_s

    def candle_at(self, position: int, *, loop: bool) -> Candle | None:
        count = len(self.candles)
        if position < 0 or (position >= count and not loop):
            return None
        cycle, index = divmod(position, count)
        candle = self.candles[index]
        if cycle == 0:
            return candle
        span = self.candles[-1].ts - self.candles[0].ts + self.interval_s
        return dataclasses.replace(candle, ts=candle.ts + cycle * span)


@dataclass(eq=False)
class _Subscriber:
    ws: ServerConnection
    number: int
    pairs: set[str] = field(default_factory=set)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    last_sent: float = field(default_factory=time.monotonic)
    silent_until: float = 0.0

    def is_silent(self) -> bool:
        return time.monotonic() < self.silent_until


class ReplayServer:
    def __init__(
        self,
        sources: list[tuple[Path, str | None]],
        host: str = "127.0.0.1",
        port: int = 0,
        speed: float = 1.0,
        start_index: int = 0,
        snapshot_size: int = 50,
        heartbeat_interval: float = 1.0,
        *,
        faults: str | None = None,
        loop: bool = False,
        provisional_updates: bool = True,
        start_after: float | None = None,
        start_on_subscribe: bool = False,
    ) -> None:
        if not sources:
            raise ValueError("ReplayServer needs at least one candle file")
        if start_after is not None and start_index:
            raise ValueError("give start_index or start_after, not both")
        self.host = host
        self.speed = speed
        self.start_index = start_index
        self.start_after = start_after
        self.start_on_subscribe = start_on_subscribe
        self.snapshot_size = max(1, snapshot_size)
        self.heartbeat_interval = heartbeat_interval
        self.loop = loop
        self.provisional_updates = provisional_updates
        self._requested_port = port
        self._tracks: dict[str, _Track] = {}
        for path, alias in sources:
            pair = alias or describe_file(path)[0]
            if pair in self._tracks:
                raise ValueError(f"pair {pair} is given twice; use FILE=ALIAS to rename one")
            candles = load_candles(path, pair)
            if not candles:
                raise ValueError(f"{path}: no candles")
            offset = start_index if start_after is None else bisect.bisect_right(
                [c.ts for c in candles], start_after)
            self._tracks[pair] = _Track(pair, candles, offset)
        self._pending_faults = parse_fault_schedule(faults)
        self.step = 0
        self._subscribers: set[_Subscriber] = set()
        self._numbers = itertools.count(1)
        self._has_subscriptions = asyncio.Event()
        self.finished = asyncio.Event()
        self._refuse_until = 0.0
        self._server: Server | None = None
        self._clock_task: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self.subscribe_requests = 0
        self.connections_accepted = 0

    # --- lifecycle --------------------------------------------------------------------

    @property
    def pairs(self) -> list[str]:
        return list(self._tracks)

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("ReplayServer is not started")
        sockets = list(self._server.sockets)
        return int(sockets[0].getsockname()[1])

    @property
    def url(self) -> str:
        return f"ws://{self.host}:{self.port}/v2"

    @property
    def step_seconds(self) -> float:
        if self.speed <= 0:
            return 0.0
        return min(t.interval_s for t in self._tracks.values()) / self.speed

    async def start(self) -> None:
        control = self._control_post

        class _Connection(_ControlPostConnection):
            handle_control_post = staticmethod(control)

        self._server = await serve(
            self._serve_connection,
            self.host,
            self._requested_port,
            process_request=self._process_request,
            create_connection=_Connection,
            ping_interval=None,
            close_timeout=1.0,
        )
        self._clock_task = asyncio.create_task(self._run_clock(), name="replay-clock")
        log.info("Replay server on %s: %s at speed %s", self.url, ", ".join(self.pairs), self.speed)
        if self._exhausted():
            self._finish()

    async def stop(self) -> None:
        if self._clock_task is not None:
            self._clock_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._clock_task
            self._clock_task = None
        for task in list(self._tasks):
            task.cancel()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    # --- faults -----------------------------------------------------------------------

    def drop_connections(self) -> int:
        """Abrupt TCP close: no close frame, as when a network path dies."""
        subscribers = list(self._subscribers)
        for subscriber in subscribers:
            subscriber.ws.transport.abort()
        log.warning("Fault: dropped %d connection(s)", len(subscribers))
        return len(subscribers)

    async def close_all(self, code: int = 1013, reason: str = "Market data unavailable") -> int:
        subscribers = list(self._subscribers)
        log.warning("Fault: closing %d connection(s) with %d %s", len(subscribers), code, reason)
        await asyncio.gather(
            *(s.ws.close(code, reason) for s in subscribers), return_exceptions=True
        )
        return len(subscribers)

    def go_silent(self, seconds: float) -> None:
        """Keep the open sockets open but send nothing on them, heartbeats included: the
        half-open connection a client must detect. Connections made meanwhile are served."""
        until = time.monotonic() + seconds
        for subscriber in self._subscribers:
            subscriber.silent_until = until
        log.warning("Fault: %d connection(s) silent for %.1fs", len(self._subscribers), seconds)

    def skip(self, steps: int) -> None:
        """Move the clock on without sending those candles: a gap for every subscriber."""
        self.step += max(0, int(steps))
        log.warning("Fault: skipped %d step(s), now at step %d", steps, self.step)

    def refuse_connections(self, seconds: float) -> None:
        self._refuse_until = time.monotonic() + seconds
        log.warning("Fault: refusing connections for %.1fs", seconds)

    def inject(self, kind: str, amount: float | None = None) -> None:
        """Trigger a fault by name (schedule and HTTP control)."""
        value = amount if amount is not None else _DEFAULT_FAULT_ARG.get(kind, 0.0)
        if kind == "drop":
            self.drop_connections()
        elif kind == "1013":
            self._spawn(self.close_all())
        elif kind == "silence":
            self.go_silent(value)
        elif kind == "gap":
            self.skip(int(value))
        elif kind == "refuse":
            self.refuse_connections(value)
        else:
            raise FaultSpecError(f"unknown fault kind {kind!r}; expected one of {FAULT_KINDS}")

    def state(self) -> dict[str, Any]:
        now = time.monotonic()
        pairs: dict[str, Any] = {}
        for pair, track in self._tracks.items():
            position = track.offset + self.step
            candle = track.candle_at(position, loop=self.loop)
            pairs[pair] = {
                "position": position,
                "ts": candle.ts if candle else None,
                "exhausted": candle is None,
            }
        return {
            "step": self.step,
            "speed": self.speed,
            "connections": len(self._subscribers),
            "subscribe_requests": self.subscribe_requests,
            "silent_for": max([0.0, *(s.silent_until - now for s in self._subscribers)]),
            "refusing_for": max(0.0, self._refuse_until - now),
            "pending_faults": [dataclasses.asdict(f) for f in self._pending_faults],
            "finished": self.finished.is_set(),
            "pairs": pairs,
        }

    # --- the clock --------------------------------------------------------------------

    async def _run_clock(self) -> None:
        if self.start_on_subscribe:
            await self._has_subscriptions.wait()
        next_at = time.monotonic()
        while not self.finished.is_set():
            if self.speed > 0:
                next_at += self.step_seconds
                await asyncio.sleep(max(0.0, next_at - time.monotonic()))
            else:
                await self._has_subscriptions.wait()
                await asyncio.sleep(0)
            self.step += 1
            self._fire_due_faults()
            await self._broadcast_step()
            if self._exhausted():
                self._finish()

    def _exhausted(self) -> bool:
        """Every file played to its end: nothing is left to send, ever (never with `loop`)."""
        return not self.loop and all(
            track.offset + self.step >= len(track.candles) for track in self._tracks.values())

    def _finish(self) -> None:
        if self.finished.is_set():
            return
        self.finished.set()
        last = ", ".join(f"{pair} {_utc(track.candles[-1].ts)}"
                         for pair, track in self._tracks.items())
        log.warning("Replay finished: every candle file is played to its end (last candles: "
                    "%s); nothing more will be sent", last)

    def _fire_due_faults(self) -> None:
        while self._pending_faults and self._pending_faults[0].step <= self.step:
            fault = self._pending_faults.pop(0)
            self.inject(fault.kind, fault.amount)

    async def _broadcast_step(self) -> None:
        if not self._subscribers:
            return
        current = {
            pair: candle
            for pair, track in self._tracks.items()
            if (candle := track.candle_at(track.offset + self.step, loop=self.loop)) is not None
        }
        if not current:
            return
        await asyncio.gather(
            *(self._send_updates(s, current) for s in list(self._subscribers)),
            return_exceptions=True,
        )

    async def _send_updates(self, subscriber: _Subscriber, current: dict[str, Candle]) -> None:
        async with subscriber.lock:
            for pair in sorted(subscriber.pairs):
                candle = current.get(pair)
                if candle is None:
                    continue
                if self.provisional_updates:
                    await self._send(subscriber, self._ohlc([_opening_tick(candle)], False))
                await self._send(subscriber, self._ohlc([candle], False))

    # --- connections ------------------------------------------------------------------

    def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        path = urlsplit(request.path).path
        if path == "/control/state":
            return _json_response(connection, http.HTTPStatus.OK, self.state())
        if path.startswith("/control/"):
            return connection.respond(http.HTTPStatus.NOT_FOUND, "unknown control path\n")
        if time.monotonic() < self._refuse_until:
            return connection.respond(
                http.HTTPStatus.SERVICE_UNAVAILABLE, "replay server refusing connections\n"
            )
        return None

    def _control_post(self, path: str, body: bytes) -> tuple[int, dict[str, Any]]:
        parts = urlsplit(path)
        if parts.path != "/control/fault":
            return 404, {"error": f"unknown control path {parts.path}"}
        try:
            request: dict[str, Any] = json.loads(body) if body.strip() else {}
            if not isinstance(request, dict):
                raise ValueError("body must be a JSON object")
        except ValueError as exc:
            return 400, {"error": f"bad JSON body: {exc}"}
        request.update(parse_qsl(parts.query))
        kind = str(request.get("kind", ""))
        raw_amount = request.get("steps") if kind == "gap" else request.get("seconds")
        try:
            amount = None if raw_amount is None else float(raw_amount)
            self.inject(kind, amount)
        except (FaultSpecError, ValueError, TypeError) as exc:
            return 400, {"error": str(exc)}
        return 200, {"ok": True, "kind": kind, "state": self.state()}

    async def _serve_connection(self, ws: ServerConnection) -> None:
        subscriber = _Subscriber(ws, next(self._numbers))
        self._subscribers.add(subscriber)
        self.connections_accepted += 1
        heartbeat = asyncio.create_task(self._heartbeats(subscriber))
        try:
            await self._send(subscriber, kp.status_message(connection_id=subscriber.number))
            async for frame in ws:
                await self._handle_request(subscriber, frame)
        except ConnectionClosed:
            pass
        finally:
            heartbeat.cancel()
            self._subscribers.discard(subscriber)
            if not any(s.pairs for s in self._subscribers):
                self._has_subscriptions.clear()

    async def _handle_request(self, subscriber: _Subscriber, frame: str | bytes) -> None:
        try:
            request = kp.parse_request(frame)
        except kp.MalformedMessage as exc:
            log.warning("Replay server: bad client message (%s)", exc)
            return
        now = time.time()
        if isinstance(request, kp.PingRequest):
            await self._send(subscriber, kp.pong_message(request.req_id, now=now))
            return
        if request.method == "subscribe":
            self.subscribe_requests += 1
        async with subscriber.lock:
            for symbol in request.symbols:
                error = self._subscription_error(request, symbol)
                ack = kp.subscription_ack(request, symbol, now=now, error=error)
                await self._send(subscriber, ack)
                if error is not None:
                    continue
                if request.method == "unsubscribe":
                    subscriber.pairs.discard(symbol)
                    continue
                subscriber.pairs.add(symbol)
                self._has_subscriptions.set()
                if request.snapshot:
                    await self._send(subscriber, self._ohlc(self._snapshot(symbol), True))

    def _subscription_error(self, request: kp.SubscriptionRequest, symbol: str) -> str | None:
        if request.channel != kp.OHLC_CHANNEL:
            return f"Channel {request.channel} not supported by the replay server"
        track = self._tracks.get(symbol)
        if track is None:
            return f"Currency pair not supported {symbol}"
        if request.interval is not None and request.interval * 60 != track.interval_s:
            replayed = track.interval_s // 60
            return f"Interval {request.interval} not available: {symbol} replays {replayed}"
        return None

    def _snapshot(self, pair: str) -> list[Candle]:
        track = self._tracks[pair]
        newest = track.offset + self.step
        if not self.loop:
            newest = min(newest, len(track.candles) - 1)
        positions = range(max(0, newest - self.snapshot_size + 1), newest + 1)
        return [c for p in positions if (c := track.candle_at(p, loop=self.loop)) is not None]

    async def _heartbeats(self, subscriber: _Subscriber) -> None:
        while True:
            await asyncio.sleep(self.heartbeat_interval / 2)
            idle = time.monotonic() - subscriber.last_sent
            if idle >= self.heartbeat_interval and not subscriber.lock.locked():
                with contextlib.suppress(ConnectionClosed):
                    await self._send(subscriber, kp.heartbeat_message())

    async def _send(self, subscriber: _Subscriber, message: str) -> None:
        if subscriber.is_silent():
            return
        await subscriber.ws.send(message)
        subscriber.last_sent = time.monotonic()

    @staticmethod
    def _ohlc(candles: list[Candle], snapshot: bool) -> str:
        # Stamped in market time, as Kraken would have stamped it then: the moment the newest
        # candle in it had begun. Clients judge data freshness on it at any replay speed.
        now = max((c.ts for c in candles), default=time.time())
        return kp.ohlc_message(candles, snapshot=snapshot, now=now)

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


def _utc(ts: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(ts))


def _opening_tick(candle: Candle) -> Candle:
    """The candle as Kraken would first show it: only its opening trade so far."""
    o = candle.open
    return dataclasses.replace(candle, high=o, low=o, close=o, volume=0.0)


def _json_response(
    connection: ServerConnection, status: http.HTTPStatus, body: dict[str, Any]
) -> Response:
    response = connection.respond(status, json.dumps(body) + "\n")
    response.headers["Content-Type"] = "application/json"
    return response


class _ControlPostConnection(ServerConnection):
    """websockets answers only GET (it rejects any request with a body before
    `process_request` sees it), so POST /control/... is read and answered here, before the
    bytes reach the WebSocket handshake parser."""

    handle_control_post: ClassVar[Any]

    _buffer = b""
    _is_http_post: bool | None = None

    def data_received(self, data: bytes) -> None:
        if self._is_http_post is False:
            super().data_received(data)
            return
        self._buffer += data
        if self._is_http_post is None:
            if len(self._buffer) < 5 and b"\n" not in self._buffer:
                return
            self._is_http_post = self._buffer.startswith(b"POST ")
            if not self._is_http_post:
                buffered, self._buffer = self._buffer, b""
                super().data_received(buffered)
                return
        self._answer_post_when_complete()

    def _answer_post_when_complete(self) -> None:
        head, separator, body = self._buffer.partition(b"\r\n\r\n")
        if not separator:
            if len(self._buffer) > _MAX_CONTROL_BODY:
                self._reply(431, {"error": "request head too large"})
            return
        lines = head.decode("latin-1").split("\r\n")
        request_line = lines[0].split(" ")
        length = 0
        for line in lines[1:]:
            name, _, value = line.partition(":")
            if name.strip().lower() == "content-length":
                length = int(value.strip()) if value.strip().isdigit() else -1
        if length < 0 or length > _MAX_CONTROL_BODY or len(request_line) != 3:
            self._reply(400, {"error": "bad request"})
            return
        if len(body) < length:
            return
        status, answer = type(self).handle_control_post(request_line[1], body[:length])
        self._reply(status, answer)

    def _reply(self, status: int, body: dict[str, Any]) -> None:
        payload = (json.dumps(body) + "\n").encode()
        reason = http.HTTPStatus(status).phrase
        head = (
            f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(payload)}\r\nConnection: close\r\n\r\n"
        )
        self._buffer = b""
        self.transport.write(head.encode() + payload)
        self.transport.close()
