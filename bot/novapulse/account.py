"""Which exchange account a bot trades on, as the identity its single-instance locks guard.

Two bots on one Kraken account place double orders, whatever their names. So in canary and
live mode the file lock and the PostgreSQL advisory lock are taken for the account itself:
`kraken:` + the first 16 hex digits of SHA-256 of the API key. Two bots with one key that
share a database can never both hold the lock. The identity is shown in `lock status`, in the
lock file and in log lines; a truncated one-way hash of a random API key gives the key away
to none of them. Paper mode places no real orders and keeps `instance.identity`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

from novapulse.config import Config
from novapulse.secrets import GUARDED_MODES, KRAKEN_KEY

ACCOUNT_PREFIX = "kraken:"
ACCOUNT_HEX_DIGITS = 16


class MissingExchangeKey(ValueError):
    """Canary or live mode without an API key: there is no account to guard."""


def exchange_account_identity(api_key: str) -> str:
    """The lock identity of the Kraken account behind `api_key` (surrounding blanks ignored,
    as the start-up checks ignore them)."""
    key = api_key.strip()
    if not key:
        raise MissingExchangeKey(f"{KRAKEN_KEY} is empty: no exchange account to lock")
    digest = hashlib.sha256(key.encode("utf-8")).hexdigest()
    return ACCOUNT_PREFIX + digest[:ACCOUNT_HEX_DIGITS]


def lock_identity(config: Config, environ: Mapping[str, str]) -> str:
    """The identity the bot's instance locks are taken for: the exchange account in canary
    and live mode, `instance.identity` in paper mode."""
    mode = config.trading.mode
    if mode not in GUARDED_MODES:
        return config.instance.identity
    api_key = environ.get(KRAKEN_KEY, "")
    if not api_key.strip():
        raise MissingExchangeKey(
            f"{KRAKEN_KEY} is required in {mode} mode: the instance lock is taken for the "
            "exchange account")
    return exchange_account_identity(api_key)
