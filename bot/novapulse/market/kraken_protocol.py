"""Kraken WebSocket v2 messages: building requests, parsing frames into typed events.

Pure functions only, shared by the client (`kraken_ws`) and the replay server. Shapes follow
https://docs.kraken.com/api/docs/websocket-v2/ohlc (and the heartbeat/status/ping pages).
"""

from __future__ import annotations

import calendar
import json
import math
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from novapulse.models import Candle

OHLC_CHANNEL = "ohlc"
VALID_INTERVALS = (1, 5, 15, 30, 60, 240, 1440, 10080, 21600)

_RFC3339 = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(Z|[+-]\d{2}:\d{2})$"
)


class MalformedMessage(ValueError):
    """A frame that does not follow the protocol; the reason says what is wrong with it."""


# --- events -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class OhlcUpdate:
    snapshot: bool
    candles: tuple[Candle, ...]
    # When the exchange sent it (the message's `timestamp`), epoch seconds; None if absent.
    sent_at: float | None = None


@dataclass(frozen=True, slots=True)
class Heartbeat:
    pass


@dataclass(frozen=True, slots=True)
class Status:
    system: str
    api_version: str | None = None
    connection_id: int | None = None


@dataclass(frozen=True, slots=True)
class SubscribeAck:
    success: bool
    method: str = "subscribe"
    channel: str | None = None
    symbol: str | None = None
    error: str | None = None
    req_id: int | None = None


@dataclass(frozen=True, slots=True)
class Pong:
    req_id: int | None = None


@dataclass(frozen=True, slots=True)
class Unknown:
    raw: dict[str, Any] = field(default_factory=dict)


Event = OhlcUpdate | Heartbeat | Status | SubscribeAck | Pong | Unknown


# --- requests (client -> server) ----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SubscriptionRequest:
    method: str  # "subscribe" or "unsubscribe"
    channel: str
    symbols: tuple[str, ...]
    interval: int | None
    snapshot: bool
    req_id: int | None


@dataclass(frozen=True, slots=True)
class PingRequest:
    req_id: int | None


Request = SubscriptionRequest | PingRequest


def subscribe_message(
    pairs: list[str], interval_minutes: int, req_id: int, *, snapshot: bool = True
) -> str:
    return _subscription("subscribe", pairs, interval_minutes, req_id, snapshot=snapshot)


def unsubscribe_message(pairs: list[str], interval_minutes: int, req_id: int) -> str:
    return _subscription("unsubscribe", pairs, interval_minutes, req_id, snapshot=None)


def _subscription(
    method: str, pairs: list[str], interval: int, req_id: int, *, snapshot: bool | None
) -> str:
    if interval not in VALID_INTERVALS:
        raise ValueError(f"interval {interval} is not one of Kraken's {VALID_INTERVALS}")
    params: dict[str, Any] = {"channel": OHLC_CHANNEL, "symbol": list(pairs), "interval": interval}
    if snapshot is not None:
        params["snapshot"] = snapshot
    return json.dumps({"method": method, "params": params, "req_id": req_id})


def ping_message(req_id: int) -> str:
    return json.dumps({"method": "ping", "req_id": req_id})


def parse_request(text: str | bytes) -> Request:
    """What the replay server needs to understand of a client frame."""
    message = _load_object(text)
    method = message.get("method")
    req_id = _optional_int(message, "req_id")
    if method == "ping":
        return PingRequest(req_id)
    if method not in ("subscribe", "unsubscribe"):
        raise MalformedMessage(f"unsupported method {method!r}")
    params = message.get("params")
    if not isinstance(params, dict):
        raise MalformedMessage(f"{method}: 'params' must be an object")
    channel = params.get("channel")
    if not isinstance(channel, str):
        raise MalformedMessage(f"{method}: 'params.channel' must be a string")
    symbols = params.get("symbol")
    if not isinstance(symbols, list) or not all(isinstance(s, str) for s in symbols):
        raise MalformedMessage(f"{method}: 'params.symbol' must be a list of strings")
    interval = _optional_int(params, "interval")
    snapshot = params.get("snapshot", True)
    if not isinstance(snapshot, bool):
        raise MalformedMessage(f"{method}: 'params.snapshot' must be a boolean")
    return SubscriptionRequest(method, channel, tuple(symbols), interval, snapshot, req_id)


# --- parsing server frames ----------------------------------------------------------------


