"""Small helpers shared by the store modules: advisory lock keys, time conversion, redaction."""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, datetime


def advisory_key(name: str) -> int:
    """A stable signed 64-bit key for pg advisory locks. Not `hashtext`: that is 32-bit and
    PostgreSQL does not promise it stays the same across major versions."""
    digest = hashlib.blake2b(name.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def to_dt(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, tz=UTC)


def to_dt_opt(ts: float | None) -> datetime | None:
    return None if ts is None else to_dt(ts)


def from_dt(value: datetime) -> float:
    return value.timestamp()


def from_dt_opt(value: datetime | None) -> float | None:
    return None if value is None else value.timestamp()


_PASSWORD_IN_URL = re.compile(r"(?P<head>[a-z][a-z0-9+.-]*://[^:/@?#]*:)[^/?#]*(?P<tail>@)", re.I)
_PASSWORD_PARAM = re.compile(r"(?P<head>[?&]password=)[^&#]*", re.I)


def redact_dsn(dsn: str) -> str:
    """The DSN with any password replaced by `***`, safe to log."""
    dsn = _PASSWORD_IN_URL.sub(r"\g<head>***\g<tail>", dsn)
    return _PASSWORD_PARAM.sub(r"\g<head>***", dsn)
