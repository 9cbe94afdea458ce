"""The endpoint annotation cannot collect admin keys: without the operator's explicit flag, a
listener it names receives nothing (no poll, no pause on deletion) and a Warning Event says
the annotation is ignored."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from novapulse_operator import metrics
from support.local_http import serving

from .conftest import FAST, Cluster, eventually, operator

QUICK = dataclasses.replace(FAST, bot_poll_seconds=0.2)


@pytest.fixture()
async def listener() -> AsyncIterator[tuple[list[str], str]]:
    """Any request at all is recorded, with the key it carried."""
    seen: list[str] = []

    async def anything(request: web.Request) -> web.Response:
        seen.append(f"{request.method} {request.path} {request.headers.get('X-API-Key')}")
        return web.json_response({"open_positions": 0})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", anything)
    async with serving(app) as url:
        yield seen, url


def _polls() -> float:
    return float(metrics.BOT_POLLS.labels("unreachable")._value.get())


async def test_annotation_is_ignored_without_the_flag(
        cluster: Cluster, listener: tuple[list[str], str]) -> None:
    seen, url = listener
    before = _polls()
    async with operator(QUICK):
        await cluster.create_bot("bot1", {"mode": "paper"}, {"novapulse.io/bot-endpoint": url})
        events = await eventually(lambda: cluster.events("BotEndpointIgnored"), 20,
                                  "the Warning Event")
        assert events[0]["type"] == "Warning"
        assert url not in events[0]["message"]
        # The auto-pilot polled the bot (at its Service, which does not exist here) ...
        await eventually(lambda: _polls() >= before + 2, 20, "two polls")
        # ... and deletion paused it there too: the paper bot is unreachable, so it goes.
        await cluster.delete("/apis/novapulse.io/v1alpha1/namespaces/default/tradingbots/bot1")
        await eventually(lambda: _gone(cluster), 20, "the bot deleted")
        assert len(await cluster.events("BotEndpointIgnored")) == 1  # once, not per poll
    assert seen == []


async def test_with_the_flag_the_annotation_is_the_bot(
        cluster: Cluster, listener: tuple[list[str], str]) -> None:
    seen, url = listener
    async with operator(dataclasses.replace(QUICK, allow_endpoint_annotation=True)):
        await cluster.create_bot("bot1", {"mode": "paper"}, {"novapulse.io/bot-endpoint": url})
        await eventually(lambda: any("/api/v1/status" in s for s in seen), 20,
                         "a poll at the annotation")
        assert not await cluster.events("BotEndpointIgnored")


async def _gone(cluster: Cluster) -> bool:
    return await cluster.bot("bot1") is None