def parse_message(text: str | bytes) -> Event:
    """One server frame as an event. Raises MalformedMessage for anything not well formed."""
    message = _load_object(text)
    channel = message.get("channel")
    if channel == "heartbeat":
        return Heartbeat()
    if channel == "status":
        return _parse_status(message)
    if channel == OHLC_CHANNEL:
        return _parse_ohlc(message)
    method = message.get("method")
    if method in ("subscribe", "unsubscribe"):
        return _parse_ack(message, method)
    if method == "pong":
        return Pong(_optional_int(message, "req_id"))
    return Unknown(message)


def _load_object(text: str | bytes) -> dict[str, Any]:
    try:
        message = json.loads(text)
    except (ValueError, UnicodeDecodeError) as exc:
        raise MalformedMessage(f"not JSON: {exc}") from None
    if not isinstance(message, dict):
        raise MalformedMessage(f"expected a JSON object, got {type(message).__name__}")
    return message


def _parse_status(message: dict[str, Any]) -> Status:
    data = message.get("data")
    if not isinstance(data, list) or not data or not isinstance(data[0], dict):
        raise MalformedMessage("status: 'data' must be a non-empty list of objects")
    item = data[0]
    system = item.get("system")
    if not isinstance(system, str):
        raise MalformedMessage("status: 'data[0].system' must be a string")
    api_version = item.get("api_version")
    return Status(
        system=system,
        api_version=api_version if isinstance(api_version, str) else None,
        connection_id=_optional_int(item, "connection_id"),
    )


def _parse_ack(message: dict[str, Any], method: str) -> SubscribeAck:
    success = message.get("success")
    if not isinstance(success, bool):
        raise MalformedMessage(f"{method} ack: 'success' must be a boolean")
    result = message.get("result")
    result = result if isinstance(result, dict) else {}
    channel = result.get("channel")
    symbol = result.get("symbol", message.get("symbol"))
    error = message.get("error")
    return SubscribeAck(
        success=success,
        method=method,
        channel=channel if isinstance(channel, str) else None,
        symbol=symbol if isinstance(symbol, str) else None,
        error=str(error) if error is not None else None,
        req_id=_optional_int(message, "req_id"),
    )


def _parse_ohlc(message: dict[str, Any]) -> OhlcUpdate:
    kind = message.get("type")
    if kind not in ("snapshot", "update"):
        raise MalformedMessage(f"ohlc: 'type' must be 'snapshot' or 'update', got {kind!r}")
    data = message.get("data")
    if not isinstance(data, list):
        raise MalformedMessage("ohlc: 'data' must be a list")
    candles = tuple(_parse_candle(item, index) for index, item in enumerate(data))
    stamp = message.get("timestamp")
    sent_at = parse_rfc3339(stamp) if isinstance(stamp, str) else None
    return OhlcUpdate(snapshot=kind == "snapshot", candles=candles, sent_at=sent_at)


def _parse_candle(item: object, index: int) -> Candle:
    where = f"ohlc data[{index}]"
    if not isinstance(item, dict):
        raise MalformedMessage(f"{where}: expected an object")
    symbol = item.get("symbol")
    if not isinstance(symbol, str) or not symbol:
        raise MalformedMessage(f"{where}: 'symbol' must be a non-empty string")
    interval = item.get("interval")
    if not isinstance(interval, int) or isinstance(interval, bool) or interval <= 0:
        raise MalformedMessage(f"{where}: 'interval' must be a positive integer (minutes)")
    begin = item.get("interval_begin")
    if not isinstance(begin, str):
        raise MalformedMessage(f"{where}: 'interval_begin' must be an RFC3339 string")
    ts = parse_rfc3339(begin)
    prices = {name: _number(item, name, where) for name in ("open", "high", "low", "close")}
    for name, value in prices.items():
        if value <= 0:
            raise MalformedMessage(f"{where}: '{name}' must be positive, got {value}")
    if prices["high"] < prices["low"]:
        raise MalformedMessage(f"{where}: high {prices['high']} below low {prices['low']}")
    volume = _number(item, "volume", where)
    if volume < 0:
        raise MalformedMessage(f"{where}: 'volume' must not be negative, got {volume}")
    return Candle(
        pair=symbol,
        ts=int(ts),
        open=prices["open"],
        high=prices["high"],
        low=prices["low"],
        close=prices["close"],
        volume=volume,
        interval_s=interval * 60,
    )


def _number(item: dict[str, Any], name: str, where: str) -> float:
    value = item.get(name)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise MalformedMessage(f"{where}: '{name}' must be a number, got {value!r}")
    number = float(value)
    if not math.isfinite(number):
        raise MalformedMessage(f"{where}: '{name}' must be finite, got {value!r}")
    return number


