from __future__ import annotations

import math
from collections import Counter
from functools import cache
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from novapulse.indicators import PairIndicators
from novapulse.market.candle_files import load_candles
from novapulse.models import Candle
from novapulse.strategies import (
    NO_SIGNAL,
    BollingerRsiReversion,
    Decision,
    DonchianBreakout,
    EmaCrossTrend,
    Ensemble,
    RocMomentum,
    Signal,
    Strategy,
    ZScoreReversion,
    default_strategies,
)

SAMPLES = sorted((Path(__file__).parents[2] / "data" / "sample").glob("*.csv.gz"))
PAIR = "ETH/XBT"


def make_candles(closes: list[float], volumes: list[float] | None = None) -> list[Candle]:
    candles, opened = [], closes[0]
    for k, close in enumerate(closes):
        volume = volumes[k] if volumes else 100.0
        candles.append(Candle(PAIR, k * 300, opened, max(opened, close) * 1.001,
                              min(opened, close) * 0.999, close, volume))
        opened = close
    return candles


def quiet_wave(n: int = 150, base: float = 0.05, amplitude: float = 0.0001) -> list[float]:
    """A calm oscillation: enough history for every indicator, no signal of its own."""
    return [base + amplitude * math.sin(2 * math.pi * k / 8) for k in range(n)]


def signals(strategy: Strategy, candles: list[Candle]) -> list[Signal]:
    ind = PairIndicators(PAIR)
    out = []
    for candle in candles:
        ind.update(candle)
        if ind.ready:
            signal = strategy.evaluate(ind, candle)
            if signal is not None:
                out.append(signal)
    return out


def directions(found: list[Signal]) -> set[int]:
    return {s.direction for s in found}


def steps(start: float, step: float, count: int) -> list[float]:
    return [start * (1 + step * k) for k in range(1, count + 1)]


def zigzag(start: float, step: float, count: int) -> list[float]:
    """A trend with a small pullback every other candle (keeps RSI below its extremes)."""
    sign = 1.0 if step > 0 else -1.0
    return [start * (1 + step * k) if k % 2 else start * (1 + step * (k - 1) - sign * 0.001)
            for k in range(1, count + 1)]


def downtrend_then_up() -> list[float]:
    down = [0.05 * (1 - 0.002 * k) for k in range(150)]
    return down + steps(down[-1], 0.003, 59)


def build_triggers() -> dict[str, tuple[Strategy, list[Candle], list[Candle]]]:
    """Per strategy: (strategy, a series that should buy, a series that should sell)."""
    base = quiet_wave()
    up = downtrend_then_up()
    volumes = [100.0] * 150 + [400.0] * 3
    return {
        "ema_cross": (EmaCrossTrend(), make_candles(up),
                      make_candles([0.0025 / x for x in up])),
        "bollinger_rsi": (BollingerRsiReversion(), make_candles(base + steps(base[-1], -0.003, 3)),
                          make_candles(base + steps(base[-1], 0.003, 4))),
        "donchian_breakout": (DonchianBreakout(),
                              make_candles([*base, 0.0512, 0.0515, 0.0518], volumes),
                              make_candles([*base, 0.0488, 0.0485, 0.0482], volumes)),
        "roc_momentum": (RocMomentum(), make_candles(base + zigzag(base[-1], 0.003, 13)),
                         make_candles(base + zigzag(base[-1], -0.003, 13))),
        "zscore_reversion": (ZScoreReversion(),
                             make_candles([*base, base[-1] * 0.99, base[-1] * 0.991]),
                             make_candles([*base, base[-1] * 1.01, base[-1] * 1.009])),
    }


@pytest.mark.parametrize("name", ["ema_cross", "bollinger_rsi", "donchian_breakout",
                                  "roc_momentum", "zscore_reversion"])
