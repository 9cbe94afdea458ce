"""Analytics, the pure parts: the bounded buffer, documents and their indices, mappings, the
retention policy, and one clear sentence for each way OpenSearch fails (runbook 12)."""

from __future__ import annotations

import math
from typing import Any

import pytest
from opensearchpy import exceptions as os_errors

from novapulse.analytics.buffer import DropOldestBuffer
from novapulse.analytics.documents import candle_doc, index_name, metrics_doc, thought_doc
from novapulse.analytics.errors import Problem, bulk_item_verdict, describe
from novapulse.analytics.mappings import (
    PROPERTIES,
    index_template,
    policy_age,
    retention_policy,
)
from novapulse.analytics.retention import expired
from novapulse.analytics.sink import AnalyticsSink, _finite, build_sink, safe_url
from novapulse.config import AnalyticsConfig, ConfigError, load_config
from novapulse.models import Candle, Thought

URL = "http://127.0.0.1:9200"


def test_buffer_drops_the_oldest_and_counts() -> None:
    buffer: DropOldestBuffer[int] = DropOldestBuffer(3)
    for i in range(5):
        buffer.put(i)
    assert (len(buffer), buffer.dropped) == (3, 2)
    assert buffer.take(10) == [2, 3, 4]


def test_a_batch_put_back_goes_first_and_loses_its_oldest_when_room_is_short() -> None:
    buffer: DropOldestBuffer[int] = DropOldestBuffer(4)
    for i in range(4):
        buffer.put(i)
    batch = buffer.take(3)  # 0, 1, 2 in flight
    buffer.put(10)
    buffer.put(11)  # room for one of the batch now
    buffer.put_back(batch)
    assert buffer.take(10) == [2, 3, 10, 11]
    assert buffer.dropped == 2


def test_documents_go_to_date_suffixed_indices_by_their_own_time() -> None:
    candle = Candle("ETH/BTC", 1_514_764_500, 1.0, 2.0, 0.5, 1.5, 10.0)  # 2017-12-31 23:55
    doc = candle_doc(candle)
    assert index_name("novapulse", doc.kind, doc.ts) == "novapulse-candles-2017.12.31"
    assert doc.doc_id == "ETH/BTC-1514764500"  # sent twice, stored once
    assert doc.body["@timestamp"] == 1_514_764_500_000
    assert set(doc.body) <= set(PROPERTIES["candles"])


def test_every_document_field_is_mapped() -> None:
    thought = thought_doc(Thought(1.7e9, "entry", "BUY", "ETH/BTC", {"x": 1.0}))
    assert set(thought.body) <= set(PROPERTIES["thoughts"])
    metrics = metrics_doc({"equity": 1.0, "paused": True, "mode": "paper"}, 1.7e9,
                          {"analytics_buffered": 0.0, "analytics_dropped": 0.0})
    assert set(metrics.body) <= set(PROPERTIES["metrics"])
    assert metrics.body["paused"] is True and metrics.body["bankroll"] is None


def test_no_nan_reaches_json() -> None:
    assert _finite({"a": math.nan, "b": 1.0, "c": "x"}) == {"a": None, "b": 1.0, "c": "x"}


def test_templates_are_strict_and_match_only_their_kind() -> None:
    template = index_template("np", "trades")
    assert template["index_patterns"] == ["np-trades-*"]
    assert template["template"]["mappings"]["dynamic"] == "strict"


def test_retention_policy_deletes_after_the_configured_age() -> None:
    policy = retention_policy("np", 7)
    assert policy_age(policy) == "7d"
    assert policy["policy"]["ism_template"][0]["index_patterns"] == ["np-*"]
    assert {"delete": {}} in policy["policy"]["states"][1]["actions"]


def test_without_ism_the_bot_expires_indices_by_their_creation_time() -> None:
    day = 86_400.0
    now = 100 * day
    rows = [("np-candles-2018.01.01", now - 1 * day),  # replayed 2018 data, created today
            ("np-thoughts-2026.01.01", now - 31 * day), ("np-metrics-x", now - 30 * day)]
    assert expired(rows, 30, now) == ["np-metrics-x", "np-thoughts-2026.01.01"]


@pytest.mark.parametrize(("exc", "problem", "words"), [
    (os_errors.ConnectionError("N/A", "Connection refused", OSError(111, "refused")),
     Problem.UNREACHABLE, "cannot reach OpenSearch at http://127.0.0.1:9200"),
    (os_errors.ConnectionTimeout("TIMEOUT", "timed out", TimeoutError()), Problem.TIMEOUT,
     "did not answer within 5s"),
    (os_errors.AuthenticationException(401, "security_exception", {}), Problem.UNAUTHORIZED,
     "refused the credentials (401)"),
    (os_errors.AuthorizationException(403, "security_exception", {"error": {
        "reason": "no permissions"}}), Problem.FORBIDDEN, "forbids this user (403)"),
    (os_errors.TransportError(429, "cluster_block_exception", {"error": {
        "type": "cluster_block_exception", "reason": "index [x] blocked by: [FORBIDDEN/12/"
        "index read-only / allow delete (api)]"}}), Problem.BLOCKED, "cluster_block_exception"),
    (os_errors.NotFoundError(404, "Not Found", "<html>"), Problem.NOT_OPENSEARCH,
     "is it OpenSearch?"),
])
def test_each_failure_gets_one_clear_sentence(exc: Exception, problem: Problem,
                                              words: str) -> None:
    failure = describe(exc, URL, 5.0)
    assert failure.problem is problem
    assert words in failure.message


