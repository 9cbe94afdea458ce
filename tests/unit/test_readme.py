"""README.md names only what exists: every repository path it mentions (in code spans, code
blocks and links) is there, every `make TARGET` is a Makefile target, and every `novapulse`
and `novapulse-operator` command is one the command line knows. Paths under what .gitignore
keeps out of the repository (`.venv/`, `data/demo/`, ...) are made at run time: not checked."""

from __future__ import annotations

import argparse
import fnmatch
import re
from pathlib import Path

import pytest

from novapulse.cli import build_parser
from novapulse_operator.cli import _parser as operator_parser

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()

FENCED = re.compile(r"^```[^\n]*\n(.*?)^```", re.S | re.M)
SPAN = re.compile(r"(`+)(.+?)\1", re.S)
LINK = re.compile(r"\]\(([^)\s]+)\)")
SPLIT = re.compile(r"[\s,;=:()\[\]{}\"'<>$|]+")


def code_texts(markdown: str) -> list[str]:
    """Code blocks and inline code spans: where commands and paths are written."""
    blocks = FENCED.findall(markdown)
    prose = FENCED.sub("", markdown)
    return blocks + [m.group(2) for m in SPAN.finditer(prose)]


def gitignore_patterns() -> list[str]:
    lines = (ROOT / ".gitignore").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def made_at_run_time(path: str, patterns: list[str]) -> bool:
    """Whether .gitignore keeps `path` out of the repository (its last matching rule wins)."""
    parts = path.strip("/").split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    ignored = False
    for raw in patterns:
        negated = raw.startswith("!")
        pattern = raw.lstrip("!")
        anchored = "/" in pattern.rstrip("/")
        pattern = pattern.strip("/")
        for prefix in prefixes:
            name = prefix if anchored else prefix.rsplit("/", 1)[-1]
            if fnmatch.fnmatchcase(name, pattern):
                ignored = not negated
    return ignored


def repository_paths(markdown: str) -> set[str]:
    """Words in code or link targets that are paths in this repository: relative, with a `/`,
    starting at one of its top-level entries (`ETH/BTC` and `/api/v1/status` are not)."""
    top_level = {entry.name for entry in ROOT.iterdir()}
    words = [w for text in code_texts(markdown) for w in SPLIT.split(text)]
    words += [t for t in LINK.findall(markdown) if "://" not in t and not t.startswith("#")]
    paths = set()
    for word in words:
        word = word.rstrip(".,;:…").removeprefix("./")
        if "/" not in word or word.startswith(("/", "~")):
            continue
        if word.split("/", 1)[0] in top_level:
            paths.add(word)
    return paths


def test_the_path_finder_sees_what_a_reader_sees() -> None:
    text = ("Run `novapulse run --feed replay:data/sample/ETH_BTC-5m.csv.gz` on `ETH/BTC`, see "
            "[the runbooks](docs/runbooks.md) and `GET /api/v1/status`.\n\n```bash\n"
            "kubectl apply -f examples/nothing.yaml   # docs/x.md\n```\n")
    assert repository_paths(text) == {"data/sample/ETH_BTC-5m.csv.gz", "docs/runbooks.md",
                                      "examples/nothing.yaml", "docs/x.md"}
    patterns = gitignore_patterns()
    assert made_at_run_time(".venv/bin/novapulse", patterns)
    assert made_at_run_time("data/demo/", patterns)
    assert not made_at_run_time("data/sample/ETH_BTC-5m.csv.gz", patterns)
    assert not made_at_run_time("examples/tradingbot-paper.yaml", patterns)


def test_every_repository_path_the_readme_names_exists() -> None:
    patterns = gitignore_patterns()
    checked = sorted(p for p in repository_paths(README) if not made_at_run_time(p, patterns))
    missing = [p for p in checked if not any(ROOT.glob(p.rstrip("/")))]
    assert not missing, f"README.md names paths that do not exist: {missing}"
    assert "examples/tradingbot-paper.yaml" in checked and "docs/runbooks.md" in checked


def makefile_targets() -> set[str]:
    targets = set()
    for line in (ROOT / "Makefile").read_text().splitlines():
        match = re.match(r"^([A-Za-z0-9_.-]+(?:\s+[A-Za-z0-9_.-]+)*)\s*:(?!=)", line)
        if match:
            targets.update(match.group(1).split())
    return targets


def test_every_make_target_the_readme_names_is_in_the_makefile() -> None:
    named = {m.group(1) for text in code_texts(README)
             for m in re.finditer(r"(?:^|[\s;&|(])make\s+([A-Za-z][\w-]*)", text)}
    assert {"demo", "test", "demo-reset", "kind-demo", "crds"} <= named
    assert named <= makefile_targets(), f"not Makefile targets: {named - makefile_targets()}"


def commands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    actions = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(actions[0].choices) if actions else {}


@pytest.mark.parametrize(("program", "parser"), [
    ("novapulse", build_parser()), ("novapulse-operator", operator_parser())],
    ids=["novapulse", "novapulse-operator"])
def test_every_command_the_readme_names_exists(program: str,
                                               parser: argparse.ArgumentParser) -> None:
    pattern = re.compile(rf"(?m)(?:^\s*|`|bin/){re.escape(program)}\s+([a-z][\w-]*)"
                         r"(?:\s+([a-z][\w-]*))?")
    unknown = []
    seen = 0
    for text in code_texts(README):
        for match in pattern.finditer(text):
            verb, word = match.group(1), match.group(2)
            seen += 1
            sub = commands(parser).get(verb)
            if sub is None:
                unknown.append(verb)
            elif commands(sub) and word not in commands(sub):
                unknown.append(f"{verb} {word}")
    assert seen, f"README.md names no {program} command"
    assert not unknown, f"README.md names {program} commands that do not exist: {unknown}"
