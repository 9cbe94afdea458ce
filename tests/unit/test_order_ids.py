"""Trade and client order ids: deterministic per decision candle, distinct per bot, and in a
format Kraken's `cl_ord_id` accepts."""

from __future__ import annotations

import uuid

from novapulse.engine import trade_id_for
from novapulse.models import OrderKind
from novapulse.order_ids import client_order_id_for


def test_the_same_decision_yields_the_same_ids() -> None:
    assert trade_id_for("default", "ETH/BTC", 1_700_000_000) == trade_id_for(
        "default", "ETH/BTC", 1_700_000_000)
    trade_id = trade_id_for("default", "ETH/BTC", 1_700_000_000)
    assert client_order_id_for(trade_id, OrderKind.ENTRY) == client_order_id_for(
        trade_id, OrderKind.ENTRY)


def test_two_bots_deciding_on_the_same_candle_never_share_an_id() -> None:
    first = trade_id_for("acct-1", "ETH/BTC", 1_700_000_000)
    second = trade_id_for("acct-2", "ETH/BTC", 1_700_000_000)
    assert first != second
    ids = {client_order_id_for(t, k) for t in (first, second) for k in OrderKind}
    assert len(ids) == 4


def test_client_order_ids_are_kraken_long_uuids() -> None:
    # Kraken takes a 36-character UUID, a 32-hex one, or free text of at most 18 characters.
    cl_ord_id = client_order_id_for(trade_id_for("a" * 200, "ETH/BTC", 1), OrderKind.EXIT)
    assert len(cl_ord_id) == 36 and str(uuid.UUID(cl_ord_id)) == cl_ord_id