def _optional_int(item: dict[str, Any], name: str) -> int | None:
    value = item.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise MalformedMessage(f"'{name}' must be an integer, got {value!r}")
    return value


# --- time ---------------------------------------------------------------------------------


def parse_rfc3339(text: str) -> float:
    """RFC3339 with up to nanosecond precision (Kraken sends 9 digits) to epoch seconds."""
    match = _RFC3339.match(text)
    if not match:
        raise MalformedMessage(f"not an RFC3339 timestamp: {text!r}")
    year, month, day, hour, minute, second = (int(match[i]) for i in range(1, 7))
    try:
        datetime(year, month, day, hour, minute, second)
    except ValueError as exc:
        raise MalformedMessage(f"not a valid date: {text!r} ({exc})") from None
    seconds = float(calendar.timegm((year, month, day, hour, minute, second, 0, 0, 0)))
    if match[7]:
        seconds += int(match[7]) / 10 ** len(match[7])
    offset = match[8]
    if offset != "Z":
        sign = 1 if offset[0] == "+" else -1
        seconds -= sign * (int(offset[1:3]) * 3600 + int(offset[4:6]) * 60)
    return seconds


def format_rfc3339(epoch_seconds: float, *, digits: int = 9) -> str:
    """Epoch seconds as RFC3339 UTC with `digits` fractional digits (…T15:25:00.000000000Z)."""
    whole = math.floor(epoch_seconds)
    fraction = round((epoch_seconds - whole) * 10**digits)
    if fraction >= 10**digits:
        whole, fraction = whole + 1, 0
    stamp = datetime.fromtimestamp(whole, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{stamp}.{fraction:0{digits}d}Z" if digits else f"{stamp}Z"


# --- encoders (the replay server speaks as Kraken) ----------------------------------------


def candle_to_ohlc_item(
    candle: Candle, *, trades: int = 0, vwap: float | None = None
) -> dict[str, Any]:
    """One element of an ohlc message's `data`. Kraken's deprecated per-candle `timestamp`
    carries the interval's end in its examples; `interval_begin` is what clients should use."""
    return {
        "symbol": candle.pair,
        "open": candle.open,
        "high": candle.high,
        "low": candle.low,
        "close": candle.close,
        "trades": trades,
        "volume": candle.volume,
        "vwap": vwap if vwap is not None else (candle.high + candle.low + candle.close) / 3,
        "interval_begin": format_rfc3339(candle.ts),
        "interval": candle.interval_s // 60,
        "timestamp": format_rfc3339(candle.close_ts, digits=6),
    }


def ohlc_message(candles: list[Candle], *, snapshot: bool, now: float) -> str:
    return json.dumps(
        {
            "channel": OHLC_CHANNEL,
            "type": "snapshot" if snapshot else "update",
            "timestamp": format_rfc3339(now),
            "data": [candle_to_ohlc_item(c) for c in candles],
        }
    )


def heartbeat_message() -> str:
    return json.dumps({"channel": "heartbeat"})


def status_message(*, system: str = "online", connection_id: int = 0) -> str:
    return json.dumps(
        {
            "channel": "status",
            "type": "update",
            "data": [
                {
                    "api_version": "v2",
                    "connection_id": connection_id,
                    "system": system,
                    "version": "2.0.0",
                }
            ],
        }
    )


def subscription_ack(
    request: SubscriptionRequest, symbol: str, *, now: float, error: str | None = None
) -> str:
    stamps = {"time_in": format_rfc3339(now, digits=6), "time_out": format_rfc3339(now, digits=6)}
    body: dict[str, Any] = {"method": request.method, "success": error is None}
    if error is None:
        result: dict[str, Any] = {"channel": request.channel, "symbol": symbol}
        if request.interval is not None:
            result["interval"] = request.interval
        if request.method == "subscribe":
            result["snapshot"] = request.snapshot
        body["result"] = result
    else:
        body["error"] = error
        body["symbol"] = symbol
    body.update(stamps)
    if request.req_id is not None:
        body["req_id"] = request.req_id
    return json.dumps(body)


def pong_message(req_id: int | None, *, now: float) -> str:
    body: dict[str, Any] = {
        "method": "pong",
        "time_in": format_rfc3339(now, digits=6),
        "time_out": format_rfc3339(now, digits=6),
    }
    if req_id is not None:
        body["req_id"] = req_id
    return json.dumps(body)
