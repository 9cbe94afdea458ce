"""Strategies by import path: built-ins and user classes load with their params; a bad path,
a class without `evaluate`, or bad params refuse the config with the field named."""

from __future__ import annotations

from pathlib import Path

import pytest

from novapulse.config import ConfigError, build_config
from novapulse.engine import Engine
from novapulse.execution.paper import PaperExecutor
from novapulse.strategies import EmaCrossTrend, ZScoreReversion, default_strategies
from novapulse.strategies.loader import BUILTINS, StrategyLoadError, build_strategy
from novapulse.thoughts import ThoughtLog

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "strategies" / "trend_pullback.py"


def refused(strategies: list[dict[str, object]], **extra: object) -> list[str]:
    with pytest.raises(ConfigError) as info:
        build_config({"strategies": strategies, **extra})
    return info.value.errors


def test_every_builtin_is_addressable_by_its_import_path() -> None:
    names = {build_strategy(path).name: path for path in BUILTINS.values()}
    assert set(names) == set(BUILTINS) == {s.name for s in default_strategies()}


def test_builtin_params_are_applied_and_weights_reach_the_ensemble() -> None:
    config = build_config({"strategies": [
        {"class": BUILTINS["ema_cross"], "params": {"min_hist_atr": 0.2}, "weight": 2.0},
        {"class": BUILTINS["zscore_reversion"], "params": {"threshold": "3"}},
    ]})
    engine = Engine(config, PaperExecutor(0.0026, 5.0), ThoughtLog(10))
    assert engine.strategy_names == ["ema_cross", "zscore_reversion"]
    ema, zscore = engine.ensemble.strategies
    assert isinstance(ema, EmaCrossTrend) and isinstance(zscore, ZScoreReversion)
    assert ema.min_hist_atr == 0.2 and zscore.threshold == 3.0
    assert engine.ensemble.weights == {"ema_cross": 2.0, "zscore_reversion": 1.0}
    assert engine.book.weight("ema_cross") == 2.0


def test_a_user_strategy_from_a_file_and_from_a_module(monkeypatch: pytest.MonkeyPatch) -> None:
    by_file = build_strategy(f"{EXAMPLE}:TrendPullback", {"dip_rsi": 35})
    assert by_file.name == "trend_pullback" and repr(by_file).endswith(
        "(name='trend_pullback', dip_rsi=35.0, exit_rsi=68.0)")
    monkeypatch.syspath_prepend(str(EXAMPLE.parent))
    by_module = build_strategy("trend_pullback:TrendPullback", {"name": "pullback_2"})
    assert by_module.name == "pullback_2"


def test_no_strategies_section_means_the_five_defaults() -> None:
    config = build_config({})
    assert config.strategies is None
    engine = Engine(config, PaperExecutor(0.0026, 5.0), ThoughtLog(10))
    assert engine.strategy_names == [s.name for s in default_strategies()]


@pytest.mark.parametrize(("entry", "expected"), [
    ({"class": "no_such_pkg.mod:Thing"}, "strategies.0.class: no module named 'no_such_pkg'"),
    ({"class": "novapulse.strategies.trend:Nope"},
     "strategies.0.class: 'novapulse.strategies.trend' has no attribute 'Nope'"),
    ({"class": "novapulse.models:Candle"}, "strategies.0.class: Candle has no evaluate"),
    ({"class": "novapulse.strategies:default_strategies"}, "is a function, not a class"),
    ({"class": "just_a_module"}, "strategies.0.class: 'just_a_module' is not"),
    ({"class": "missing_file.py:X"}, "strategies.0.class: no such file 'missing_file.py'"),
    ({"class": BUILTINS["ema_cross"], "params": {"min_hist_atr": "steep"}},
     "strategies.0.params: min_hist_atr: Input should be a valid number"),
    ({"class": BUILTINS["ema_cross"], "params": {"fast": 3}},
     "strategies.0.params: fast: unknown parameter of EmaCrossTrend; it takes"),
    ({"class": BUILTINS["ema_cross"], "weight": -1}, "strategies.0.weight: Input should be"),
    ({"class": BUILTINS["ema_cross"], "wieght": 1}, "strategies.0.wieght:"),
])
def test_a_broken_strategy_is_refused_with_its_reason(entry: dict[str, object],
                                                      expected: str) -> None:
    errors = refused([entry])
    assert any(expected in e for e in errors), errors


def test_a_class_whose_evaluate_takes_the_wrong_arguments(tmp_path: Path) -> None:
    module = tmp_path / "odd.py"
    module.write_text("class Odd:\n    name = 'odd'\n    def evaluate(self, ind):\n"
                      "        return None\n\nclass Nameless:\n"
                      "    def evaluate(self, ind, candle):\n        return None\n\n"
                      "class Exploding:\n    name = 'x'\n    def __init__(self, level: int):\n"
                      "        raise RuntimeError('no')\n"
                      "    def evaluate(self, ind, candle):\n        return None\n")
    assert "Odd.evaluate must take (self, ind, candle)" in refused(
        [{"class": f"{module}:Odd"}])[0]
    assert "strategies.0.params: name: " in refused([{"class": f"{module}:Nameless"}])[0]
    assert "strategies.0.params: Exploding(**params) failed: RuntimeError: no" in refused(
        [{"class": f"{module}:Exploding", "params": {"level": 1}}])[0]
    with pytest.raises(StrategyLoadError, match="missing a required argument: 'level'"):
        build_strategy(f"{module}:Exploding", {"lvl": 1})


def test_a_module_that_fails_to_import_says_why(tmp_path: Path) -> None:
    module = tmp_path / "broken.py"
    module.write_text("import math\nraise ValueError('half written')\n")
    assert "importing" in refused([{"class": f"{module}:X"}])[0]
    assert "ValueError: half written" in refused([{"class": f"{module}:X"}])[0]


def test_names_must_be_unique_and_weights_set_once() -> None:
    twice: list[dict[str, object]] = [{"class": BUILTINS["ema_cross"]},
                                      {"class": BUILTINS["ema_cross"]}]
    assert "strategies.1: a second strategy named 'ema_cross'" in refused(twice)[0]
    renamed = build_config({"strategies": [
        twice[0], {"class": BUILTINS["ema_cross"], "params": {"name": "ema_slow"}}]})
    assert [s.build().name for s in renamed.strategies or []] == ["ema_cross", "ema_slow"]
    conflict = refused([{"class": BUILTINS["ema_cross"], "weight": 2.0}],
                       ai={"strategy_weights": {"ema_cross": 0.5}})
    assert "strategies.0.weight: 2 conflicts with ai.strategy_weights.ema_cross" in conflict[0]


def test_the_operator_shows_a_broken_strategy_in_config_valid() -> None:
    from novapulse_operator.rendering import validate
    from novapulse_operator.spec import parse_spec

    spec = parse_spec({"mode": "paper", "pairs": ["ETH/BTC"], "config": {"strategies": [
        {"class": "my_pkg.mod:MyStrategy"},
        {"class": BUILTINS["ema_cross"], "params": {"min_hist_atr": "x"}}]}})
    errors = validate(spec, "paper", "test")
    assert errors[0].startswith("strategies.0.class: no module named 'my_pkg'")
    assert errors[1].startswith("strategies.1.params: min_hist_atr: Input should be")
