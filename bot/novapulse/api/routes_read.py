"""Read endpoints (read key, admin key or dashboard session)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from fastapi.responses import StreamingResponse

from novapulse.api.context import ApiContext, ReadCaller
from novapulse.api.models import (
    AUTH_ERRORS,
    Equity,
    Performance,
    Positions,
    Prices,
    Risk,
    Status,
    Strategies,
    Thoughts,
    Trades,
    finite,
)
from novapulse.models import Thought
from novapulse.service import thought_to_dict

SSE_QUEUE_MAX = 1_000


def read_router(ctx: ApiContext) -> APIRouter:
    router = APIRouter(prefix="/api/v1", tags=["read"], responses=AUTH_ERRORS)
    service = ctx.service
    gateway = ctx.gateway

    @router.get("/status", response_model=Status)
    async def status(_: ReadCaller) -> Any:
        """Mode, pause (who and why), feed, positions, equity, health of the soft parts."""
        return finite(await gateway.read(service.status))

    @router.get("/thoughts", response_model=Thoughts)
    async def thoughts(_: ReadCaller, limit: Annotated[int, Query(ge=1, le=10_000)] = 100) -> Any:
        """The most recent thoughts (decisions and blocks), oldest first."""
        return {"thoughts": finite(await gateway.read(lambda: service.thoughts(limit)))}

    @router.get("/thoughts/stream", response_class=StreamingResponse,
                responses={200: {"content": {"text/event-stream": {}},
                                 "description": "one `data: {thought}` event per new thought"}})
    async def thought_stream(_: ReadCaller) -> StreamingResponse:
        """Server-Sent Events: every new thought as it happens, a keep-alive comment every
        15 s."""
        return StreamingResponse(_thought_events(ctx), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})

    @router.get("/risk", response_model=Risk)
    async def risk(_: ReadCaller) -> Any:
        """Every risk gate: blocking or not, its current value and its limit."""
        return finite(await gateway.read(service.risk))

    @router.get("/strategies", response_model=Strategies)
    async def strategies(_: ReadCaller) -> Any:
        """Per strategy: weight, win rate, profit factor, runtime_disabled."""
        return {"strategies": finite(await gateway.read(service.strategies))}

    @router.get("/positions", response_model=Positions)
    async def positions(_: ReadCaller) -> Any:
        return {"positions": finite(await gateway.read(service.positions))}

    @router.get("/trades", response_model=Trades)
    async def trades(_: ReadCaller, limit: Annotated[int, Query(ge=1, le=10_000)] = 100,
                     status: Literal["pending", "open", "closing", "closed", "error",
                                     "rejected"] | None = None) -> Any:
        """Trades from the store, newest first."""
        rows = await gateway.run(lambda: service.trades(limit=limit, status=status))
        return {"trades": finite(rows)}

    @router.get("/performance", response_model=Performance)
    async def performance(_: ReadCaller) -> Any:
        return finite(await gateway.run(service.performance))

    @router.get("/equity", response_model=Equity)
    async def equity(_: ReadCaller) -> Any:
        """The equity curve: [unix time, equity] points, oldest first."""
        points = await gateway.read(service.equity_curve)
        return {"points": [(ts, eq) for ts, eq in points
                           if math.isfinite(ts) and math.isfinite(eq)]}

    @router.get("/prices", response_model=Prices)
    async def prices(_: ReadCaller) -> Any:
        """Recent closes per pair (the dashboard's price charts), oldest first."""
        series = await gateway.read(service.prices)
        return {"pairs": {pair: [(ts, px) for ts, px in points
                                 if math.isfinite(ts) and math.isfinite(px)]
                          for pair, points in series.items()}}

    return router


async def _thought_events(ctx: ApiContext) -> AsyncIterator[str]:
    """Subscribe on the bot loop, hand each thought to this (API) loop, stream it."""
    api_loop = asyncio.get_running_loop()
    queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(SSE_QUEUE_MAX)

    def enqueue(item: dict[str, Any]) -> None:
        with contextlib.suppress(asyncio.QueueFull):  # a client that stalls loses thoughts
            queue.put_nowait(item)

    def on_thought(thought: Thought) -> None:  # runs on the bot loop
        item = finite(thought_to_dict(thought))
        with contextlib.suppress(RuntimeError):  # the API loop is gone
            api_loop.call_soon_threadsafe(enqueue, item)

    unsubscribe = await ctx.gateway.read(lambda: ctx.service.subscribe_thoughts(on_thought))
    try:
        yield ": connected\n\n"
        while True:
            try:
                item = await asyncio.wait_for(queue.get(), ctx.sse_keepalive_s)
            except TimeoutError:
                yield ": keep-alive\n\n"
                continue
            yield f"data: {json.dumps(item, separators=(',', ':'))}\n\n"
    finally:
        ctx.gateway.post(unsubscribe)
