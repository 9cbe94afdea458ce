"""Paper execution: every order fills at once, at the reference price moved against us by
slippage, minus fees. It goes through the same intent → report lifecycle as a real venue, so
paper runs and backtests decide exactly as live ones, at full speed."""

from __future__ import annotations

from novapulse.execution.venue import OrderIntent, OrderReport, OrderState
from novapulse.models import Side


class PaperExecutor:
    mode = "paper"

    def __init__(self, fee_rate: float, slippage_bps: float) -> None:
        self.fee_rate = fee_rate
        self.slippage = slippage_bps / 10_000.0

    def fill(self, intent: OrderIntent) -> OrderReport:
        direction = 1.0 if intent.side is Side.BUY else -1.0
        price = intent.price * (1.0 + direction * self.slippage)
        return OrderReport(intent.client_order_id, OrderState.FILLED, intent.quantity, price,
                           price * intent.quantity * self.fee_rate)
