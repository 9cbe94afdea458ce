"""The store's view of an order: an intent and what the venue last said about it."""

from __future__ import annotations

from novapulse.execution.venue import OrderIntent, OrderReport, OrderState
from novapulse.models import Order, OrderStatus

_STATUS = {
    OrderState.INTENT: OrderStatus.PENDING,
    OrderState.SUBMITTED: OrderStatus.OPEN,
    OrderState.ACKNOWLEDGED: OrderStatus.OPEN,
    OrderState.PARTIALLY_FILLED: OrderStatus.OPEN,
    OrderState.UNKNOWN: OrderStatus.OPEN,
    OrderState.FILLED: OrderStatus.FILLED,
    OrderState.REJECTED: OrderStatus.REJECTED,
    OrderState.CANCELLED: OrderStatus.CANCELED,
}


def order_record(intent: OrderIntent, report: OrderReport | None = None) -> Order:
    """The `orders` row: the intent alone (pending) or with the venue's latest report."""
    if report is None:
        return Order(intent.client_order_id, intent.trade_id, intent.pair, intent.side,
                     intent.kind, intent.quantity, intent.price, OrderStatus.PENDING, intent.ts)
    return Order(
        client_order_id=intent.client_order_id, trade_id=intent.trade_id, pair=intent.pair,
        side=intent.side, kind=intent.kind,
        quantity=report.filled_quantity if report.filled_quantity > 0 else intent.quantity,
        price=report.average_price if report.average_price is not None else intent.price,
        status=_STATUS[report.state], created_at=intent.ts, fee=report.fee,
        exchange_order_id=report.exchange_order_id,
        error=f"{report.error}: {report.message}" if report.error else None,
    )


def intent_to_json(intent: OrderIntent) -> dict[str, object]:
    return {"client_order_id": intent.client_order_id, "trade_id": intent.trade_id,
            "pair": intent.pair, "side": str(intent.side), "kind": str(intent.kind),
            "quantity": intent.quantity, "price": intent.price, "ts": intent.ts,
            "attempt": intent.attempt}


def intent_from_json(data: dict[str, object]) -> OrderIntent:
    from novapulse.models import OrderKind, Side

    return OrderIntent(str(data["client_order_id"]), str(data["trade_id"]), str(data["pair"]),
                       Side(str(data["side"])), OrderKind(str(data["kind"])),
                       float(str(data["quantity"])), float(str(data["price"])),
                       float(str(data["ts"])), int(str(data.get("attempt", 0))))