def test_strategy_fires_on_its_setup_and_says_why(name: str) -> None:
    strategy, buy_setup, sell_setup = build_triggers()[name]
    assert strategy.name == name
    bought = signals(strategy, buy_setup)
    sold = signals(strategy, sell_setup)
    assert directions(bought) == {1}
    assert directions(sold) == {-1}
    for signal in bought + sold:
        assert signal.strategy == name
        assert 0.0 <= signal.strength <= 1.0
        assert signal.reason


def test_a_calm_sideways_wave_triggers_nothing() -> None:
    for strategy in default_strategies():
        assert signals(strategy, make_candles(quiet_wave(200))) == []


def test_trend_reason_is_plain_words() -> None:
    strategy, buy_setup, _ = build_triggers()["ema_cross"]
    assert signals(strategy, buy_setup)[0].reason.startswith(
        "EMA 12 crossed above EMA 26 with MACD histogram > 0 ("
    )


@pytest.mark.parametrize("price", [4e-5, 0.05, 30_000.0])
def test_every_strategy_is_silent_on_a_flat_series(price: float) -> None:
    flat = [Candle(PAIR, k * 300, price, price, price, price, 50.0) for k in range(300)]
    for strategy in default_strategies():
        assert signals(strategy, flat) == [], strategy.name


@cache
def sample_signal_counts(name: str) -> tuple[Counter[tuple[str, int]], int]:
    candles = load_candles(next(p for p in SAMPLES if p.name == name))
    strategies = default_strategies()
    ind = PairIndicators(candles[0].pair)
    counts: Counter[tuple[str, int]] = Counter()
    for candle in candles:
        ind.update(candle)
        if ind.ready:
            for strategy in strategies:
                signal = strategy.evaluate(ind, candle)
                if signal is not None:
                    counts[(strategy.name, signal.direction)] += 1
    return counts, len(candles)


@pytest.mark.parametrize("name", [p.name for p in SAMPLES])
def test_each_strategy_signals_both_ways_on_real_data(name: str) -> None:
    counts, candles = sample_signal_counts(name)
    for strategy in default_strategies():
        assert counts[(strategy.name, 1)] > 0, f"{strategy.name} never buys on {name}"
        assert counts[(strategy.name, -1)] > 0, f"{strategy.name} never sells on {name}"
    # Votes, not noise: all five together speak up less than once every two candles.
    assert sum(counts.values()) < 0.5 * candles


def vote(strategy: str, direction: int, strength: float = 1.0) -> Signal:
    return Signal(strategy, direction, strength, f"{strategy} says {direction}")


NAMES = ("a", "b", "c")


class Fixed:
    """A strategy that always says the same thing, and counts how often it was asked."""

    def __init__(self, name: str, direction: int | None, strength: float = 1.0) -> None:
        self.name = name
        self.direction = direction
        self.strength = strength
        self.calls = 0

    def evaluate(self, ind: PairIndicators, candle: Candle) -> Signal | None:
        self.calls += 1
        if self.direction is None:
            return None
        return vote(self.name, self.direction, self.strength)


def ensemble(weights: dict[str, float] | None = None) -> Ensemble:
    return Ensemble([Fixed(n, None) for n in NAMES], weights or {})


def test_heavier_side_wins_and_agreement_sets_confidence() -> None:
    ens = ensemble({"a": 2.0, "b": 1.0, "c": 1.0})
    decision = ens.decide([vote("a", 1), vote("b", -1)])
    assert decision.direction == 1
    # agreement (2 - 1) / 3, winners' strength 1, winners' share of weight 2 / 4
    assert decision.confidence == pytest.approx((1 / 3) * (0.7 * 1.0 + 0.3 * 0.5))
    assert decision.votes == (vote("a", 1), vote("b", -1))
    assert decision.reason.startswith("buy: a (1.00)")
    assert "1 against" in decision.reason


