"""The analytics sink against a real OpenSearch-compatible server on loopback (osmem-server,
in memory), and against servers that fail the ways runbook 12 names: gone, stalled (accepts
and never answers), refusing the credentials, not OpenSearch at all, a full disk
(`cluster_block_exception`), a mapping conflict. Trading's side — the hand-offs — never
waits; the buffer keeps its bound; indexing resumes when OpenSearch is back."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from aiohttp import web

from novapulse.analytics.mappings import PROPERTIES
from novapulse.analytics.sink import AnalyticsSink
from novapulse.config import AnalyticsConfig
from novapulse.models import Candle, Order, OrderKind, OrderStatus, Side, Thought, Trade

pytestmark = pytest.mark.integration

DAY = 86_400
JAN1_2018 = 1_514_764_800
PASSWORD = "s3cret-pa55"


def settings(url: str, **overrides: Any) -> AnalyticsConfig:
    values: dict[str, Any] = {
        "enabled": True, "url": url, "index_prefix": "np", "flush_interval_seconds": 0.05,
        "request_timeout_seconds": 0.5, "reconnect_initial_seconds": 0.05,
        "reconnect_max_seconds": 0.2, "metrics_interval_seconds": 3600}
    values.update(overrides)
    return AnalyticsConfig(**values)


def candles(count: int, start: int = JAN1_2018, pair: str = "ETH/BTC") -> list[Candle]:
    return [Candle(pair, start + i * 300, 1.0, 1.2, 0.9, 1.1, 5.0) for i in range(count)]


async def eventually(predicate: Callable[[], bool], what: str, within: float = 10.0) -> None:
    deadline = time.monotonic() + within
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"not in {within}s: {what}")
        await asyncio.sleep(0.02)


@pytest.fixture(scope="module")
def osmem() -> Iterator[Any]:
    from osmem_server import OsmemError, OsmemServer

    try:
        server = OsmemServer.start(japanese=False)
    except OsmemError as exc:  # a platform without the bundled binary
        if os.environ.get("CI", "").lower() in {"1", "true", "yes"}:
            pytest.fail(f"osmem-server could not start: {exc}", pytrace=False)
        pytest.skip(f"osmem-server could not start: {exc}")
    yield server
    server.close()


@pytest.fixture
def opensearch(osmem: Any) -> Iterator[Any]:
    """An empty OpenSearch-compatible cluster of its own for one test."""
    clone = osmem.clone()
    yield clone
    clone.close()


def request(url: str, method: str, path: str, body: Any = None) -> Any:
    from osmem_server import _request

    return _request(method, url + path, body)


@asynccontextmanager
async def running(sink: AnalyticsSink) -> AsyncIterator[AnalyticsSink]:
    task = asyncio.create_task(sink.run())
    try:
        yield sink
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_documents_land_in_their_indices_with_the_bots_mappings(opensearch: Any) -> None:
    status = {"mode": "paper", "equity": 1.0, "paused": False, "instance": "t"}
    sink = AnalyticsSink(settings(opensearch.url, metrics_interval_seconds=1),
                         status_source=lambda: status)
    trade = Trade("ETH/BTC-1514764800", "ETH/BTC", Side.BUY, 0.05, 2.0, JAN1_2018, "trend",
                  0.049, 0.052, entry_fee=0.0001)
    order = Order("np-ETH/BTC-1514764800-entry", trade.trade_id, "ETH/BTC", Side.BUY,
                  OrderKind.ENTRY, 2.0, 0.05, OrderStatus.FILLED, JAN1_2018)
    async with running(sink):
        for candle in candles(300):  # 2018-01-01 and -02
            sink.candle(candle)
        sink.execution(trade, order)
        sink.execution(trade, order)  # the same trade again: one document
        sink.thought(Thought(JAN1_2018 + 60, "entry", "BUY ETH/BTC", "ETH/BTC",
                             {"confidence": 0.7, "note": "x"}))
        await eventually(lambda: sink.indexed >= 303, "every document indexed")
    assert sink.health().ok is True and sink.dropped == 0
    request(opensearch.url, "POST", "/np-*/_refresh")
    names = {row["index"] for row in request(opensearch.url, "GET", "/_cat/indices?format=json")}
    assert {"np-candles-2018.01.01", "np-candles-2018.01.02", "np-trades-2018.01.01",
            "np-thoughts-2018.01.01"} <= names
    assert any(name.startswith("np-metrics-") for name in names)
    counts = {day: request(opensearch.url, "GET", f"/np-candles-2018.01.0{day}/_count")["count"]
              for day in (1, 2)}
    assert counts == {1: 288, 2: 12}
    assert request(opensearch.url, "GET", "/np-trades-*/_count")["count"] == 1
    mapping = request(opensearch.url, "GET", "/np-candles-2018.01.01/_mapping")
    mappings = mapping["np-candles-2018.01.01"]["mappings"]
    assert mappings["dynamic"] == "strict"
    assert {k: v["type"] for k, v in mappings["properties"].items()} == {
        k: v["type"] for k, v in PROPERTIES["candles"].items()}
    stored = request(opensearch.url, "GET", "/np-trades-2018.01.01/_doc/ETH%2FBTC-1514764800")
    assert stored["_source"]["order_status"] == "filled"
    # osmem-server has no Index State Management: the bot says so and expires indices itself.
    assert sink.health().retention == "bot"


async def test_a_mapping_conflict_and_a_full_disk_each_get_a_clear_line(
        opensearch: Any, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "novapulse.analytics")
    sink = AnalyticsSink(settings(opensearch.url))
    async with running(sink):
        await eventually(lambda: sink.health().ok is True, "set up")
        # An index made by hand with a mapping that does not fit the bot's documents.
        request(opensearch.url, "PUT", "/np-candles-2018.01.01",
                {"mappings": {"properties": {"pair": {"type": "long"}}}})
        for candle in candles(2) + candles(2, start=JAN1_2018 + 5 * DAY):
            sink.candle(candle)
        await eventually(lambda: sink.indexed + sink.rejected >= 4, "the batch settled")
        assert (sink.indexed, sink.rejected) == (2, 2)
        assert "mapping conflict in np-candles-2018.01.01: mapper_parsing_exception" in (
            caplog.text)
        assert sink.health().ok is True  # the rest goes on

        # Disk past the flood-stage watermark: OpenSearch blocks writes to the index.
        request(opensearch.url, "PUT", "/np-candles-2018.01.11", {})
        request(opensearch.url, "PUT", "/np-candles-2018.01.11/_settings",
                {"index.blocks.read_only_allow_delete": True})
        for candle in candles(3, start=JAN1_2018 + 10 * DAY):
            sink.candle(candle)
        await eventually(lambda: sink.health().ok is False, "the block reported")
        assert "cluster_block_exception" in sink.health().detail
        assert "OpenSearch refuses writes: cluster_block_exception" in caplog.text
        assert sink.buffered == 3  # kept, not dropped, while the block holds
        request(opensearch.url, "PUT", "/np-candles-2018.01.11/_settings",
                {"index.blocks.read_only_allow_delete": None})
        await eventually(lambda: sink.indexed == 5, "indexed once the block is lifted")
        assert sink.health().ok is True and "takes documents again" in caplog.text


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_opensearch_gone_then_back_buffer_bounded_and_indexing_resumes(
        caplog: pytest.LogCaptureFixture) -> None:
    from osmem_server import OsmemServer

    caplog.set_level(logging.INFO, "novapulse.analytics")
    address = f"127.0.0.1:{free_port()}"
    server = OsmemServer.start(japanese=False, addr=address)
    sink = AnalyticsSink(settings(server.url, buffer_maxlen=1000, batch_size=200))
    try:
        async with running(sink):
            await eventually(lambda: sink.health().ok is True, "connected")
            await asyncio.to_thread(server.close)
            started = time.perf_counter()
            for candle in candles(3000):
                sink.candle(candle)
            handed_over = time.perf_counter() - started
            await eventually(lambda: sink.health().ok is False, "the outage noticed")
            assert "cannot reach OpenSearch at http://" + address in sink.health().detail
            assert sink.buffered <= 1000 and sink.dropped >= 2000
            assert handed_over < 0.5  # 3000 hand-offs: no network wait among them
            # A new, empty OpenSearch on the same address: set up again, then index.
            server = await asyncio.to_thread(OsmemServer.start, japanese=False, addr=address)
            await eventually(lambda: sink.indexed + sink.dropped == 3000, "indexing resumed",
                             within=15)
        assert sink.indexed == 3000 - sink.dropped
        request(server.url, "POST", "/np-*/_refresh")
        assert request(server.url, "GET", "/np-candles-*/_count")["count"] == sink.indexed
        assert "np-candles" in {t["name"] for t in request(
            server.url, "GET", "/_index_template/np-candles")["index_templates"]}
        assert "takes documents again" in caplog.text
    finally:
        await asyncio.to_thread(server.close)


async def test_a_stalled_opensearch_times_out_and_never_holds_the_hand_offs() -> None:
    accepted: list[asyncio.StreamWriter] = []

    async def accept_and_say_nothing(_: asyncio.StreamReader, writer: asyncio.StreamWriter,
                                     ) -> None:
        accepted.append(writer)

    server = await asyncio.start_server(accept_and_say_nothing, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    sink = AnalyticsSink(settings(f"http://127.0.0.1:{port}", request_timeout_seconds=0.3,
                                  buffer_maxlen=500))
    try:
        async with running(sink):
            started = time.perf_counter()
            for candle in candles(2000):
                sink.candle(candle)
            assert time.perf_counter() - started < 0.5
            await eventually(lambda: sink.health().ok is False, "the stall reported")
            assert "did not answer within 0.3s" in sink.health().detail
            assert accepted  # it did connect: the server is there, and silent
            assert (sink.buffered, sink.dropped) == (500, 1500)
    finally:
        server.close()
        for writer in accepted:
            writer.close()


@pytest.mark.parametrize(("status", "body", "expected"), [
    (401, {"error": {"type": "security_exception", "reason": "missing authentication"},
           "status": 401}, "refused the credentials (401) — check OPENSEARCH_USERNAME"),
    (404, "<html>not here</html>", "answered 404: is it OpenSearch? (check analytics.url)"),
])
async def test_refused_credentials_and_a_wrong_address_are_named(
        status: int, body: Any, expected: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)

    async def answer(_: web.Request) -> web.Response:
        if isinstance(body, dict):
            return web.json_response(body, status=status)
        return web.Response(text=body, status=status, content_type="text/html")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", answer)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    sink = AnalyticsSink(settings(f"http://127.0.0.1:{port}"), username="bot",
                         password=PASSWORD)
    try:
        async with running(sink):
            sink.candle(candles(1)[0])
            await eventually(lambda: sink.health().ok is False, "the failure reported")
            assert expected in sink.health().detail
            assert expected in caplog.text
            assert sink.buffered == 1
    finally:
        await runner.cleanup()
    assert PASSWORD not in caplog.text
