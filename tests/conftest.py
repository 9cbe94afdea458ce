"""Shared fixtures: one real embedded PostgreSQL per test session, a fresh database per test.

Tests that use `pg_dsn` or `embedded_pg` are marked `integration` automatically. When the
server cannot start, the tests fail in CI (`CI=true`) and are skipped with the reason locally.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from novapulse.store.embedded import EmbeddedPostgres

_PG_FIXTURES = {"embedded_pg", "pg_dsn"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if _PG_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.integration)


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"}


@pytest.fixture(scope="session")
def embedded_pg() -> Iterator[EmbeddedPostgres]:
    from novapulse.store.embedded import start_embedded_postgres

    # Not under pytest's basetemp: as root the server runs as another user, and every
    # pytest session (others run them concurrently) resets /tmp/pytest-of-root to 0700.
    base = Path(tempfile.mkdtemp(prefix="novapulse-pg-"))
    try:
        server = start_embedded_postgres(base)
    except Exception as exc:
        shutil.rmtree(base, ignore_errors=True)
        reason = f"embedded PostgreSQL could not start: {type(exc).__name__}: {exc}"
        if _in_ci():
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason)
    yield server
    server.stop()
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
async def pg_dsn(embedded_pg: EmbeddedPostgres) -> AsyncIterator[str]:
    """DSN of a new, empty database, dropped after the test."""
    import asyncpg

    name = f"test_{uuid.uuid4().hex[:16]}"
    admin = await asyncpg.connect(embedded_pg.dsn)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    yield embedded_pg.dsn_for(name)
    admin = await asyncpg.connect(embedded_pg.dsn)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()
