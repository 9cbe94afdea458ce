"""Store helpers that need no database: lock keys, time conversion, DSN redaction."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from novapulse.store._util import advisory_key, from_dt, redact_dsn, to_dt


def test_advisory_keys_never_change() -> None:
    # Two versions of the bot run side by side during a rollout: they must agree on the key.
    assert advisory_key("novapulse:default") == 3037029135299331437
    assert advisory_key("novapulse:migrate") == -4750311407468045382
    assert -(2**63) <= advisory_key("novapulse:x" * 100) < 2**63


def test_time_round_trip() -> None:
    assert to_dt(0.0) == datetime(1970, 1, 1, tzinfo=UTC)
    assert from_dt(to_dt(1_700_000_000.125)) == 1_700_000_000.125


@pytest.mark.parametrize(("dsn", "safe"), [
    ("postgresql://bot:s3cr3t@db:5432/nova", "postgresql://bot:***@db:5432/nova"),
    ("postgres://bot@db/nova?password=s3cr3t&sslmode=require",
     "postgres://bot@db/nova?password=***&sslmode=require"),
    ("postgresql://bot:p@s3cr3t@db/nova", "postgresql://bot:***@db/nova"),
    ("postgresql://postgres@/postgres?host=%2Ftmp%2Fpg&port=5432",
     "postgresql://postgres@/postgres?host=%2Ftmp%2Fpg&port=5432"),
])
def test_redact_dsn(dsn: str, safe: str) -> None:
    assert redact_dsn(dsn) == safe
    assert "s3cr3t" not in redact_dsn(dsn)
