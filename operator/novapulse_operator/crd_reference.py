"""The TradingBot reference in README.md, generated from the CRD (`crds/tradingbot.yaml`).

Every field of `spec` except the inside of `spec.config` (the bot's own configuration, whose
schema is the config model's) becomes a row: path, type, default, description, validation,
exactly as the CRD says them — a field the CRD does not describe gets an empty cell. The
table replaces what stands between the marker comments in README.md:

    python -m novapulse_operator.crd_reference [--crd crds/tradingbot.yaml] [--readme README.md]
    python -m novapulse_operator.crd_reference --check     # exit 1 when README.md is stale

`make crds` runs it after regenerating the CRD.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

START = "<!-- tradingbot-reference:start -->"
END = "<!-- tradingbot-reference:end -->"
GENERATED_BY = ("<!-- generated from crds/tradingbot.yaml by `python -m "
                "novapulse_operator.crd_reference` (make crds): do not edit by hand -->")
CONFIG_FIELD = "spec.config"
CONFIG_POINTER = ("Its fields are the bot's configuration, `bot/novapulse/config.py`: "
                  "`novapulse config schema` prints them all, `examples/bot-config.yaml` shows "
                  "the ones the runbooks name, with their defaults.")

Schema = Mapping[str, Any]


class SectionMissing(ValueError):
    pass


def storage_schema(crd: Schema) -> tuple[str, Schema]:
    """(version name, its openAPIV3Schema) of the CRD's storage version."""
    versions: Sequence[Schema] = crd["spec"]["versions"]
    version = next((v for v in versions if v.get("storage")), versions[0])
    return str(version["name"]), version["schema"]["openAPIV3Schema"]


def _code(text: str) -> str:
    """A code span that survives a markdown table: `|` escaped, backticks doubled around."""
    text = text.replace("|", "\\|")
    return f"`` {text} ``" if "`" in text else f"`{text}`"


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def _value(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True)


def type_of(node: Schema) -> str:
    if node.get("x-kubernetes-int-or-string"):
        return "int or string"
    kind = node.get("type")
    if kind == "array":
        return f"array of {type_of(node.get('items', {}))}"
    if kind == "object" or (kind is None and "properties" in node):
        extra = node.get("additionalProperties")
        if isinstance(extra, Mapping) and not node.get("properties"):
            return f"map of {type_of(extra)}"
        if node.get("x-kubernetes-preserve-unknown-fields") and not node.get("properties"):
            return "object (free-form)"
        return "object"
    if kind is None and "anyOf" in node:
        return " or ".join(type_of(option) for option in node["anyOf"])
    return str(kind or "any")


def _rules(node: Schema) -> list[str]:
    """Validation of one node itself (not of its items or its fields)."""
    rules: list[str] = []
    if "enum" in node:
        rules.append("one of " + ", ".join(_code(_value(v)) for v in node["enum"]))
    if "pattern" in node:
        rules.append("pattern " + _code(str(node["pattern"])))
    for low, high, unit in (("minLength", "maxLength", "characters"),
                            ("minItems", "maxItems", "items"),
                            ("minProperties", "maxProperties", "entries")):
        if low in node and high in node:
            rules.append(f"{node[low]} to {node[high]} {unit}")
        elif node.get(low) == 1:
            rules.append("not empty")
        elif low in node:
            rules.append(f"at least {node[low]} {unit}")
        elif high in node:
            rules.append(f"at most {node[high]} {unit}")
    low_open, high_open = node.get("exclusiveMinimum"), node.get("exclusiveMaximum")
    if "minimum" in node and "maximum" in node and not (low_open or high_open):
        rules.append(f"{_value(node['minimum'])} to {_value(node['maximum'])}")
    else:
        if "minimum" in node:
            rules.append(("> " if low_open else "≥ ") + _value(node["minimum"]))
        if "maximum" in node:
            rules.append(("< " if high_open else "≤ ") + _value(node["maximum"]))
    for check in node.get("x-kubernetes-validations", []):
        rules.append(_cell(str(check["message"])) if check.get("message")
                     else "rule " + _code(str(check["rule"])))
    return rules


