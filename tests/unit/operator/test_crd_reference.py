"""The TradingBot reference in README.md is generated from crds/tradingbot.yaml: every spec
field outside spec.config, with its type, default, description and validation as the CRD has
them. A stale README fails here (`make crds` rewrites it)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from novapulse_operator.crd_reference import (
    END,
    START,
    SectionMissing,
    main,
    render,
    replace_section,
    storage_schema,
)

ROOT = Path(__file__).resolve().parents[3]
CRD_PATH = ROOT / "crds" / "tradingbot.yaml"


def crd_with(spec: dict[str, Any]) -> dict[str, Any]:
    return {"spec": {"group": "novapulse.io", "names": {"kind": "TradingBot", "shortNames": ["tb"]},
                     "versions": [{"name": "v1alpha1", "storage": True, "schema": {
                         "openAPIV3Schema": {"type": "object", "description": "A bot.",
                                             "properties": {"spec": spec}}}}]}}


def table_rows(markdown: str) -> dict[str, list[str]]:
    """Row cells by field path (the first cell, without its backticks)."""
    rows = {}
    for line in markdown.splitlines():
        if line.startswith("| `"):
            cells = [c.strip() for c in line.strip("|").split(" | ")]
            rows[cells[0].strip("`")] = cells
    return rows


def test_the_readme_reference_is_the_crds() -> None:
    crd = yaml.safe_load(CRD_PATH.read_text())
    readme = (ROOT / "README.md").read_text()
    assert replace_section(readme, render(crd)) == readme, (
        "README.md's TradingBot reference is stale: run `make crds` "
        "(or python -m novapulse_operator.crd_reference)")


def test_every_spec_field_outside_config_has_a_row() -> None:
    crd = yaml.safe_load(CRD_PATH.read_text())
    _, root = storage_schema(crd)
    expected: list[str] = []

    def walk(node: dict[str, Any], path: str) -> None:
        expected.append(path)
        if path == "spec.config":
            return
        for name, child in (node.get("properties") or {}).items():
            walk(child, f"{path}.{name}")
        for name, child in ((node.get("items") or {}).get("properties") or {}).items():
            walk(child, f"{path}[].{name}")

    for name, child in root["properties"]["spec"]["properties"].items():
        walk(child, f"spec.{name}")
    rows = table_rows(render(crd))
    assert list(rows) == expected
    assert {"spec.mode", "spec.remediation.feed.pauseAfter", "spec.config"} <= set(rows)
    assert not any(path.startswith("spec.config.") for path in rows)


def test_a_row_says_what_the_crd_says_and_nothing_it_does_not() -> None:
    spec = {
        "type": "object",
        "required": ["mode"],
        "x-kubernetes-validations": [{"rule": "self.mode == 'paper' || has(self.key)",
                                      "message": "live needs a key"}],
        "properties": {
            "mode": {"type": "string", "enum": ["paper", "live"], "default": "paper",
                     "description": "How it trades:\n  paper | live."},
            "pairs": {"type": "array", "minItems": 1, "maxItems": 5,
                      "items": {"type": "string", "pattern": "^[A-Z]+/(BTC|EUR)$"}},
            "size": {"x-kubernetes-int-or-string": True, "default": "5Gi",
                     "anyOf": [{"type": "integer"}, {"type": "string"}]},
            "restarts": {"type": "integer", "minimum": 0, "maximum": 60},
            "notional": {"type": "number", "minimum": 0, "exclusiveMinimum": True},
            "peers": {"type": "array", "items": {"type": "object", "properties": {
                "cidr": {"type": "string", "minLength": 1}}, "required": ["cidr"]}},
            "config": {"type": "object", "description": "The bot's config.",
                       "properties": {"trading": {"type": "object", "description": "inside"}}},
        },
    }
    markdown = render(crd_with(spec))
    rows = table_rows(markdown)
    assert rows["spec.mode"] == ["`spec.mode`", "string", "`paper`",
                                 "How it trades: paper \\| live.",
                                 "required; one of `paper`, `live`"]
    assert rows["spec.pairs"][1:] == [
        "array of string", "", "", "1 to 5 items; each item: pattern `^[A-Z]+/(BTC\\|EUR)$`"]
    assert rows["spec.size"][1:3] == ["int or string", "`5Gi`"]
    assert rows["spec.restarts"][4] == "0 to 60"
    assert rows["spec.notional"][4] == "> 0"
    assert rows["spec.peers[].cidr"][1:] == ["string", "", "", "required; not empty"]
    # no description in the CRD: an empty cell, never an invented one
    assert rows["spec.restarts"][3] == ""
    assert rows["spec.config"][3].startswith("The bot's config. Its fields are the bot's")
    assert "spec.config.trading" not in rows
    assert "- live needs a key" in markdown
    assert "`apiVersion: novapulse.io/v1alpha1`, `kind: TradingBot` (short name `tb`): A bot." \
        in markdown


def test_the_section_goes_between_the_markers_and_check_spots_a_stale_one(
        tmp_path: Path) -> None:
    crd = tmp_path / "crd.yaml"
    crd.write_text(yaml.safe_dump(crd_with({"type": "object", "properties": {
        "mode": {"type": "string", "description": "first"}}})))
    readme = tmp_path / "README.md"
    readme.write_text(f"# Title\n\nbefore\n\n{START}\nold table\n{END}\n\nafter\n")
    args = ["--crd", str(crd), "--readme", str(readme)]
    assert main([*args, "--check"]) == 1
    assert main(args) == 0
    text = readme.read_text()
    assert text.startswith(f"# Title\n\nbefore\n\n{START}\n<!-- generated from")
    assert text.endswith(f"| `spec.mode` | string |  | first |  |\n{END}\n\nafter\n")
    assert "old table" not in text
    assert main([*args, "--check"]) == 0

    crd.write_text(crd.read_text().replace("first", "changed"))
    assert main([*args, "--check"]) == 1
    readme.write_text("no markers\n")
    assert main(args) == 2
    with pytest.raises(SectionMissing):
        replace_section("no markers", "x")
