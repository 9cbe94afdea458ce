"""Client order ids: deterministic, unique across bots, and in a format Kraken accepts.

Kraken's `cl_ord_id` takes a long UUID (36 characters with hyphens), a short UUID (32 hex
characters) or free text of at most 18 characters. A readable id naming the bot, the pair and
the candle does not fit in 18 characters, so the id is a name-based UUID (version 5) of the
trade id and the order's kind: the same decision replayed after a crash yields the same id,
and two bots (whose trade ids differ by identity) never share one.
"""

from __future__ import annotations

import uuid

from novapulse.models import OrderKind

_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_DNS, "novapulse.io")


def client_order_id_for(trade_id: str, kind: OrderKind, attempt: int = 0) -> str:
    """`attempt` > 0 names a retried exit: each attempt is an order of its own."""
    name = f"{trade_id}/{kind.value}" if attempt == 0 else f"{trade_id}/{kind.value}/{attempt}"
    return str(uuid.uuid5(_NAMESPACE, name))


def manual_exit_id(trade_id: str) -> str:
    """The record of an exit an admin made outside the bot (never sent to an exchange)."""
    return str(uuid.uuid5(_NAMESPACE, f"{trade_id}/exit/manual"))
