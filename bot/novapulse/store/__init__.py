"""PostgreSQL store: migrations, the `Store`, the embedded server and the instance lock."""

from novapulse.store._util import redact_dsn
from novapulse.store.migrate import MigrationError
from novapulse.store.postgres import (
    LOCK_TIMEOUT_MESSAGE,
    ForeignRowError,
    MetricRow,
    Store,
    StoreTimeout,
)

__all__ = [
    "LOCK_TIMEOUT_MESSAGE",
    "ForeignRowError",
    "MetricRow",
    "MigrationError",
    "Store",
    "StoreTimeout",
    "redact_dsn",
]
