"""Environment for starting the real bot process in tests."""

from __future__ import annotations

import os
import socket

# Gates loosened so a short replay trades often; each gate has its own tests.
LOOSE_GATES = {
    "NOVAPULSE__RISK__MIN_CONFIDENCE": "0.3",
    "NOVAPULSE__RISK__GLOBAL_COOLDOWN_SECONDS": "0",
    "NOVAPULSE__RISK__MAX_TRADES_PER_HOUR": "100",
    "NOVAPULSE__RISK__MAX_CONSECUTIVE_LOSSES": "100",
    "NOVAPULSE__RISK__MAX_DRAWDOWN_PCT": "100",
    "NOVAPULSE__RISK__MAX_DAILY_LOSS_PCT": "100",
}


def free_port() -> int:
    """A loopback port nobody listens on right now (each bot in a test gets its own API)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def bot_environment(database_url: str, pairs: str, **extra: str) -> dict[str, str]:
    """This process's environment minus any NOVAPULSE__ override, plus the test's settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("NOVAPULSE__")}
    env.update({"DATABASE_URL": database_url, "NOVAPULSE__TRADING__PAIRS": pairs,
                "PYTHONUNBUFFERED": "1", **LOOSE_GATES})
    env.update(extra)
    return env
