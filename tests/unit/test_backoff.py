"""Reconnect policy: growth, cap, the 1013 floor, reset after a healthy connection."""

from __future__ import annotations

import itertools

import pytest

from novapulse.market.backoff import ReconnectPolicy


def policy(rng: float = 0.5, **kwargs: float) -> ReconnectPolicy:
    return ReconnectPolicy(1.0, 60.0, 30.0, rng=lambda: rng, **kwargs)


def test_delays_grow_and_stay_within_bounds() -> None:
    p = policy()
    delays = [p.next_delay() for _ in range(12)]
    assert delays[0] == pytest.approx(2.0)
    assert all(b > a for a, b in itertools.pairwise(delays[:6]))
    assert all(1.0 <= d <= 60.0 for d in delays)
    assert delays[-1] == pytest.approx(1.0 + 0.5 * 59.0)


@pytest.mark.parametrize("rng", [0.0, 0.3, 0.999])
def test_jitter_never_leaves_the_window(rng: float) -> None:
    p = policy(rng)
    for _ in range(50):
        assert 1.0 <= p.next_delay() <= 60.0


def test_1013_waits_at_least_its_floor_and_grows() -> None:
    p = ReconnectPolicy(1.0, 60.0, 30.0, rng=lambda: 0.0)
    assert p.next_delay(1013) == 30.0
    assert p.next_delay(1013) == 60.0
    assert p.next_delay(1013) == 60.0  # capped at max(maximum, backoff_1013)
    assert p.next_delay(1006) < 30.0  # an ordinary failure is not held to the 1013 floor


def test_1013_floor_above_the_maximum_still_holds() -> None:
    p = ReconnectPolicy(0.1, 1.0, 5.0, rng=lambda: 1.0)
    assert p.next_delay(1013) == 5.0


def test_healthy_connection_resets_the_policy() -> None:
    p = policy(healthy_after=30.0)
    for _ in range(5):
        p.next_delay()
    p.connection_opened(100.0)
    p.connection_closed(110.0)  # too short: keeps growing
    assert p.next_delay() > 2.0
    p.connection_opened(200.0)
    p.connection_closed(240.0)
    assert p.next_delay() == pytest.approx(2.0)


def test_rejects_non_positive_durations() -> None:
    with pytest.raises(ValueError):
        ReconnectPolicy(0, 1, 1)
