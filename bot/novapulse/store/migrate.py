"""Versioned SQL migrations, applied at start in one transaction.

Files are `NNNN_name.sql` in the `migrations` folder, applied in order and recorded in
`schema_migrations` with a checksum. A transaction-scoped advisory lock serialises processes
that start at the same time: the second waits, then finds nothing left to do.
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass
from importlib import resources
from importlib.abc import Traversable
from typing import Any

from novapulse.store._util import advisory_key

log = logging.getLogger("novapulse.store.migrate")

MIGRATION_LOCK_KEY = advisory_key("novapulse:migrate")
_FILE_NAME = re.compile(r"^(?P<version>\d{4})_(?P<name>[a-z0-9_]+)\.sql$")

_CREATE_TABLE = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version    text PRIMARY KEY,
    name       text NOT NULL,
    checksum   text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)
"""


class MigrationError(RuntimeError):
    pass


@dataclass(frozen=True, slots=True)
class Migration:
    version: str
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()

    @property
    def label(self) -> str:
        return f"{self.version}_{self.name}"


def load_migrations(directory: Traversable | None = None) -> list[Migration]:
    folder = directory or resources.files("novapulse.store").joinpath("migrations")
    found: list[Migration] = []
    for entry in folder.iterdir():
        if not entry.name.endswith(".sql"):
            continue
        match = _FILE_NAME.match(entry.name)
        if match is None:
            raise MigrationError(f"bad migration file name {entry.name!r}: want NNNN_name.sql")
        found.append(Migration(match["version"], match["name"], entry.read_text("utf-8")))
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise MigrationError(f"duplicate migration versions in {versions}")
    return found


async def apply_migrations(conn: Any, migrations: list[Migration]) -> list[str]:
    """Apply what is missing; return the labels applied (empty when up to date).

    `conn` is an asyncpg connection (asyncpg ships no type information)."""
    applied: list[str] = []
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", MIGRATION_LOCK_KEY)
        await conn.execute(_CREATE_TABLE)
        rows = await conn.fetch("SELECT version, name, checksum FROM schema_migrations")
        done = {row["version"]: row for row in rows}
        for migration in migrations:
            row = done.get(migration.version)
            if row is not None:
                if row["checksum"] != migration.checksum:
                    # an applied migration was edited: the schema may not be what the code expects
                    raise MigrationError(
                        f"migration {migration.label} was changed after it was applied; "
                        "add a new migration instead of editing an applied one")
                continue
            await conn.execute(migration.sql)
            await conn.execute(
                "INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)",
                migration.version, migration.name, migration.checksum)
            applied.append(migration.label)
            log.info("applied migration %s", migration.label)
    return applied