def _validation(node: Schema, required: bool) -> str:
    rules = ["required"] if required else []
    rules += _rules(node)
    items = node.get("items")
    if isinstance(items, Mapping) and not items.get("properties"):
        each = _rules(items)
        if each:
            rules.append("each item: " + ", ".join(each))
    if node.get("required") and node.get("properties"):
        rules.append("needs " + ", ".join(_code(str(f)) for f in node["required"]))
    return "; ".join(rules)


def rows(spec: Schema) -> list[tuple[str, str, str, str, str]]:
    """(path, type, default, description, validation) for every field under `spec`, depth
    first in the CRD's order; `spec.config` is one row (what is inside is the bot's config)."""
    found: list[tuple[str, str, str, str, str]] = []

    def visit(node: Schema, path: str, required: bool) -> None:
        default = _code(_value(node["default"])) if "default" in node else ""
        description = _cell(str(node.get("description", "")))
        if path == CONFIG_FIELD:
            description = f"{description} {CONFIG_POINTER}".strip()
        found.append((_code(path), type_of(node), default, description,
                      _validation(node, required)))
        if path == CONFIG_FIELD:
            return
        needed = set(node.get("required", []))
        for name, child in (node.get("properties") or {}).items():
            visit(child, f"{path}.{name}", name in needed)
        items = node.get("items")
        if isinstance(items, Mapping) and items.get("properties"):
            needed_items = set(items.get("required", []))
            for name, child in items["properties"].items():
                visit(child, f"{path}[].{name}", name in needed_items)

    needed = set(spec.get("required", []))
    for name, child in (spec.get("properties") or {}).items():
        visit(child, f"spec.{name}", name in needed)
    return found


def render(crd: Schema) -> str:
    """The markdown that goes between the markers."""
    version, root = storage_schema(crd)
    spec: Schema = root["properties"]["spec"]
    names = crd["spec"]["names"]
    short = ", ".join(_code(n) for n in names.get("shortNames", []))
    lines = [
        GENERATED_BY,
        "",
        f"`apiVersion: {crd['spec']['group']}/{version}`, `kind: {names['kind']}`"
        + (f" (short name {short})" if short else "")
        + (f": {_cell(str(root['description']))}" if root.get("description") else ""),
        "",
        "| field | type | default | description | validation |",
        "|---|---|---|---|---|",
    ]
    lines += ["| " + " | ".join(row) + " |" for row in rows(spec)]
    checks = spec.get("x-kubernetes-validations", [])
    if checks:
        lines += ["", "Rules across fields (the API server refuses a TradingBot that breaks "
                  "one):", ""]
        lines += [f"- {_cell(str(c.get('message') or c['rule']))}" for c in checks]
    return "\n".join(lines) + "\n"


def replace_section(readme: str, section: str) -> str:
    """README text with `section` between the markers (each on a line of its own)."""
    start, end = readme.find(START), readme.find(END)
    if start < 0 or end < 0 or end < start:
        raise SectionMissing(f"README has no {START} ... {END} section")
    head = readme[: start + len(START)]
    return f"{head}\n{section}{readme[end:]}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m novapulse_operator.crd_reference",
                                     description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--crd", type=Path, default=Path("crds/tradingbot.yaml"))
    parser.add_argument("--readme", type=Path, default=Path("README.md"))
    parser.add_argument("--check", action="store_true",
                        help="change nothing; exit 1 when the README's reference is stale")
    args = parser.parse_args(argv)
    crd = yaml.safe_load(args.crd.read_text())
    readme = args.readme.read_text()
    try:
        updated = replace_section(readme, render(crd))
    except SectionMissing as exc:
        print(f"{args.readme}: {exc}", file=sys.stderr)
        return 2
    if args.check:
        if updated != readme:
            print(f"{args.readme}: the TradingBot reference is stale: run `make crds`",
                  file=sys.stderr)
            return 1
        return 0
    if updated != readme:
        args.readme.write_text(updated)
        print(f"{args.readme}: TradingBot reference updated from {args.crd}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
