"""Environment overrides of the config, each remembered with the variable it came from.

`NOVAPULSE__SECTION__FIELD=value` (values parsed as YAML scalars), plus the runbooks'
`TRADING_MODE`, `DATABASE_URL` and `KRAKEN_REST_URL`. Knowing the variable lets an error name
it: a typo in an environment variable is otherwise reported as if the config file had it.
Values are never repeated in messages (a URL may carry a password).
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import yaml
from pydantic import BaseModel

ENV_PREFIX = "NOVAPULSE__"
FROM_ENV = "(from the environment)"


@dataclass(frozen=True)
class EnvSetting:
    variable: str
    path: tuple[str, ...]
    value: Any


def read_env(environ: Mapping[str, str]) -> tuple[list[EnvSetting], list[str]]:
    """The settings the environment asks for, and a message per value that cannot be read."""
    settings: list[EnvSetting] = []
    errors: list[str] = []
    for name, raw in sorted(environ.items()):
        if not name.startswith(ENV_PREFIX):
            continue
        path = tuple(p.lower() for p in name[len(ENV_PREFIX):].split("__") if p)
        if not path:
            continue
        try:
            value = yaml.safe_load(raw) if raw != "" else ""
        except yaml.YAMLError:
            errors.append(f"{name}: not a valid YAML value {FROM_ENV}")
            continue
        settings.append(EnvSetting(name, path, value))
    if environ.get("TRADING_MODE"):
        mode = environ["TRADING_MODE"].strip().lower()
        settings.append(EnvSetting("TRADING_MODE", ("trading", "mode"), mode))
    if environ.get("DATABASE_URL"):
        settings.append(EnvSetting("DATABASE_URL", ("database", "url"), environ["DATABASE_URL"]))
    if environ.get("KRAKEN_REST_URL"):
        settings.append(EnvSetting("KRAKEN_REST_URL", ("exchange", "rest_url"),
                                   environ["KRAKEN_REST_URL"]))
    return settings, errors


def unknown_name(model: type[BaseModel], path: Sequence[str]) -> tuple[str, str] | None:
    """Why `path` names no setting of `model` and a hint: ("unknown section 'tradng'",
    "; did you mean 'trading'?"); None when it does (as far as the model's sections go)."""
    for depth, key in enumerate(path):
        fields = model.model_fields
        if key not in fields:
            where = "section" if depth == 0 else "setting"
            return f"unknown {where} '{'.'.join(path[: depth + 1])}'", did_you_mean(
                key, list(fields)
            )
        annotation = fields[key].annotation
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return None
        model = annotation
    return None


def did_you_mean(name: str, choices: list[str]) -> str:
    close = difflib.get_close_matches(name, choices, n=1)
    return f"; did you mean '{close[0]}'?" if close else ""


def variable_for(loc: Sequence[str | int], settings: Sequence[EnvSetting]) -> str | None:
    """The variable that set the value at `loc` (or a section holding it), if one did."""
    where = tuple(str(p) for p in loc)
    for setting in settings:
        if where[: len(setting.path)] == setting.path:
            return setting.variable
    return None
