"""What the benches on a real API server share: the control plane of `KUBEBUILDER_ASSETS`
(envtest, see `make envtest`) with the CRDs applied, and the operator as its own process."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shutil
import sys
import tempfile
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import psutil
import yaml

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT / "tests") not in sys.path:
    sys.path.insert(0, str(ROOT / "tests"))

from support.envtest import ASSETS_ENV, ControlPlane, assets_dir  # noqa: E402

CRDS = ROOT / "crds"


@contextlib.asynccontextmanager
async def operator_process(plane: ControlPlane, log: Path, *args: str, env: dict[str, str]
                           | None = None) -> AsyncIterator[asyncio.subprocess.Process]:
    """`novapulse-operator run --standalone` logging in to `plane`, plus `args`."""
    with log.open("ab") as out:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "novapulse_operator.cli", "run", "--standalone",
            "--liveness", "", "--metrics-port", "0", *args,
            env={**os.environ, "KUBECONFIG": str(plane.kubeconfig), **(env or {})},
            stdout=out, stderr=out)
    try:
        yield proc
    finally:
        if proc.returncode is None:
            proc.terminate()
            try:
                await asyncio.wait_for(proc.wait(), 15)
            except TimeoutError:
                proc.kill()
                await proc.wait()


_SAMPLE = re.compile(r'^apiserver_request_(total|duration_seconds_sum)\{([^}]*)\} (\S+)$')
_LABEL = re.compile(r'(\w+)="([^"]*)"')


def api_requests(plane: ControlPlane) -> dict[str, list[float]]:
    """The API server's own request counters: "VERB resource[/subresource]" → [requests,
    seconds spent answering them] (watches and other long-running requests left out)."""
    status, body = plane.request("GET", "/metrics")
    text = str(body.get("message") or "") if status == 200 else ""
    out: dict[str, list[float]] = {}
    for line in text.splitlines():
        match = _SAMPLE.match(line)
        if match is None:
            continue
        labels = dict(_LABEL.findall(match.group(2)))
        if labels.get("verb") in ("WATCH", "CONNECT"):
            continue
        resource = labels.get("resource", "") + (
            f"/{labels['subresource']}" if labels.get("subresource") else "")
        entry = out.setdefault(f"{labels.get('verb')} {resource}", [0.0, 0.0])
        entry[0 if match.group(1) == "total" else 1] += float(match.group(3))
    return out


def api_breakdown(before: dict[str, list[float]], after: dict[str, list[float]],
                  top: int = 12) -> dict[str, dict[str, float]]:
    """What the API server did between two `api_requests` readings, the costliest first."""
    spent = {key: (after[key][0] - before.get(key, [0.0, 0.0])[0],
                   after[key][1] - before.get(key, [0.0, 0.0])[1]) for key in after}
    ranked = sorted(((k, v) for k, v in spent.items() if v[0] > 0), key=lambda kv: -kv[1][1])
    return {key: {"requests": int(count), "seconds": round(seconds, 1)}
            for key, (count, seconds) in ranked[:top]}


def process_cpu(pids: dict[str, int]) -> dict[str, float]:
    """CPU seconds so far of each process in `pids` (name → pid)."""
    out = {}
    for name, pid in pids.items():
        with contextlib.suppress(psutil.Error):
            times = psutil.Process(pid).cpu_times()
            out[name] = float(times.user + times.system)
    return out


def run_on_control_plane(bench: str, run: Callable[[ControlPlane, Path],
                                                   Awaitable[dict[str, Any]]]) -> None:
    """Start the control plane, `run` the bench, print its JSON; without KUBEBUILDER_ASSETS
    (or with an unusable one) print one JSON line saying the bench was skipped and why."""
    warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR is not set")
    try:
        assets = assets_dir()
    except Exception as exc:  # set, but not usable
        print(json.dumps({"bench": bench, "skipped": str(exc)}))
        return
    if assets is None:
        print(json.dumps({"bench": bench, "skipped": f"{ASSETS_ENV} is not set: the bench "
                          f"needs a real API server (make envtest, then {ASSETS_ENV}=.envtest)"}))
        return
    workdir = Path(tempfile.mkdtemp(prefix=f"novapulse-{bench}-"))
    plane = ControlPlane(assets)
    try:
        plane.start(doc for path in sorted(CRDS.glob("*.yaml"))
                    for doc in yaml.safe_load_all(path.read_text()))
        result = asyncio.run(run(plane, workdir))
    finally:
        plane.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    print(json.dumps(result, indent=2))
