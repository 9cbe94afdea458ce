"""Turn the bot's pydantic JSON schema into a Kubernetes structural OpenAPI v3 schema.

Kubernetes accepts only a subset of JSON schema: no `$ref`, no `const`, no `anyOf` with
`null`, boolean `exclusiveMinimum`. Defaults are dropped on purpose: they belong to the bot,
and materialising them in every stored TradingBot would freeze today's defaults forever.
"""

from __future__ import annotations

from typing import Any

_DROP = {"title", "default", "$defs"}


def _resolve(node: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    ref = node.get("$ref")
    if not isinstance(ref, str):
        return node
    target = defs[ref.rsplit("/", 1)[-1]]
    merged = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
    return _resolve(merged, defs)


def structural(node: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    """One JSON-schema node (with its `$defs`) as a structural OpenAPI v3 node."""
    node = _resolve(node, defs)
    out: dict[str, Any] = {}
    any_of = node.get("anyOf")
    if isinstance(any_of, list):
        options = [o for o in any_of if o.get("type") != "null"]
        if len(options) != 1:
            raise ValueError(f"cannot express anyOf with {len(options)} non-null options")
        out.update(structural(options[0], defs))
        if len(options) < len(any_of):
            out["nullable"] = True
    for key, value in node.items():
        if key in _DROP or key == "anyOf" or key == "$ref":
            continue
        if key == "const":
            out["enum"] = [value]
        elif key in ("exclusiveMinimum", "exclusiveMaximum"):
            bound = "minimum" if key == "exclusiveMinimum" else "maximum"
            out[bound] = value
            out[key] = True
        elif key == "properties":
            out["properties"] = {k: structural(v, defs) for k, v in value.items()}
        elif key == "items":
            out["items"] = structural(value, defs)
        elif key == "additionalProperties":
            if isinstance(value, dict):
                out["additionalProperties"] = structural(value, defs)
            # `false` is how Kubernetes behaves anyway for declared properties: unknown
            # fields are pruned, and `kubectl apply` (strict field validation) refuses them.
        else:
            out[key] = value
    return out


def config_schema(json_schema: dict[str, Any]) -> dict[str, Any]:
    """The structural schema of `spec.config` from `novapulse.config.config_json_schema()`."""
    defs = json_schema.get("$defs", {})
    out = structural(json_schema, defs)
    out["description"] = (
        "Overrides of the bot's configuration (novapulse.config.Config); validated again by "
        "the operator with the bot's own model, cross-field rules included."
    )
    return out
