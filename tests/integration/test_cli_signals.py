"""`novapulse run` stopped by SIGTERM while it is still starting (imports take seconds on a busy
machine): it must leave cleanly with exit code 0, never die of the signal."""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path

# Runs the real CLI, but holds it inside its first heavy import (the config model) so the
# signal lands during start-up every time, however fast or slow the machine is.
FROZEN_IN_STARTUP = """
import importlib.abc, sys, time

class FreezeOnConfigImport(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name == "novapulse.config":
            print("importing novapulse.config", flush=True)
            time.sleep(600)
        return None

sys.meta_path.insert(0, FreezeOnConfigImport())
from novapulse.cli import main
sys.exit(main(sys.argv[1:]))
"""


async def test_sigterm_during_startup_imports_exits_cleanly(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", FROZEN_IN_STARTUP, "run", "--mode", "paper", "--feed", "kraken",
        "--data-dir", str(data_dir), stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE)
    try:
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), 60)
        assert line == b"importing novapulse.config\n"
        proc.send_signal(signal.SIGTERM)
        _, stderr = await asyncio.wait_for(proc.communicate(), 30)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode == 0, stderr.decode(errors="replace")
    assert b"SIGTERM during start-up: stopped before trading" in stderr
    assert not data_dir.exists(), "nothing may be started once SIGTERM arrived"
