"""The chart tests' tools: helm and kubectl from `.tools/` (`python scripts/fetch_tools.py`,
which `make chart-test` runs). Missing tools skip locally with the reason and fail in CI."""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "novapulse"
TOOLS = ROOT / ".tools"


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def missing(reason: str) -> None:
    if _in_ci():
        pytest.fail(f"{reason} (CI must provide it)")
    pytest.skip(reason)


@dataclass(frozen=True)
class Tools:
    helm: Path
    kubectl: Path

    def run(self, tool: str, *args: str, env: dict[str, str] | None = None,
            check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        binary = self.helm if tool == "helm" else self.kubectl
        result = subprocess.run([str(binary), *args], capture_output=True, text=True,
                                env={**os.environ, **(env or {})}, timeout=timeout)
        if check and result.returncode != 0:
            raise AssertionError(f"{tool} {' '.join(args)} exited {result.returncode}:\n"
                                 f"{result.stdout}\n{result.stderr}")
        return result

    def template(self, *value_args: str, release: str = "np",
                 namespace: str = "novapulse") -> list[dict[str, Any]]:
        out = self.run("helm", "template", release, str(CHART), "--namespace", namespace,
                       "--include-crds", *value_args).stdout
        return [d for d in yaml.safe_load_all(out) if d]


@pytest.fixture(scope="session")
def tools() -> Tools:
    found = Tools(helm=TOOLS / "helm", kubectl=TOOLS / "kubectl")
    for path in (found.helm, found.kubectl):
        if not os.access(path, os.X_OK):
            missing(f"{path.relative_to(ROOT)} absent: run `python scripts/fetch_tools.py`")
    return found
