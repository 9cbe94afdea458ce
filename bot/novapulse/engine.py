"""The trading engine: candles in, decisions and executions out.

One engine drives backtests, the replay feed and live trading. It is synchronous and does no
I/O: the caller persists what `on_candle` returns before feeding the next candle, which is
what makes a crash lose nothing. Time is market time: the close time of the candle decided on.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from novapulse.config import Config
from novapulse.execution.paper import OrderRequest, PaperExecutor
from novapulse.indicators import PairIndicators
from novapulse.models import Candle, Order, OrderKind, Side, Trade, TradeStatus
from novapulse.order_ids import client_order_id_for
from novapulse.positions import exit_trigger, initial_stops, plan_position, update_trailing_stop
from novapulse.risk import MSG_MANUAL_PAUSE, PausedBy, RiskManager, Verdict, r_multiple
from novapulse.strategies import Strategy, default_strategies
from novapulse.strategies.ensemble import Decision, Ensemble
from novapulse.strategies.performance import StrategyBook
from novapulse.thoughts import ThoughtLog

log = logging.getLogger("novapulse.engine")

GUARDRAIL_TICK_SECONDS = 600.0
EXIT_SIGNAL = "strategy exit signal"
EXIT_MANUAL = "close all via control"


@dataclass(frozen=True, slots=True)
class Execution:
    """A fill and the trade it opened or closed; the caller stores both in one transaction."""

    trade: Trade
    order: Order


def trade_id_for(identity: str, pair: str, candle_ts: int) -> str:
    """Deterministic id: deciding on the same candle again (after a crash) yields the same id;
    the bot's identity keeps two bots sharing one database from ever sharing an id."""
    return f"{identity}:{pair.replace('/', '')}-{candle_ts}"


