"""The real `novapulse run` process in tests: start it, read its log, call its API, stop it."""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path
from typing import Any, TypeVar

import httpx


class BotProcess:
    def __init__(self, proc: asyncio.subprocess.Process, log_path: Path, port: int,
                 api_key: str | None = None) -> None:
        self.proc = proc
        self.log_path = log_path
        self.url = f"http://127.0.0.1:{port}"
        self.api_key = api_key

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    async def api(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = {"X-API-Key": self.api_key} if self.api_key else {}
        async with httpx.AsyncClient(base_url=self.url, timeout=10) as client:
            return await client.request(method, path, headers=headers, **kwargs)

    async def wait_for_api(self) -> None:
        async with httpx.AsyncClient() as client:
            for _ in range(600):
                if self.proc.returncode is not None:
                    break
                try:
                    if (await client.get(self.url + "/api/v1/health")).status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.1)
        raise AssertionError(f"the API never came up:\n{self.log()[-3000:]}")

    async def stop(self, within_s: float = 60.0) -> int:
        """SIGTERM (a clean stop), then the exit code."""
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
        return await asyncio.wait_for(self.proc.wait(), within_s)


B = TypeVar("B", bound=BotProcess)


async def launch_bot(args: list[str], env: dict[str, str], log_path: Path, port: int,
                     api_key: str | None = None, kind: type[B] = BotProcess) -> B:  # type: ignore[assignment]
    """`novapulse run ARGS --port PORT`, its output appended to `log_path`."""
    with log_path.open("ab") as handle:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "novapulse.cli", "run", *args, "--port", str(port), env=env,
            stdout=handle, stderr=handle)
    return kind(proc, log_path, port, api_key)
