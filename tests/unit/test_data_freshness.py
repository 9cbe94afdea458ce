"""The stale-data gate judges market time: how late a candle was known closed, and how far it
lags the market clock — not the milliseconds it spent in a queue."""

from __future__ import annotations

from dataclasses import replace

import pytest

from novapulse.config import Config, FeedConfig
from novapulse.engine import Engine
from novapulse.execution.paper import PaperExecutor
from novapulse.market import kraken_protocol as kp
from novapulse.market.kraken_ws import KrakenWsClient
from novapulse.models import Candle
from novapulse.thoughts import ThoughtLog
from support.engine_fixtures import ETH_CANDLES, AlwaysBullish

HOUR = 3600
T0 = 1_515_600_000 - 1_515_600_000 % HOUR
CANDLES = ETH_CANDLES


def hourly(ts: int) -> Candle:
    return Candle("ETH/BTC", ts, 0.09, 0.091, 0.089, 0.0905, 10.0, HOUR)


def frame(candle: Candle, sent_at: float) -> str:
    return kp.ohlc_message([candle], snapshot=False, now=sent_at)


def test_a_quiet_pairs_candle_closed_by_a_late_trade_is_late() -> None:
    closed: list[tuple[Candle, float]] = []
    client = KrakenWsClient("ws://unused", ["ETH/BTC"], 60, lambda c: closed.append(
        (c, client.market_lag(c))), FeedConfig())
    client._handle_frame(frame(hourly(T0), T0 + 1_800))
    # The next trade comes 20 minutes into the next hour: only now is the 12:00 candle closed.
    client._handle_frame(frame(hourly(T0 + HOUR), T0 + HOUR + 1_200))
    assert [(c.ts, lag) for c, lag in closed] == [(T0, 1_200.0)]


def test_a_candle_closed_on_time_is_fresh() -> None:
    closed: list[float] = []
    client = KrakenWsClient("ws://unused", ["ETH/BTC"], 60, lambda c: closed.append(
        client.market_lag(c)), FeedConfig())
    client._handle_frame(frame(hourly(T0), T0 + 1_800))
    client._handle_frame(frame(hourly(T0 + HOUR), T0 + HOUR + 0.4))
    assert closed == [pytest.approx(0.4, abs=1e-6)]




def engine_with(stale_after: int) -> Engine:
    base = Config()
    config = base.model_copy(update={"risk": base.risk.model_copy(
        update={"stale_data_seconds": stale_after})})
    engine = Engine(config, PaperExecutor(0.0026, 5), ThoughtLog(100), strategies=[AlwaysBullish()])
    for candle in CANDLES[:100]:
        engine.warm_up(candle)
        engine.warm_up(replace(candle, pair="LTC/BTC"))
    return engine


def test_a_pair_lagging_the_market_clock_is_stale_even_when_the_feed_says_fresh() -> None:
    engine = engine_with(stale_after=900)
    now_candle = CANDLES[110]
    engine.on_candle(replace(now_candle, pair="ETH/BTC"))  # the market is at candle 110
    late = replace(CANDLES[105], pair="LTC/BTC")  # 25 minutes behind it
    assert engine.on_candle(late, data_age_s=0.0) == []
    blocked = [t for t in engine.thoughts.recent() if t.kind == "blocked"]
    assert blocked[-1].message == "Data freshness check failed" and blocked[-1].pair == "LTC/BTC"


def test_the_feeds_lateness_reaches_the_gate() -> None:
    engine = engine_with(stale_after=900)
    assert engine.on_candle(CANDLES[100], data_age_s=1_200.0) == []
    assert engine.thoughts.recent()[-1].message == "Data freshness check failed"
    assert len(engine.on_candle(CANDLES[101], data_age_s=0.4)) == 1  # fresh: it enters
