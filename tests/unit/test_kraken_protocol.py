"""Kraken WS v2 codec: request builders, frame parsing, malformed input, encoder round trip."""

from __future__ import annotations

import json

import pytest

from novapulse.market import kraken_protocol as kp
from novapulse.market.kraken_ws import CandleCloser
from novapulse.models import Candle

CANDLE = Candle("ETH/XBT", 1515560100, 0.0984, 0.0995, 0.0983, 0.0994, 1820.5, 300)


def ohlc_frame(**overrides: object) -> str:
    item = kp.candle_to_ohlc_item(CANDLE)
    item.update(overrides)
    return json.dumps({"channel": "ohlc", "type": "update", "data": [item]})


def test_subscribe_message_has_the_v2_shape() -> None:
    message = json.loads(kp.subscribe_message(["ETH/XBT", "LTC/XBT"], 5, 7))
    assert message == {
        "method": "subscribe",
        "params": {"channel": "ohlc", "symbol": ["ETH/XBT", "LTC/XBT"], "interval": 5,
                   "snapshot": True},
        "req_id": 7,
    }
    assert json.loads(kp.unsubscribe_message(["ETH/XBT"], 5, 8))["method"] == "unsubscribe"
    assert json.loads(kp.ping_message(3)) == {"method": "ping", "req_id": 3}


def test_subscribe_rejects_an_interval_kraken_does_not_offer() -> None:
    with pytest.raises(ValueError, match="interval 7"):
        kp.subscribe_message(["ETH/XBT"], 7, 1)


def test_kraken_documentation_example_parses() -> None:
    frame = json.dumps({
        "channel": "ohlc", "type": "snapshot", "timestamp": "2023-10-04T16:26:01.806315597Z",
        "data": [{"symbol": "ALGO/USD", "open": 0.09875, "high": 0.0988, "low": 0.09875,
                  "close": 0.09875, "trades": 13, "volume": 16255.46368, "vwap": 0.09879,
                  "interval_begin": "2023-10-04T15:30:00.000000000Z", "interval": 5,
                  "timestamp": "2023-10-04T15:35:00.000000Z"}],
    })
    event = kp.parse_message(frame)
    assert isinstance(event, kp.OhlcUpdate) and event.snapshot
    (candle,) = event.candles
    assert candle == Candle("ALGO/USD", 1696433400, 0.09875, 0.0988, 0.09875, 0.09875,
                            16255.46368, 300)


def test_encoder_round_trips_a_candle() -> None:
    event = kp.parse_message(kp.ohlc_message([CANDLE], snapshot=False, now=1.5))
    assert event == kp.OhlcUpdate(snapshot=False, candles=(CANDLE,), sent_at=1.5)
    assert kp.candle_to_ohlc_item(CANDLE)["interval_begin"] == "2018-01-10T04:55:00.000000000Z"


@pytest.mark.parametrize(
    ("frame", "expected"),
    [
        ('{"channel": "heartbeat"}', kp.Heartbeat()),
        (kp.status_message(connection_id=9), kp.Status("online", "v2", 9)),
        ('{"method": "pong", "req_id": 4}', kp.Pong(4)),
        ('{"channel": "book", "type": "update", "data": []}',
         kp.Unknown({"channel": "book", "type": "update", "data": []})),
    ],
)
def test_service_frames(frame: str, expected: kp.Event) -> None:
    assert kp.parse_message(frame) == expected


def test_subscribe_acks_success_and_error() -> None:
    request = kp.parse_request(kp.subscribe_message(["ETH/XBT"], 5, 11))
    assert isinstance(request, kp.SubscriptionRequest)
    ok = kp.parse_message(kp.subscription_ack(request, "ETH/XBT", now=0))
    assert ok == kp.SubscribeAck(True, "subscribe", "ohlc", "ETH/XBT", None, 11)
    bad = kp.parse_message(
        kp.subscription_ack(request, "NOPE/XBT", now=0, error="Currency pair not supported")
    )
    assert isinstance(bad, kp.SubscribeAck)
    assert not bad.success and bad.symbol == "NOPE/XBT"
    assert bad.error == "Currency pair not supported"


@pytest.mark.parametrize(
    ("frame", "reason"),
    [
        ("{not json", "not JSON"),
        ("[1, 2]", "JSON object"),
        ('{"channel": "ohlc", "type": "update"}', "'data' must be a list"),
        ('{"channel": "ohlc", "type": "delta", "data": []}', "'type'"),
        (ohlc_frame(open="0.1"), "'open' must be a number"),
        (ohlc_frame(close=True), "'close' must be a number"),
        (ohlc_frame(high=float("nan")), "finite"),
        (ohlc_frame(low=-1.0), "'low' must be positive"),
        (ohlc_frame(high=0.01), "below low"),
        (ohlc_frame(volume=-3.0), "'volume' must not be negative"),
        (ohlc_frame(interval_begin="yesterday"), "RFC3339"),
        (ohlc_frame(interval_begin="2023-02-30T00:00:00Z"), "valid date"),
        (ohlc_frame(symbol=""), "'symbol'"),
        (ohlc_frame(interval=0), "'interval'"),
        ('{"channel": "status", "data": []}', "status"),
        ('{"method": "subscribe", "success": "yes"}', "'success'"),
    ],
)
def test_malformed_frames_raise_with_a_reason(frame: str, reason: str) -> None:
    with pytest.raises(kp.MalformedMessage, match=reason):
        kp.parse_message(frame)


def test_rfc3339_precision_and_offsets() -> None:
    assert kp.parse_rfc3339("2023-10-04T15:30:00.000000000Z") == 1696433400
    assert kp.parse_rfc3339("2023-10-04T15:30:00.5Z") == 1696433400.5
    assert kp.parse_rfc3339("2023-10-04T17:30:00+02:00") == 1696433400
    assert kp.format_rfc3339(1696433400.25) == "2023-10-04T15:30:00.250000000Z"


def test_candle_closer_emits_each_closed_candle_once_in_order() -> None:
    closer = CandleCloser("ETH/XBT")

    def at(ts: int, close: float = 1.0) -> Candle:
        return Candle("ETH/XBT", ts, 1.0, 2.0, 0.5, close, 1.0, 300)

    emitted: list[Candle] = []

    def feed(candle: Candle) -> None:
        for closed in closer.feed(candle):
            closer.mark_emitted(closed)
            emitted.append(closed)

    feed(at(0, 1.1))
    feed(at(0, 1.2))  # repeated update of the candle in progress
    feed(at(300))
    assert emitted == [at(0, 1.2)]
    for candle in (at(0), at(300), at(600), at(900)):  # a snapshot after a reconnect
        feed(candle)
    assert [c.ts for c in emitted] == [0, 300, 600]
