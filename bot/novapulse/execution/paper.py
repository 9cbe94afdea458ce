"""Paper execution: fills at the reference price moved against us by slippage, minus fees."""

from __future__ import annotations

from dataclasses import dataclass

from novapulse.models import Order, OrderKind, OrderStatus, Side


@dataclass(frozen=True, slots=True)
class OrderRequest:
    client_order_id: str
    trade_id: str
    pair: str
    side: Side
    kind: OrderKind
    quantity: float
    price: float
    ts: float


class PaperExecutor:
    mode = "paper"

    def __init__(self, fee_rate: float, slippage_bps: float) -> None:
        self.fee_rate = fee_rate
        self.slippage = slippage_bps / 10_000.0

    def execute(self, request: OrderRequest) -> Order:
        direction = 1.0 if request.side is Side.BUY else -1.0
        price = request.price * (1.0 + direction * self.slippage)
        fee = price * request.quantity * self.fee_rate
        return Order(
            client_order_id=request.client_order_id,
            trade_id=request.trade_id,
            pair=request.pair,
            side=request.side,
            kind=request.kind,
            quantity=request.quantity,
            price=price,
            status=OrderStatus.FILLED,
            created_at=request.ts,
            fee=fee,
        )
