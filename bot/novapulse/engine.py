"""The trading engine: candles in, order intents out, fills in, positions and risk updated.

One engine drives backtests, the replay feed and live trading. It is synchronous and does no
I/O. With a venue that fills at once (paper) it fills inline; with one that answers later,
intents wait in `outbox` and reports come back through `on_report`. Either way the caller
stores what a step returns, with the checkpoint, in one transaction before the next step:
that is what makes a crash lose nothing. Time is market time: the close time of the candle
decided on.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from novapulse.config import Config
from novapulse.execution.orders import intent_from_json, intent_to_json, order_record
from novapulse.execution.venue import ImmediateVenue, OrderIntent, OrderReport, OrderState
from novapulse.exit_book import ExitBook
from novapulse.indicators import PairIndicators
from novapulse.models import Candle, Order, OrderKind, Side, Trade, TradeStatus
from novapulse.order_ids import client_order_id_for, manual_exit_id
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
MAX_EXIT_RETRIES = 3  # runbook 4: "Exit order failed (3 retries exhausted)"
# Trades whose quantity is held (at mark in equity), and may be sold by an exit.
HELD = frozenset({TradeStatus.OPEN, TradeStatus.CLOSING, TradeStatus.ERROR})


@dataclass(frozen=True, slots=True)
class Execution:
    """An order's latest state and its trade as it now stands; the caller stores both (with
    the checkpoint) in one transaction."""

    trade: Trade
    order: Order


class ConfidenceModel(Protocol):
    """An optional model that adjusts an entry decision's confidence before the gates, and
    learns from the trades it saw taken. Synchronous and I/O-free, like the engine: whatever
    it must store or log heavily, it queues for its owner. A raise is caught by the engine
    (the model never stops trading)."""

    def adjust(self, decision: Decision, ind: PairIndicators, candle: Candle) -> Decision: ...

    def entered(self, trade: Trade) -> None: ...

    def closed(self, trade: Trade) -> None: ...


def trade_id_for(identity: str, pair: str, candle_ts: int) -> str:
    """Deterministic id: deciding on the same candle again (after a crash) yields the same id;
    the bot's identity keeps two bots sharing one database from ever sharing an id."""
    return f"{identity}:{pair.replace('/', '')}-{candle_ts}"


