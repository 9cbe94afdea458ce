"""Reconciliation (runbook 5): the bot's books against what the exchange shows.

- a **ghost position**: the store holds a position the exchange balance cannot cover (closed
  outside the bot, or never filled);
- an **orphan order**: an open order on the exchange that the bot knows nothing of.
Both are reported with ids, never acted on blindly.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from novapulse.execution.venue import OrderReport
from novapulse.models import Trade

# A balance a little short of the position (rounding, fees in base) is not a ghost.
BALANCE_TOLERANCE = 0.01


@dataclass(frozen=True, slots=True)
class Reconciliation:
    ts: float
    ghosts: tuple[str, ...]  # trade ids
    orphans: tuple[str, ...]  # client order id, or exchange order id when it has none

    def as_dict(self) -> dict[str, object]:
        return {"last_run": self.ts, "ghosts": list(self.ghosts), "orphans": list(self.orphans)}


def reconcile(now: float, held: Iterable[Trade], known_order_ids: set[str],
              open_orders: Iterable[OrderReport], balances: Mapping[str, float]) -> Reconciliation:
    needed: dict[str, float] = {}
    trades_by_base: dict[str, list[Trade]] = {}
    for trade in held:
        base = trade.pair.split("/")[0]
        needed[base] = needed.get(base, 0.0) + trade.quantity
        trades_by_base.setdefault(base, []).append(trade)
    ghosts: list[str] = []
    for base, quantity in sorted(needed.items()):
        if balances.get(base, 0.0) < quantity * (1.0 - BALANCE_TOLERANCE):
            ghosts += [t.trade_id for t in trades_by_base[base]]
    orphans = [o.client_order_id or (o.exchange_order_id or "?") for o in open_orders
               if o.client_order_id not in known_order_ids]
    return Reconciliation(now, tuple(ghosts), tuple(sorted(orphans)))
