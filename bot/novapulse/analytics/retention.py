"""Retention (runbook 12: "index retention policies auto-delete old data").

With Index State Management, an ISM policy installed at start deletes the bot's indices
`retention_days` after their creation. Where ISM is not available (the plugin is absent, or
the user may not manage it), the bot deletes its own indices as old, by their creation date
(not their date suffix: replayed candles from 2018 are not expired on arrival).
"""

from __future__ import annotations

import enum
import logging
from typing import Any

from opensearchpy import AsyncOpenSearch
from opensearchpy import exceptions as os_errors

from novapulse.analytics.mappings import policy_age, policy_id, retention_policy

log = logging.getLogger("novapulse.analytics")


class Retention(enum.StrEnum):
    ISM = "ism"  # OpenSearch deletes old indices
    BOT = "bot"  # no ISM: the bot deletes them


def _no_ism(exc: os_errors.TransportError) -> bool:
    """OpenSearch without the ISM plugin has no handler for its paths."""
    return exc.status_code in (400, 404, 405) and "no handler found" in str(exc.info)


async def install_retention(client: AsyncOpenSearch, prefix: str, days: int) -> Retention:
    path = f"/_plugins/_ism/policies/{policy_id(prefix)}"
    wanted = retention_policy(prefix, days)
    try:
        current: Any = await client.transport.perform_request("GET", path)
    except os_errors.AuthorizationException as exc:
        log.warning("analytics: may not manage ISM policies (403: %s)", exc.error)
        return Retention.BOT
    except os_errors.TransportError as exc:
        if _no_ism(exc):
            return Retention.BOT
        if exc.status_code != 404:
            raise
        current = None
    if current is None:
        await client.transport.perform_request("PUT", path, body=wanted)
        return Retention.ISM
    if policy_age(current) != f"{days}d":
        params = {"if_seq_no": current.get("_seq_no"),
                  "if_primary_term": current.get("_primary_term")}
        await client.transport.perform_request("PUT", path, body=wanted, params=params)
    return Retention.ISM


def expired(rows: list[tuple[str, float]], days: int, now: float) -> list[str]:
    """The indices created more than `days` days before `now` (ISM's `min_index_age`, so
    either way an index lives as long); `rows` are (name, creation time in epoch seconds)."""
    cutoff = now - days * 86_400.0
    return sorted(name for name, created in rows if created <= cutoff)


async def sweep_expired(client: AsyncOpenSearch, prefix: str, days: int,
                        now: float) -> list[str]:
    listing: Any = await client.cat.indices(index=f"{prefix}-*", format="json",
                                            h="index,creation.date")
    rows = []
    for row in listing:
        try:
            rows.append((str(row["index"]), float(row["creation.date"]) / 1000.0))
        except (KeyError, TypeError, ValueError):
            continue
    doomed = expired(rows, days, now)
    for name in doomed:
        await client.indices.delete(index=name)
    return doomed