class Engine:
    def __init__(self, config: Config, executor: ImmediateVenue | None, thoughts: ThoughtLog,
                 strategies: Sequence[Strategy] | None = None) -> None:
        """`executor`: a venue that fills at once (paper); None for one that answers later —
        intents then wait in `outbox` and fills come back through `on_report`."""
        self.config = config
        self.executor = executor
        self.in_flight: dict[str, OrderIntent] = {}  # client order id -> intent
        self.outbox: list[OrderIntent] = []
        self.exits = ExitBook()
        self.thoughts = thoughts
        self.mode = config.trading.mode
        self.cash = config.trading.starting_bankroll
        self.positions: dict[str, Trade] = {}
        self.last_price: dict[str, float] = {}
        self.last_candle_ts: dict[str, int] = {}
        self.indicators: dict[str, PairIndicators] = {}
        if strategies is not None:
            strategies = list(strategies)
        elif config.strategies is not None:
            strategies = [spec.build() for spec in config.strategies]
        else:
            strategies = default_strategies()
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
        self.confidence_model: ConfidenceModel | None = None

    # --- state ------------------------------------------------------------------------------
    def equity(self) -> float:
        held = 0.0
        for pair, trade in self.positions.items():
            if trade.status is not TradeStatus.PENDING:  # nothing bought yet
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
        if trade is not None and trade.status is TradeStatus.OPEN:
            # Judged against the stops as they stood at the open, then ratcheted (positions.py).
            trigger = exit_trigger(trade, candle)
            if trigger is not None:
                executions += self._close(trade, trigger[0], trigger[1], now)
            else:
                update_trailing_stop(trade, candle, self.config.risk)
        if not ind.ready:
            return executions
        decision = self.ensemble.evaluate_all(ind, candle, self._disabled)
        if (self.confidence_model is not None and decision.direction > 0
                and pair not in self.positions):
            decision = self._model_adjusted(decision, ind, candle)
        if decision.confidence < self._min_confidence or decision.direction == 0:
            return executions
        trade = self.positions.get(pair)
        if trade is not None:  # pending, closing or in error: nothing more to decide on it
            if decision.direction < 0 and trade.status is TradeStatus.OPEN:
                executions += self._close(trade, candle.close, EXIT_SIGNAL, now)
        elif decision.direction > 0:
            executions += self._try_enter(candle, decision, now, data_age_s)
        return executions

    def _model_adjusted(self, decision: Decision, ind: PairIndicators,
                        candle: Candle) -> Decision:
        assert self.confidence_model is not None
        try:
            return self.confidence_model.adjust(decision, ind, candle)
        except Exception:  # runbook 8: the model is never allowed to stop a decision
            log.exception("TFLite predictor failed")
            return decision

    def _model_saw(self, trade: Trade, closed: bool) -> None:
        model = self.confidence_model
        if model is None:
            return
        try:
            if closed:
                model.closed(trade)
            else:
                model.entered(trade)
        except Exception:
            log.exception("Continuous learner update failed")

    def _mark(self, now: float, pair: str | None) -> None:
        for message in self.risk.mark(self.equity(), now):
            self._auto_paused(message, now, pair)

    def _try_enter(self, candle: Candle, decision: Decision, now: float,
                   data_age_s: float) -> list[Execution]:
        pair = candle.pair
        equity = self.equity()
        cash = self.available_cash()
        verdict: Verdict = self.risk.check_entry(
            now=now, equity=equity, cash=cash, open_positions=len(self.positions),
            data_age_s=data_age_s,
        )
        if not verdict.allowed:
            self.thoughts.add(now, "blocked", verdict.message, pair,
                              {"gate": str(verdict.gate), "confidence": decision.confidence})
            return []
        plan = plan_position(equity=equity, cash=cash, price=candle.close,
                             fee_rate=self.config.trading.fee_rate, slippage=self.slippage,
                             config=self.config.risk)
        if plan.quantity <= 0:
            self.thoughts.add(now, "blocked", "Bankroll depleted", pair, {"gate": "bankroll"})
            return []
        trade_id = trade_id_for(self.config.instance.identity, pair, candle.ts)
        voters = [s.strategy for s in decision.votes if s.direction > 0]
        stop, take_profit = initial_stops(candle.close, self.config.risk)
        # Pending until the entry fills; price, quantity and stops then follow the fill.
        self.positions[pair] = Trade(
            trade_id=trade_id, pair=pair, side=Side.BUY, entry_price=candle.close,
            quantity=plan.quantity, entry_time=now, strategy=",".join(voters),
            stop_loss=stop, take_profit=take_profit, status=TradeStatus.PENDING,
            highest_price=candle.close, lowest_price=candle.close, mode=self.mode,
            notes=decision.reason,
        )
        self.risk.record_entry(now)
        self.thoughts.add(now, "entry", f"BUY {pair} qty={plan.quantity:.6g} @ {candle.close:.8g} "
                          f"(confidence {decision.confidence:.2f}): {decision.reason}", pair,
                          {"trade_id": trade_id, "confidence": decision.confidence})
        return self._send(OrderIntent(
            client_order_id_for(trade_id, OrderKind.ENTRY), trade_id, pair, Side.BUY,
            OrderKind.ENTRY, plan.quantity, candle.close, now))

    def _close(self, trade: Trade, price: float, reason: str, now: float) -> list[Execution]:
        """Send the exit for what is still held; the position closes as it fills."""
        trade.status = TradeStatus.CLOSING
        attempt = self.exits.attempt.get(trade.trade_id, 0)
        self.exits.reason[trade.trade_id] = reason
        return self._send(OrderIntent(
            client_order_id_for(trade.trade_id, OrderKind.EXIT, attempt), trade.trade_id,
            trade.pair, Side.SELL, OrderKind.EXIT, trade.quantity, price, now, attempt))

    def _send(self, intent: OrderIntent) -> list[Execution]:
        """Paper fills inline, through the same path as a venue's report; a real venue's intent
        waits in the outbox for the execution layer, which reports back via `on_report`."""
        self.in_flight[intent.client_order_id] = intent
        if self.executor is not None:
            return self.on_report(self.executor.fill(intent), intent.ts)
        self.outbox.append(intent)
        # Stored (trade pending or closing, order pending) before it is ever sent.
        return [Execution(self.positions[intent.pair], order_record(intent))]

    def drain_outbox(self) -> list[OrderIntent]:
        """Intents to send, each once; the caller stores them before it sends them."""
        intents, self.outbox = self.outbox, []
        return intents

    def on_report(self, report: OrderReport, now: float) -> list[Execution]:
        """What a venue said about an order: positions follow fills, not requests."""
        intent = self.in_flight.get(report.client_order_id)
        if intent is None:
            log.warning("report for an order the engine is not waiting for: %s (%s)",
                        report.client_order_id, report.state)
            return []
        trade = self.positions.get(intent.pair)
        if trade is None or trade.trade_id != intent.trade_id:
            del self.in_flight[report.client_order_id]
            return []
        if not report.state.final:
            return [Execution(trade, order_record(intent, report))]
        del self.in_flight[report.client_order_id]
        if intent.kind is OrderKind.ENTRY:
            return [self._entry_done(trade, intent, report, now)]
        return self._exit_done(trade, intent, report, now)

    def _entry_done(self, trade: Trade, intent: OrderIntent, report: OrderReport,
                    now: float) -> Execution:
        order = order_record(intent, report)
        if report.filled_quantity <= 0 or report.average_price is None:
            trade.status = TradeStatus.REJECTED
            del self.positions[trade.pair]
            self._order_failed(trade, intent, report, now)
            return Execution(trade, order)
        price = report.average_price
        trade.entry_price = price
        trade.quantity = report.filled_quantity
        trade.entry_fee = report.fee
        trade.stop_loss, trade.take_profit = initial_stops(price, self.config.risk)
        trade.highest_price = trade.lowest_price = price
        trade.status = TradeStatus.OPEN
        self.cash -= price * trade.quantity + report.fee
        self._model_saw(trade, closed=False)
        return Execution(trade, order)

    def _exit_done(self, trade: Trade, intent: OrderIntent, report: OrderReport,
                   now: float) -> list[Execution]:
        done = [Execution(trade, order_record(intent, report))]
        if report.filled_quantity <= 0 or report.average_price is None:
            self._order_failed(trade, intent, report, now)
            return done + self._retry_exit(trade, intent, now, failed=True)
        filled = min(report.filled_quantity, trade.quantity)
        self.cash += report.average_price * filled - report.fee
        self.exits.record_fill(trade.trade_id, filled, report.average_price, report.fee)
        trade.quantity -= filled
        if trade.quantity > 1e-12:  # partly filled: the rest is still held and still exits
            self.thoughts.add(now, "exit", f"SELL {trade.pair}: {filled:.6g} filled, "
                              f"{trade.quantity:.6g} left to sell", trade.pair,
                              {"trade_id": trade.trade_id})
            return done + self._retry_exit(trade, intent, now, failed=False)
        self._closed(trade, now)
        return done

    def _closed(self, trade: Trade, now: float) -> None:
        sold, value, fees = self.exits.finish(trade.trade_id)
        reason = self.exits.reason.pop(trade.trade_id, "")
        trade.quantity = sold
        trade.exit_price = value / sold
        trade.exit_time = now
        trade.exit_fee = fees
        trade.pnl = value - trade.entry_price * sold - trade.entry_fee - fees
        trade.status = TradeStatus.CLOSED
        trade.notes = f"{trade.notes} | exit: {reason}" if trade.notes else f"exit: {reason}"
        del self.positions[trade.pair]
        self.closed_count += 1
        self.realized_pnl += trade.pnl
        self.thoughts.add(now, "exit", f"SELL {trade.pair} @ {trade.exit_price:.8g} ({reason}), "
                          f"pnl {trade.pnl:+.8g}", trade.pair,
                          {"trade_id": trade.trade_id, "pnl": trade.pnl})
        self.book.record_result([n for n in trade.strategy.split(",") if n], trade.pnl, now)
        self._tick_guardrails(now)
        self._retune()
        for change in self.book.drain_weight_changes():  # every move, with its reason
            self.thoughts.add(now, "weight", change.message(), None, {
                "strategy": change.strategy, "old": change.old, "new": change.new})
        r = r_multiple(trade.pnl, trade.entry_price, trade.stop_loss, trade.quantity,
                       trade.entry_fee, self.config.trading.fee_rate)
        for message in self.risk.record_close(trade.pnl, r, now):
            self._auto_paused(message, now, trade.pair)
        self._model_saw(trade, closed=True)

    def _retry_exit(self, trade: Trade, last: OrderIntent, now: float, *,
                    failed: bool) -> list[Execution]:
        """Send the exit again as a new order. After MAX_EXIT_RETRIES failed retries the trade
        is in `error`: it may still be open on the exchange, and only a confirmed fill or an
        admin's act closes it (runbook 4)."""
        if failed and self.exits.failed(trade.trade_id) > MAX_EXIT_RETRIES:
            trade.status = TradeStatus.ERROR
            self.thoughts.add(now, "error", f"Exit order failed ({MAX_EXIT_RETRIES} retries "
                              f"exhausted): {trade.trade_id} {trade.pair} qty={trade.quantity:.6g}"
                              " may still be open on the exchange — manual intervention required",
                              trade.pair, {"trade_id": trade.trade_id}, level=logging.CRITICAL)
            return []
        self.exits.attempt[trade.trade_id] = last.attempt + 1
        return self._close(trade, last.price, self.exits.reason.get(trade.trade_id, ""), now)

    def _order_failed(self, trade: Trade, intent: OrderIntent, report: OrderReport,
                      now: float) -> None:
        error = report.error or "ExchangeError"
        if intent.kind is OrderKind.EXIT:
            self.exits.last_error[trade.trade_id] = f"{error}: {report.message or report.state}"
        self.thoughts.add(now, "order_failed", f"Order fill failed: {intent.kind} {intent.pair} "
                          f"({error}: {report.message or report.state})", intent.pair,
                          {"trade_id": trade.trade_id, "error": str(error)},
                          level=logging.ERROR)

    def error_trades(self) -> list[dict[str, Any]]:
        """Trades whose exit gave up (runbook 4): what a human must look at on the exchange."""
        return [{"trade_id": t.trade_id, "pair": t.pair, "quantity": t.quantity,
                 "last_error": self.exits.last_error.get(t.trade_id)}
                for t in self.positions.values() if t.status is TradeStatus.ERROR]

    def resolve(self, trade_id: str, exit_price: float, fee: float, now: float,
                note: str = "") -> list[Execution]:
        """An admin closes a trade in `error` with the exit the exchange really made (runbook
        4's manual fix, without hand-written SQL). KeyError: no such trade in error."""
        reason = "resolved by an admin" + (f": {note}" if note else "")
        return self._exited_outside(trade_id, (TradeStatus.ERROR,), exit_price, fee, now, reason)

    def closed_outside(self, trade_id: str, exit_price: float, fee: float,
                       now: float) -> list[Execution]:
        """Reconciliation saw the position sold outside the bot (runbook 5): record it closed
        with the exchange's real exit. KeyError: no such position held."""
        for cid, intent in list(self.in_flight.items()):  # its own exit can only fail now
            if intent.trade_id == trade_id:
                del self.in_flight[cid]
        return self._exited_outside(trade_id, tuple(HELD), exit_price, fee, now,
                                    "closed outside the bot (seen by reconciliation)")

    def _exited_outside(self, trade_id: str, statuses: tuple[TradeStatus, ...],
                        exit_price: float, fee: float, now: float,
                        reason: str) -> list[Execution]:
        trade = next((t for t in self.positions.values() if t.trade_id == trade_id
                      and t.status in statuses), None)
        if trade is None:
            raise KeyError(trade_id)
        intent = OrderIntent(manual_exit_id(trade_id), trade_id, trade.pair, Side.SELL,
                             OrderKind.EXIT, trade.quantity, exit_price, now)
        self.exits.reason[trade_id] = reason
        self.in_flight[intent.client_order_id] = intent
        return self.on_report(OrderReport(intent.client_order_id, OrderState.FILLED,
                                          trade.quantity, exit_price, fee,
                                          message="closed outside the bot"), now)

    def available_cash(self) -> float:
        """Cash not already promised to an entry in flight (its fill, slippage and fee)."""
        if not self.in_flight:
            return self.cash
        cost = (1.0 + self.slippage) * (1.0 + self.config.trading.fee_rate)
        promised = sum(i.quantity * i.price * cost for i in self.in_flight.values()
                       if i.kind is OrderKind.ENTRY)
        return self.cash - promised

    def _auto_paused(self, message: str, now: float, pair: str | None) -> None:
        self.thoughts.add(now, "pause", message, pair, {"paused_by": "risk_rule"},
                          level=logging.WARNING)

    def _tick_guardrails(self, now: float) -> None:
        """Let the guardrail disable or re-enable strategies. Results only change when a trade
        closes, so between closes a coarse tick is enough to re-enable on time."""
        for event in self.book.tick(now):
            self.thoughts.add(now, "guardrail", event.message, None, {
                "strategy": event.strategy, "until": event.until, "win_rate": event.win_rate,
                "profit_factor": event.profit_factor, "trades": event.trades},
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
        """Send an exit for every position held; one whose exit gave up (error) is tried again —
        an admin asked. Exits already working are left to finish."""
        executions: list[Execution] = []
        for trade in list(self.positions.values()):
            if trade.status in (TradeStatus.OPEN, TradeStatus.ERROR):
                self.exits.reset(trade.trade_id)
                price = self.last_price.get(trade.pair, trade.entry_price)
                executions += self._close(trade, price, EXIT_MANUAL, now)
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
            "in_flight": [intent_to_json(i) for i in self.in_flight.values()],
            "exits": self.exits.snapshot(),
        }

    def restore(self, trades: list[Trade], checkpoint: dict[str, Any] | None) -> None:
        """Rebuild from the store: cash from every trade, open positions as they were, and the
        rest from the checkpoint. Candles up to the last one decided on only warm indicators."""
        exits = ExitBook.restore((checkpoint or {}).get("exits", {}))
        cash = self.config.trading.starting_bankroll
        for trade in sorted(trades, key=lambda t: t.entry_time):
            if trade.status is TradeStatus.REJECTED:
                continue  # nothing was bought
            if trade.status is TradeStatus.PENDING:
                self.positions[trade.pair] = trade
                continue
            sold, value, fees = exits.sold(trade.trade_id)
            cash -= trade.entry_price * (trade.quantity + sold) + trade.entry_fee
            if trade.status in HELD:
                cash += value - fees  # what a partly filled exit already brought in
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
        self.exits = exits
        for saved in checkpoint.get("in_flight", []):
            intent = intent_from_json(saved)
            held = self.positions.get(intent.pair)
            if held is not None and held.trade_id == intent.trade_id:
                self.in_flight[intent.client_order_id] = intent
        self._reissue_lost_intents()
        for pair, ts in checkpoint.get("last_candle_ts", {}).items():
            self.decide_after[pair] = max(self.decide_after.get(pair, -1), int(ts))
        self.risk.restore(checkpoint.get("risk", {}), legacy_pause=checkpoint.get("pause"))
        self.manually_disabled = set(checkpoint.get("manually_disabled", [])) & set(
            self.strategy_names)
        self._disabled |= self.manually_disabled
        if checkpoint.get("strategies"):
            self.book.restore(checkpoint["strategies"])
            self._retune()

    def _reissue_lost_intents(self) -> None:
        """A pending entry or a closing exit whose intent the checkpoint lacks (a crash between
        storing the trade and the checkpoint): the same deterministic order again, so the
        execution layer looks it up by its client order id before it could send a second."""
        working = {(i.trade_id, i.kind) for i in self.in_flight.values()}
        for trade in self.positions.values():
            if trade.status is TradeStatus.PENDING and (trade.trade_id, OrderKind.ENTRY) \
                    not in working:
                intent = OrderIntent(client_order_id_for(trade.trade_id, OrderKind.ENTRY),
                                     trade.trade_id, trade.pair, Side.BUY, OrderKind.ENTRY,
                                     trade.quantity, trade.entry_price, trade.entry_time)
            elif trade.status is TradeStatus.CLOSING and (trade.trade_id, OrderKind.EXIT) \
                    not in working:
                attempt = self.exits.attempt.get(trade.trade_id, 0)
                intent = OrderIntent(
                    client_order_id_for(trade.trade_id, OrderKind.EXIT, attempt), trade.trade_id,
                    trade.pair, Side.SELL, OrderKind.EXIT, trade.quantity,
                    self.last_price.get(trade.pair, trade.entry_price), trade.entry_time, attempt)
            else:
                continue
            self.in_flight[intent.client_order_id] = intent
            self.outbox.append(intent)

    # --- after a restart --------------------------------------------------------------------
    def check_exits_while_down(self, candle: Candle) -> list[Execution]:
        """Judge an open position's stops on a candle the bot never decided on (missed while it
        was down or disconnected, now replayed as history): an exit the stops would have made
        is made, at the price they would have filled at. Never enters. Call it before
        `warm_up(candle)`; candles already seen or decided on are ignored."""
        pair = candle.pair
        trade = self.positions.get(pair)
        seen = max(self.last_candle_ts.get(pair, -1), self.decide_after.get(pair, -1))
        if (trade is None or trade.status is not TradeStatus.OPEN or candle.ts <= seen
                or candle.ts < trade.entry_time):
            return []
        # The stops as they stood when the candle opened judge it; only then does it move them.
        trigger = exit_trigger(trade, candle)
        if trigger is None:
            update_trailing_stop(trade, candle, self.config.risk)
            return []
        price, reason = trigger
        opened = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(candle.ts))
        close_ts = float(candle.close_ts)
        executions = self._close(trade, price, f"{reason} crossed while the bot was down "
                                               f"(candle of {opened})", close_ts)
        self._mark(close_ts, pair)
        return executions