def test_bulk_items_blocked_wait_and_mapping_conflicts_drop() -> None:
    blocked = bulk_item_verdict("np-x", 429, {"type": "cluster_block_exception",
                                              "reason": "flood-stage watermark"})
    assert blocked.retry and "disk" in blocked.message
    conflict = bulk_item_verdict("np-candles-2026.01.01", 400, {
        "type": "mapper_parsing_exception", "reason": "failed to parse field [pair]",
        "caused_by": {"reason": "For input string"}})
    assert not conflict.retry and conflict.problem is Problem.MAPPING
    assert "mapping conflict in np-candles-2026.01.01" in conflict.message


def test_credentials_never_show_in_the_url_reported() -> None:
    assert safe_url("https://bot:s3cret@os.example:9200/") == "https://os.example:9200/"
    sink = AnalyticsSink(AnalyticsConfig(enabled=True, url="https://bot:s3cret@os:9200"))
    assert "s3cret" not in sink.health().detail


def test_enabled_without_a_url_is_a_config_error_and_disabled_builds_nothing() -> None:
    with pytest.raises(ConfigError, match=r"analytics\.url is required"):
        load_config(None, environ={}, overrides={"analytics": {"enabled": True}})
    assert build_sink(AnalyticsConfig(), {}) is None


def test_hand_offs_never_wait_and_respect_the_bound() -> None:
    sink = AnalyticsSink(AnalyticsConfig(enabled=True, url=URL, buffer_maxlen=100))
    for i in range(250):
        sink.candle(Candle("ETH/BTC", i * 300, 1.0, 1.0, 1.0, 1.0, 1.0))
    health = sink.health()
    assert (health.buffered, health.dropped, health.ok) == (100, 150, None)


def test_a_bulk_body_is_valid_ndjson_whatever_the_numbers() -> None:
    import json

    from novapulse.analytics.sink import bulk_body

    doc = thought_doc(Thought(1.7e9, "entry", "x", None, {"score": math.inf}))
    lines = bulk_body("np", [doc, candle_doc(Candle("ETH/BTC", 0, 1, 1, 1, 1, math.nan))])
    parsed = [json.loads(line) for line in lines.splitlines()]
    assert parsed[0] == {"index": {"_index": "np-thoughts-2023.11.14"}}
    assert parsed[1]["data"] == {"score": None} and parsed[3]["volume"] is None
    assert parsed[2]["index"]["_id"] == "ETH/BTC-0"


class _Transport:
    """Answers the ISM policy paths like an OpenSearch with the plugin would."""

    def __init__(self, installed: dict[str, Any] | None) -> None:
        self.installed = installed
        self.calls: list[tuple[str, str, dict[str, Any] | None]] = []

    async def perform_request(self, method: str, path: str, body: Any = None,
                              params: dict[str, Any] | None = None) -> Any:
        self.calls.append((method, path, params))
        if method == "GET":
            if self.installed is None:
                raise os_errors.NotFoundError(404, "status_exception", {"error": {
                    "type": "status_exception", "reason": "Policy not found"}})
            return self.installed
        self.installed = {**body, "_seq_no": 7, "_primary_term": 1}
        return {"_id": path.rsplit("/", 1)[-1]}


class _Client:
    def __init__(self, transport: _Transport) -> None:
        self.transport = transport


async def test_the_ism_policy_is_installed_then_updated_in_place_when_the_age_changes() -> None:
    from novapulse.analytics.retention import Retention, install_retention

    transport = _Transport(None)
    assert await install_retention(_Client(transport), "np", 30) is Retention.ISM  # type: ignore[arg-type]
    assert transport.calls[-1] == ("PUT", "/_plugins/_ism/policies/np-retention", None)
    assert await install_retention(_Client(transport), "np", 30) is Retention.ISM  # type: ignore[arg-type]
    assert transport.calls[-1][0] == "GET"  # unchanged: left alone
    assert await install_retention(_Client(transport), "np", 7) is Retention.ISM  # type: ignore[arg-type]
    assert transport.calls[-1] == ("PUT", "/_plugins/_ism/policies/np-retention",
                                   {"if_seq_no": 7, "if_primary_term": 1})
    assert policy_age(transport.installed or {}) == "7d"