class Engine:
    def __init__(self, config: Config, executor: PaperExecutor, thoughts: ThoughtLog,
                 strategies: Sequence[Strategy] | None = None) -> None:
        self.config = config
        self.executor = executor
        self.thoughts = thoughts
        self.mode = config.trading.mode
        self.cash = config.trading.starting_bankroll
        self.positions: dict[str, Trade] = {}
        self.last_price: dict[str, float] = {}
        self.last_candle_ts: dict[str, int] = {}
        self.indicators: dict[str, PairIndicators] = {}
        strategies = list(strategies) if strategies is not None else default_strategies()
        self.ensemble = Ensemble(strategies, dict(config.ai.strategy_weights))
        self.book = StrategyBook([s.name for s in strategies], config.ai)
        self.slippage = config.trading.slippage_bps / 10_000.0
        self.risk = RiskManager(config.risk, config.trading.quiet_hours,
                                config.trading.starting_bankroll,
                                fee_rate=config.trading.fee_rate, slippage=self.slippage)
        self.decide_after: dict[str, int] = {}
        self.closed_count = 0
        self.realized_pnl = 0.0
        self._disabled: set[str] = set()
        self.manually_disabled: set[str] = set()
        self.strategy_names = [s.name for s in strategies]
        self._next_guardrail_tick = -math.inf
        self._min_confidence = config.risk.min_confidence
        self._market_now: float | None = None

    # --- state ------------------------------------------------------------------------------
    def equity(self) -> float:
        held = 0.0
        for pair, trade in self.positions.items():
            held += trade.quantity * self.last_price.get(pair, trade.entry_price)
        return self.cash + held

    def market_now(self) -> float:
        """The close time of the newest candle decided on; wall time before the first."""
        return self._market_now if self._market_now is not None else time.time()

    def indicators_for(self, pair: str) -> PairIndicators:
        ind = self.indicators.get(pair)
        if ind is None:
            ind = self.indicators[pair] = PairIndicators()
        return ind

    def warm_up(self, candle: Candle) -> None:
        """Feed history to the indicators without deciding anything on it."""
        self.indicators_for(candle.pair).update(candle)
        self.last_price[candle.pair] = candle.close
        self.last_candle_ts[candle.pair] = candle.ts

    # --- the hot path -----------------------------------------------------------------------
    def on_candle(self, candle: Candle, data_age_s: float = 0.0) -> list[Execution]:
        pair = candle.pair
        if candle.ts <= self.last_candle_ts.get(pair, -1):
            return []  # already seen: a feed replaying a snapshot must not double-count
        ind = self.indicators.get(pair) or self.indicators_for(pair)
        ind.update(candle)
        self.last_price[pair] = candle.close
        self.last_candle_ts[pair] = candle.ts
        if candle.ts <= self.decide_after.get(pair, -1):
            return []
        now = float(candle.close_ts)
        # A candle closing behind the market clock is late news whatever the feed says.
        if self._market_now is None or now > self._market_now:
            self._market_now = now
        elif self._market_now - now > data_age_s:
            data_age_s = self._market_now - now
        if self.risk.is_new_day(now):  # equity sums every position: only once a day
            self.risk.roll_day(now, self.equity())
        if now >= self._next_guardrail_tick:
            self._tick_guardrails(now)
        executions = self._decide(candle, ind, now, data_age_s)
        if self.positions or executions:
            # Equity marked to market once the candle is done: the drawdown rule's only input.
            self._mark(now, pair)
        return executions

    def _decide(self, candle: Candle, ind: PairIndicators, now: float,
                data_age_s: float) -> list[Execution]:
        pair = candle.pair
        executions: list[Execution] = []
        trade = self.positions.get(pair)
        if trade is not None:
            # Judged against the stops as they stood at the open, then ratcheted (positions.py).
            trigger = exit_trigger(trade, candle)
            if trigger is not None:
                executions.append(self._close(trade, trigger[0], trigger[1], now))
                trade = None
            else:
                update_trailing_stop(trade, candle, self.config.risk)
        if not ind.ready:
            return executions
        decision = self.ensemble.evaluate_all(ind, candle, self._disabled)
        if decision.confidence < self._min_confidence or decision.direction == 0:
            return executions
        if trade is not None:
            if decision.direction < 0:
                executions.append(self._close(trade, candle.close, EXIT_SIGNAL, now, decision))
        elif decision.direction > 0 and pair not in self.positions:
            opened = self._try_enter(candle, decision, now, data_age_s)
            if opened is not None:
                executions.append(opened)
        return executions

    def _mark(self, now: float, pair: str | None) -> None:
        for message in self.risk.mark(self.equity(), now):
            self._auto_paused(message, now, pair)

    def _try_enter(self, candle: Candle, decision: Decision, now: float,
                   data_age_s: float) -> Execution | None:
        pair = candle.pair
        equity = self.equity()
        verdict: Verdict = self.risk.check_entry(
            now=now, equity=equity, cash=self.cash, open_positions=len(self.positions),
            data_age_s=data_age_s,
        )
        if not verdict.allowed:
            self.thoughts.add(now, "blocked", verdict.message, pair,
                              {"gate": str(verdict.gate), "confidence": decision.confidence})
            return None
        plan = plan_position(equity=equity, cash=self.cash, price=candle.close,
                             fee_rate=self.config.trading.fee_rate, slippage=self.slippage,
                             config=self.config.risk)
        quantity = plan.quantity
        if quantity <= 0:
            self.thoughts.add(now, "blocked", "Bankroll depleted", pair, {"gate": "bankroll"})
            return None
        trade_id = trade_id_for(self.config.instance.identity, pair, candle.ts)
        order = self.executor.execute(OrderRequest(
            client_order_id_for(trade_id, OrderKind.ENTRY), trade_id, pair, Side.BUY,
            OrderKind.ENTRY, quantity,
            candle.close, now,
        ))
        stop, take_profit = initial_stops(order.price, self.config.risk)
        voters = [s.strategy for s in decision.votes if s.direction > 0]
        trade = Trade(
            trade_id=trade_id, pair=pair, side=Side.BUY, entry_price=order.price,
            quantity=order.quantity, entry_time=now, strategy=",".join(voters),
            stop_loss=stop, take_profit=take_profit, entry_fee=order.fee,
            highest_price=order.price, lowest_price=order.price, mode=self.mode,
            notes=decision.reason,
        )
        self.cash -= order.price * order.quantity + order.fee
        self.positions[pair] = trade
        self.risk.record_entry(now)
        self.thoughts.add(now, "entry", f"BUY {pair} qty={quantity:.6g} @ {order.price:.8g} "
                          f"(confidence {decision.confidence:.2f}): {decision.reason}", pair,
                          {"trade_id": trade_id, "confidence": decision.confidence})
        return Execution(trade, order)

    def _close(self, trade: Trade, price: float, reason: str, now: float,
               decision: Decision | None = None) -> Execution:
        order = self.executor.execute(OrderRequest(
            client_order_id_for(trade.trade_id, OrderKind.EXIT), trade.trade_id, trade.pair,
            Side.SELL, OrderKind.EXIT,
            trade.quantity, price, now,
        ))
        trade.exit_price = order.price
        trade.exit_time = now
        trade.exit_fee = order.fee
        trade.pnl = (order.price - trade.entry_price) * trade.quantity - trade.entry_fee - order.fee
        trade.status = TradeStatus.CLOSED
        trade.notes = f"{trade.notes} | exit: {reason}" if trade.notes else f"exit: {reason}"
        self.cash += order.price * order.quantity - order.fee
        del self.positions[trade.pair]
        self.closed_count += 1
        self.realized_pnl += trade.pnl
        self.thoughts.add(now, "exit", f"SELL {trade.pair} @ {order.price:.8g} ({reason}), "
                          f"pnl {trade.pnl:+.8g}", trade.pair,
                          {"trade_id": trade.trade_id, "pnl": trade.pnl})
        self.book.record_result([n for n in trade.strategy.split(",") if n], trade.pnl, now)
        self._tick_guardrails(now)
        self._retune()
        r = r_multiple(trade.pnl, trade.entry_price, trade.stop_loss, trade.quantity,
                       trade.entry_fee, self.config.trading.fee_rate)
        for message in self.risk.record_close(trade.pnl, r, now):
            self._auto_paused(message, now, trade.pair)
        return Execution(trade, order)

    def _auto_paused(self, message: str, now: float, pair: str | None) -> None:
        self.thoughts.add(now, "pause", message, pair, {"paused_by": "risk_rule"},
                          level=logging.WARNING)

    def _tick_guardrails(self, now: float) -> None:
        """Let the guardrail disable or re-enable strategies. Results only change when a trade
        closes, so between closes a coarse tick is enough to re-enable on time."""
        for event in self.book.tick(now):
            self.thoughts.add(now, "guardrail", event.message, None, {"strategy": event.strategy},
                              level=logging.WARNING)
        self._disabled = self.book.disabled(now) | self.manually_disabled
        # Tick again at the first re-enable due, so the engine and /api/v1/strategies agree
        # to the candle.
        self._next_guardrail_tick = min(now + GUARDRAIL_TICK_SECONDS,
                                        self.book.next_reenable_at())

    def _retune(self) -> None:
        """The book's weights already include the configured ones."""
        if self.config.ai.auto_tune_enabled:
            self.ensemble.update_weights(self.book.weights())

    # --- control ----------------------------------------------------------------------------
    def pause(self, reason: str, by: PausedBy, now: float) -> bool:
        """Take `by`'s pause slot; False when that party already holds one."""
        if not self.risk.pause_trading(reason, by, now):
            return False
        text = f"{MSG_MANUAL_PAUSE}: {reason}" if by is PausedBy.MANUAL else (
            f"Trading PAUSED by {by}: {reason}")
        self.thoughts.add(now, "pause", text, None, {"paused_by": str(by)}, level=logging.WARNING)
        return True

    def resume(self, now: float, by: PausedBy | None = None) -> bool:
        """Lift `by`'s pause, or every pause when None (an admin's resume, which says so).
        Trading runs again only when no pause is left."""
        lifted = self.risk.resume_trading(self.equity(), by)
        if not lifted:
            return False
        was = "; ".join(f"{hold.by}: {hold.reason}" for hold in lifted)
        scope = "all pauses lifted" if by is None and len(lifted) > 1 else f"{len(lifted)} lifted"
        left = self.risk.pauses.holds
        state = ("Trading RESUMED" if not left else
                 "Pause lifted, still paused by " + ", ".join(str(h.by) for h in left))
        self.thoughts.add(now, "resume", f"{state} ({scope}; was paused by {was})", None,
                          {"resumed_by": str(by or "control"), "still_paused": bool(left)})
        return True

    def set_strategy_enabled(self, name: str, enabled: bool, now: float) -> bool:
        """Switch a strategy on or off by hand; returns whether anything changed."""
        if name not in self.strategy_names:
            raise KeyError(name)
        if enabled == (name not in self.manually_disabled):
            return False
        if enabled:
            self.manually_disabled.discard(name)
        else:
            self.manually_disabled.add(name)
        self._disabled = self.book.disabled(now) | self.manually_disabled
        self.thoughts.add(now, "strategy", f"Strategy {name} {'enabled' if enabled else 'disabled'}"
                          " via control", None, {"strategy": name, "enabled": enabled})
        return True

    def disabled_strategies(self) -> set[str]:
        return set(self._disabled)

    def close_all(self, now: float) -> list[Execution]:
        executions = [
            self._close(trade, self.last_price.get(trade.pair, trade.entry_price), EXIT_MANUAL, now)
            for trade in list(self.positions.values())
        ]
        if executions:
            self._mark(now, None)
        return executions

    # --- persistence ------------------------------------------------------------------------
    def checkpoint(self) -> dict[str, Any]:
        """What the store keeps besides trades, so a restart resumes exactly."""
        return {
            "last_candle_ts": dict(self.last_candle_ts),
            "risk": self.risk.snapshot(),
            "strategies": self.book.snapshot(),
            "manually_disabled": sorted(self.manually_disabled),
        }

    def restore(self, trades: list[Trade], checkpoint: dict[str, Any] | None) -> None:
        """Rebuild from the store: cash from every trade, open positions as they were, and the
        rest from the checkpoint. Candles up to the last one decided on only warm indicators."""
        cash = self.config.trading.starting_bankroll
        for trade in sorted(trades, key=lambda t: t.entry_time):
            cash -= trade.entry_price * trade.quantity + trade.entry_fee
            if trade.status is TradeStatus.OPEN:
                self.positions[trade.pair] = trade
            else:
                if trade.exit_price is not None:
                    cash += trade.exit_price * trade.quantity - trade.exit_fee
                if trade.pnl is not None:
                    self.realized_pnl += trade.pnl
                self.closed_count += 1
            self.last_price.setdefault(trade.pair, trade.exit_price or trade.entry_price)
            event_ts = int(trade.exit_time or trade.entry_time) - 1
            self.decide_after[trade.pair] = max(self.decide_after.get(trade.pair, -1), event_ts)
        self.cash = cash
        if not checkpoint:
            return
        for pair, ts in checkpoint.get("last_candle_ts", {}).items():
            self.decide_after[pair] = max(self.decide_after.get(pair, -1), int(ts))
        self.risk.restore(checkpoint.get("risk", {}), legacy_pause=checkpoint.get("pause"))
        self.manually_disabled = set(checkpoint.get("manually_disabled", [])) & set(
            self.strategy_names)
        self._disabled |= self.manually_disabled
        if checkpoint.get("strategies"):
            self.book.restore(checkpoint["strategies"])
            self._retune()

    # --- after a restart --------------------------------------------------------------------
    def check_exits_while_down(self, candle: Candle) -> list[Execution]:
        """Judge an open position's stops on a candle the bot never decided on (missed while it
        was down or disconnected, now replayed as history): an exit the stops would have made
        is made, at the price they would have filled at. Never enters. Call it before
        `warm_up(candle)`; candles already seen or decided on are ignored."""
        pair = candle.pair
        trade = self.positions.get(pair)
        seen = max(self.last_candle_ts.get(pair, -1), self.decide_after.get(pair, -1))
        if trade is None or candle.ts <= seen or candle.ts < trade.entry_time:
            return []
        # The stops as they stood when the candle opened judge it; only then does it move them.
        trigger = exit_trigger(trade, candle)
        if trigger is None:
            update_trailing_stop(trade, candle, self.config.risk)
            return []
        price, reason = trigger
        opened = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(candle.ts))
        close_ts = float(candle.close_ts)
        execution = self._close(trade, price, f"{reason} crossed while the bot was down "
                                              f"(candle of {opened})", close_ts)
        self._mark(close_ts, pair)
        return [execution]
