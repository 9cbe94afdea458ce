"""Strategies by import path, the built-ins and the user's own alike.

A strategy is named `package.module:ClassName` (importable from the bot's Python path) or
`path/to/file.py:ClassName` (a file, relative to the working directory). Its `params` are the
class's constructor arguments; a dataclass's fields are type-checked. Every problem is a
`StrategyLoadError` naming the part that is wrong (`class` or `params.<name>`), so the config
that names it is refused before any candle is decided on.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib
import importlib.util
import inspect
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from novapulse.strategies.base import Strategy

# The five built-ins, as a config names them (`strategies: [{class: ...}]`).
BUILTINS: dict[str, str] = {
    "ema_cross": "novapulse.strategies.trend:EmaCrossTrend",
    "bollinger_rsi": "novapulse.strategies.mean_reversion:BollingerRsiReversion",
    "donchian_breakout": "novapulse.strategies.breakout:DonchianBreakout",
    "roc_momentum": "novapulse.strategies.momentum:RocMomentum",
    "zscore_reversion": "novapulse.strategies.zscore:ZScoreReversion",
}
_FILE_MODULE_PREFIX = "novapulse_user_strategy_"


class StrategyLoadError(ValueError):
    """`part` is `class`, `params` or `params.<name>`: where in a strategy entry it went wrong."""

    def __init__(self, part: str, message: str) -> None:
        super().__init__(f"{part}: {message}")
        self.part = part
        self.message = message


def _split(path: str) -> tuple[str, str]:
    module, sep, attr = path.rpartition(":")
    if not sep or not module or not attr.isidentifier():
        raise StrategyLoadError(
            "class", f"'{path}' is not 'package.module:ClassName' or 'file.py:ClassName'")
    return module, attr


def _import_file(file: str) -> Any:
    location = Path(file)
    if not location.is_file():
        raise StrategyLoadError("class", f"no such file '{file}' (relative paths start at the "
                                "working directory)")
    resolved = location.resolve()
    name = _FILE_MODULE_PREFIX + hashlib.sha256(str(resolved).encode()).hexdigest()[:12]
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, resolved)
    if spec is None or spec.loader is None:
        raise StrategyLoadError("class", f"cannot load '{file}' as a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        del sys.modules[name]
        raise StrategyLoadError("class", f"importing '{file}' failed: "
                                f"{type(exc).__name__}: {exc}") from exc
    return module


def _import_module(name: str) -> Any:
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        missing = exc.name or name
        where = "" if missing == name else f" (while importing '{name}')"
        raise StrategyLoadError("class", f"no module named '{missing}'{where}; is it installed "
                                "or on PYTHONPATH?") from exc
    except Exception as exc:
        raise StrategyLoadError("class", f"importing '{name}' failed: "
                                f"{type(exc).__name__}: {exc}") from exc


def load_class(path: str) -> type:
    """The class `path` names, checked to have an `evaluate(ind, candle)` method."""
    module_name, attr = _split(path)
    module = _import_file(module_name) if module_name.endswith(".py") else _import_module(
        module_name)
    cls = getattr(module, attr, None)
    if cls is None:
        raise StrategyLoadError("class", f"'{module_name}' has no attribute '{attr}'")
    if not inspect.isclass(cls):
        raise StrategyLoadError("class", f"'{path}' is a {type(cls).__name__}, not a class")
    evaluate = getattr(cls, "evaluate", None)
    if not callable(evaluate):
        raise StrategyLoadError("class", f"{attr} has no evaluate(ind, candle) method: a "
                                "strategy must implement the Strategy protocol")
    try:
        inspect.signature(evaluate).bind(None, None, None)  # self, ind, candle
    except TypeError as exc:
        raise StrategyLoadError("class", f"{attr}.evaluate must take (self, ind, candle): "
                                f"{exc}") from exc
    except ValueError:  # no signature to inspect (a builtin): trust it
        pass
    return cls


def _construct(cls: type, params: Mapping[str, Any]) -> Any:
    if dataclasses.is_dataclass(cls):
        fields = {f.name for f in dataclasses.fields(cls) if f.init}
        unknown = sorted(set(params) - fields)
        if unknown:
            raise StrategyLoadError(f"params.{unknown[0]}", f"unknown parameter of "
                                    f"{cls.__name__}; it takes {', '.join(sorted(fields))}")
        from pydantic import TypeAdapter, ValidationError  # already loaded by the config

        try:
            return TypeAdapter(cls).validate_python(dict(params))
        except ValidationError as exc:
            err = exc.errors()[0]
            where = ".".join(str(p) for p in err["loc"])
            raise StrategyLoadError(f"params.{where}" if where else "params",
                                    err["msg"]) from exc
    try:
        inspect.signature(cls).bind(**params)
    except TypeError as exc:
        raise StrategyLoadError("params", f"{cls.__name__}{_signature(cls)}: {exc}") from exc
    try:
        return cls(**params)
    except Exception as exc:
        raise StrategyLoadError("params", f"{cls.__name__}(**params) failed: "
                                f"{type(exc).__name__}: {exc}") from exc


def _signature(cls: type) -> str:
    try:
        return str(inspect.signature(cls))
    except (TypeError, ValueError):
        return "(...)"


def build_strategy(path: str, params: Mapping[str, Any] | None = None) -> Strategy:
    """An instance of the class `path` names, built with `params` and checked."""
    strategy = _construct(load_class(path), params or {})
    name = getattr(strategy, "name", None)
    if not isinstance(name, str) or not name.strip():
        raise StrategyLoadError("params.name", f"'{path}' gives its strategy no name: a "
                                "strategy needs a non-empty `name` attribute")
    result: Strategy = strategy
    return result
