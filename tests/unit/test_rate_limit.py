"""The Kraken rate limiter on an injected clock: the configured rate, Kraken's decaying REST
counter (per call costs), the per-pair matching-engine counter, and the back-off after the
exchange reports a limit anyway."""

from __future__ import annotations

import pytest

from novapulse.execution.rate_limit import (
    DecayingCounter,
    KrakenRateLimiter,
    KrakenTier,
    TokenBucket,
    engine_cost,
    rest_cost,
)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_token_bucket_spaces_calls_at_the_configured_rate() -> None:
    clock = Clock()
    limiter = KrakenRateLimiter(2.0, tier=KrakenTier.PRO, clock=clock)
    waits = [limiter.reserve("Time") for _ in range(6)]
    # a full bucket of 2 lets two calls through, then one every 0.5 s
    assert waits == pytest.approx([0.0, 0.0, 0.5, 1.0, 1.5, 2.0])


def test_token_bucket_refills_while_idle_but_never_beyond_its_capacity() -> None:
    clock = Clock()
    limiter = KrakenRateLimiter(1.0, tier=KrakenTier.PRO, clock=clock)
    assert limiter.reserve("Time") == 0.0
    clock.now += 100.0
    assert limiter.reserve("Time") == 0.0
    assert limiter.reserve("Time") == pytest.approx(1.0)


def test_rest_counter_lets_a_burst_up_to_its_maximum_then_waits_for_the_decay() -> None:
    clock = Clock()
    # a generous token bucket, so only Kraken's counter binds
    limiter = KrakenRateLimiter(50.0, tier=KrakenTier.STARTER, clock=clock)
    waits = []
    for _ in range(17):
        waits.append(limiter.reserve("QueryOrders"))
        clock.now += 0.001  # calls a millisecond apart
    assert max(waits[:15]) == pytest.approx(0.0, abs=0.05)
    # the 16th call needs one unit of decay at Starter's 0.33/s: about 3 s after the burst
    assert waits[15] == pytest.approx(1 / 0.33 - 15 * 0.001, abs=0.05)
    assert waits[16] - waits[15] == pytest.approx(1 / 0.33 - 0.001, abs=0.01)


def test_trade_history_costs_two_and_orders_nothing_on_the_rest_counter() -> None:
    assert rest_cost("TradesHistory") == 2.0
    assert rest_cost("Ledgers") == 2.0
    assert rest_cost("QueryOrders") == 1.0
    assert rest_cost("ClosedOrders") == 1.0
    assert rest_cost("AddOrder") == 0.0
    assert rest_cost("CancelOrder") == 0.0
    assert rest_cost("AssetPairs") == 0.0  # public: limited per IP, not by the key's counter
    assert engine_cost("AddOrder") == 1.0
    assert engine_cost("CancelOrder") == 8.0
    assert engine_cost("QueryOrders") == 0.0


def test_orders_do_not_wait_for_a_full_rest_counter() -> None:
    clock = Clock()
    limiter = KrakenRateLimiter(50.0, tier=KrakenTier.STARTER, clock=clock)
    for _ in range(15):
        limiter.reserve("OpenOrders")
    assert limiter.reserve("AddOrder", "ETH/BTC") == 0.0
    assert limiter.reserve("QueryOrders") > 2.0


def test_matching_engine_counter_is_per_pair() -> None:
    clock = Clock()
    limiter = KrakenRateLimiter(1000.0, tier=KrakenTier.STARTER, clock=clock)
    limiter.bucket = TokenBucket.full(1000.0, clock.now, capacity=1000.0)
    waits = [limiter.reserve("AddOrder", "ETH/BTC") for _ in range(61)]
    assert max(waits[:60]) == 0.0
    assert waits[60] == pytest.approx(1.0)  # one unit at Starter's 1/s
    # calls are served in order: LTC/BTC queues behind that order, but its own counter is
    # empty, so it adds no wait of its own (ETH/BTC's next order would wait another second)
    assert limiter.reserve("AddOrder", "LTC/BTC") == pytest.approx(1.0)
    assert limiter.reserve("AddOrder", "ETH/BTC") == pytest.approx(2.0)


def test_a_reported_rate_limit_makes_the_next_call_wait_for_the_decay() -> None:
    clock = Clock()
    limiter = KrakenRateLimiter(50.0, tier=KrakenTier.INTERMEDIATE, clock=clock)
    assert limiter.reserve("OpenOrders") == 0.0
    clock.now += 1.0
    limiter.penalize()
    assert limiter.reserve("OpenOrders") == pytest.approx(1 / 0.5)


def test_a_reported_engine_limit_holds_back_that_pairs_orders() -> None:
    clock = Clock()
    limiter = KrakenRateLimiter(50.0, tier=KrakenTier.PRO, clock=clock)
    limiter.penalize("ETH/BTC")
    assert limiter.reserve("AddOrder", "LTC/BTC") == 0.0
    assert limiter.reserve("AddOrder", "ETH/BTC") == pytest.approx(1 / 3.75)


def test_decaying_counter_never_goes_below_zero() -> None:
    counter = DecayingCounter(maximum=2.0, decay_per_s=1.0, value=1.0, at=0.0)
    assert counter.level(100.0) == 0.0
    assert counter.earliest(2.0, 100.0) == 100.0
    assert counter.earliest(3.0, 100.0) == pytest.approx(101.0)


async def test_acquire_sleeps_exactly_what_was_reserved() -> None:
    clock = Clock()
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    limiter = KrakenRateLimiter(1.0, tier=KrakenTier.PRO, clock=clock, sleep=sleep)
    await limiter.acquire("OpenOrders")
    await limiter.acquire("OpenOrders")
    assert slept == [pytest.approx(1.0)]


@pytest.mark.parametrize("rate", [0.0, -1.0])
def test_a_non_positive_rate_is_refused(rate: float) -> None:
    with pytest.raises(ValueError, match="rate_limit_per_second must be positive"):
        KrakenRateLimiter(rate)
