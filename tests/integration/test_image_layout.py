"""The image without a Docker engine: what the Dockerfile promises, read from it, and the
wheel it installs (built here the way the Dockerfile builds it) with both entrypoints and the
package data the bot needs at run time."""

from __future__ import annotations

import fnmatch
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = (ROOT / "Dockerfile").read_text()
STAGES = re.split(r"^FROM ", DOCKERFILE, flags=re.M)[1:]


def instructions(stage: str, keyword: str) -> list[str]:
    joined = re.sub(r"\\\n\s*", " ", stage)  # continuation lines into one
    return [line.split(None, 1)[1] for line in joined.splitlines()
            if line.startswith(keyword + " ")]


def test_multi_stage_with_a_slim_python_311_base() -> None:
    assert len(STAGES) == 2
    assert "ARG PYTHON_IMAGE=python:3.11-slim" in DOCKERFILE


def test_final_stage_runs_as_10001_without_compilers_or_pip() -> None:
    final = STAGES[-1]
    assert instructions(final, "USER") == ["10001:10001"]
    assert not re.search(r"apt-get install|gcc|build-essential|pip install", final)
    assert "rm -rf /usr/local/lib/python3.11/ensurepip /usr/local/bin/pip*" in final
    assert 'pip uninstall --yes pip setuptools wheel' in STAGES[0]


def test_healthcheck_labels_data_and_entrypoints() -> None:
    final = STAGES[-1]
    (healthcheck,) = instructions(final, "HEALTHCHECK")
    assert "http://127.0.0.1:8090/api/v1/health" in healthcheck
    assert "org.opencontainers.image.title" in final
    assert "org.opencontainers.image.version" in final
    assert "COPY data/sample /app/data/sample" in final
    assert 'VOLUME ["/data"]' in final
    assert "XDG_RUNTIME_DIR=/tmp" in final  # the embedded PostgreSQL's lock, off the root fs
    for entrypoint in ("novapulse --help", "novapulse-operator --help"):
        assert entrypoint in STAGES[0]
    cmd = instructions(final, "CMD")[0]
    for path in re.findall(r"data/sample/[\w-]+\.csv\.gz", cmd):
        assert (ROOT / path).is_file(), path


def test_dockerignore_admits_every_copied_source() -> None:
    patterns = [p for p in (ROOT / ".dockerignore").read_text().splitlines()
                if p and not p.startswith("#")]

    def included(path: str) -> bool:
        keep = True
        for pattern in patterns:
            negate = pattern.startswith("!")
            pat = pattern.lstrip("!").rstrip("/")
            if fnmatch.fnmatch(path, pat) or path.startswith(pat + "/"):
                keep = negate
        return keep

    sources = [src for stage in STAGES for copy in instructions(stage, "COPY")
               if not copy.startswith("--from") for src in copy.split()[:-1]]
    assert sources, "no COPY found"
    for source in sources:
        assert included(source), f"{source} is excluded by .dockerignore"
    assert not included(".venv") and not included("tests") and not included(".git")


@pytest.mark.integration
def test_the_wheel_has_both_entrypoints_and_the_package_data(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps",
                             "--wheel-dir", str(tmp_path), str(ROOT)],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    (wheel,) = tmp_path.glob("novapulse-*.whl")
    with zipfile.ZipFile(wheel) as whl:
        names = whl.namelist()
        entry_points = next(whl.read(n).decode() for n in names
                            if n.endswith("entry_points.txt"))
    assert "novapulse = novapulse.cli:main" in entry_points
    assert "novapulse-operator = novapulse_operator.cli:main" in entry_points
    assert any(n.startswith("novapulse/store/migrations/") and n.endswith(".sql")
               for n in names)
    assert any(n.startswith("novapulse/api/static/") for n in names)
    assert "novapulse_operator/webhook.py" in names
    assert not any(n.startswith(("tests/", "data/")) for n in names)