def test_unanimous_full_strength_vote_is_full_confidence() -> None:
    decision = ensemble().decide([vote(n, -1) for n in NAMES])
    assert decision.direction == -1
    assert decision.confidence == pytest.approx(1.0)


def test_disabled_and_zero_weight_strategies_do_not_vote() -> None:
    ens = ensemble({"c": 0.0})
    decision = ens.decide([vote("a", 1, 0.6), vote("b", -1), vote("c", -1)], disabled={"b"})
    assert decision.direction == 1
    assert [v.strategy for v in decision.votes] == ["a"]
    # enabled weight is a (1) + c (0): a alone carries all of it
    assert decision.confidence == pytest.approx(0.7 * 0.6 + 0.3 * 1.0)


def test_tie_and_silence_are_neutral() -> None:
    ens = ensemble()
    assert ens.decide([vote("a", 1, 0.5), vote("b", -1, 0.5)]).direction == 0
    assert ens.decide([]).direction == 0
    assert ens.decide([vote("a", 0)]).confidence == 0.0


def test_weights_can_be_updated_and_must_not_be_negative() -> None:
    ens = ensemble()
    ens.update_weights({"b": 3.0})
    assert ens.weights == {"a": 1.0, "b": 3.0, "c": 1.0}
    assert ens.decide([vote("a", 1), vote("b", -1)]).direction == -1
    with pytest.raises(ValueError):
        ens.update_weights({"a": -1.0})


def test_duplicate_strategy_names_are_refused() -> None:
    with pytest.raises(ValueError):
        Ensemble([Fixed("a", 1), Fixed("a", -1)], {})


@given(st.lists(st.tuples(st.sampled_from(NAMES), st.sampled_from([-1, 0, 1]),
                          st.floats(0.0, 1.0)), max_size=6),
       st.dictionaries(st.sampled_from(NAMES), st.floats(0.0, 5.0)),
       st.sets(st.sampled_from(NAMES)))
def test_confidence_is_always_within_0_and_1(
    raw: list[tuple[str, int, float]], weights: dict[str, float], disabled: set[str]
) -> None:
    decision = ensemble(weights).decide([vote(*r) for r in raw], disabled)
    assert 0.0 <= decision.confidence <= 1.0
    assert decision.direction in (-1, 0, 1)
    assert all(v.strategy not in disabled for v in decision.votes)
    if decision.direction == 0:
        assert decision.confidence == 0.0


def ready_indicators() -> tuple[PairIndicators, Candle]:
    ind = PairIndicators(PAIR)
    candles = make_candles(quiet_wave())
    for candle in candles:
        ind.update(candle)
    assert ind.ready
    return ind, candles[-1]


def test_evaluate_all_skips_disabled_strategies_and_waits_for_warmup() -> None:
    a, b = Fixed("a", 1, 0.9), Fixed("b", -1)
    ens = Ensemble([a, b], {})
    ind, candle = ready_indicators()
    decision = ens.evaluate_all(ind, candle, disabled={"b"})
    assert (decision.direction, b.calls, a.calls) == (1, 0, 1)
    assert ens.evaluate_all(PairIndicators(PAIR), candle) is NO_SIGNAL
    assert a.calls == 1


def test_confidence_adjuster_is_applied_and_its_failures_ignored() -> None:
    ind, candle = ready_indicators()
    seen: list[Decision] = []

    def halve(decision: Decision, indicators: PairIndicators) -> float:
        seen.append(decision)
        return decision.confidence / 2

    ens = Ensemble([Fixed("a", 1)], {}, confidence_adjuster=halve)
    decision = ens.evaluate_all(ind, candle)
    assert decision.confidence == pytest.approx(seen[0].confidence / 2)
    assert "model confidence" in decision.reason

    def broken(decision: Decision, indicators: PairIndicators) -> float:
        raise RuntimeError("model file missing")

    ens.confidence_adjuster = broken
    assert ens.evaluate_all(ind, candle).confidence == seen[0].confidence
