"""What a running bot offers its control surfaces (the HTTP API, the dashboard, Telegram):
read its state, pause, resume, close all, switch strategies. One façade over the runner, so
the API never reaches into the engine or the store itself."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from novapulse import __version__
from novapulse.analytics import AnalyticsHealth
from novapulse.config import Config
from novapulse.models import Thought, Trade, TradeStatus
from novapulse.risk import PausedBy

if TYPE_CHECKING:
    from novapulse.runner import BotRunner

log = logging.getLogger("novapulse.service")

NOT_BUILT_ML = "no model loaded"


def soft_parts_status(config: Config, analytics: AnalyticsHealth | None = None,
                      ml: dict[str, Any] | None = None) -> dict[str, Any]:
    """Analytics as its sink last found OpenSearch (null until it tried, or when disabled),
    with the reason and the drop count; the model as `ml_status` says."""
    return {
        "analytics_ok": None if analytics is None else analytics.ok,
        "analytics_detail": "disabled" if analytics is None else analytics.detail,
        "analytics": None if analytics is None else analytics.as_dict(),
        **ml_status(config, ml),
    }


def ml_status(config: Config, ml: dict[str, Any] | None) -> dict[str, Any]:
    """The model as runbook 8 wants it seen: ml_ok true when it loaded and predicts (applied
    or shadow), false when it failed (with the reason), null when disabled."""
    if not config.ml.enabled or ml is None or ml.get("state") == "disabled":
        return {"ml_ok": None, "ml_detail": "disabled" if not config.ml.enabled else
                (ml or {}).get("reason", NOT_BUILT_ML), "ml": ml}
    return {"ml_ok": ml["state"] in ("ok", "shadow"), "ml_detail": f"{ml['state']}: "
            f"{ml['reason']}", "ml": ml}


def trade_to_dict(trade: Trade) -> dict[str, Any]:
    data = asdict(trade)
    data["side"] = str(trade.side)
    data["status"] = str(trade.status)
    data.pop("extra", None)
    return data


def thought_to_dict(thought: Thought) -> dict[str, Any]:
    return {"ts": thought.ts, "kind": thought.kind, "pair": thought.pair,
            "message": thought.message, "data": dict(thought.data)}


class BotService:
    def __init__(self, runner: BotRunner) -> None:
        self._runner = runner
        self._control_lock = asyncio.Lock()
        self._background: set[asyncio.Task[None]] = set()

    # --- probes -----------------------------------------------------------------------------
    def health(self) -> tuple[bool, str]:
        """Liveness: the main loop has ticked recently."""
        stalled_for = time.monotonic() - self._runner.state.last_loop_tick
        limit = self._runner.config.monitoring.main_loop_stall_seconds
        if stalled_for > limit:
            return False, f"main loop stalled for {stalled_for:.0f}s (limit {limit:g}s)"
        return True, "ok"

    def ready(self) -> tuple[bool, str]:
        """Readiness: the store is connected and warm-up is done."""
        runner = self._runner
        if runner.store is None:
            return False, "store not connected"
        if not runner.db_ok():
            return False, "store did not answer a round trip in the last seconds"
        if not runner.state.warmed_up:
            return False, "warm-up in progress"
        return True, "ok"

    # --- reads ------------------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        runner = self._runner
        engine = runner.engine
        pause = engine.risk.pause
        health = runner.client.health if runner.client else None
        now = time.time()
        feed = {pair: (health.data_age(pair, now) if health else None) for pair in runner.pairs}
        errors = engine.error_trades()  # held until a fill or an admin closes them
        healthy, health_detail = self.health()
        return {
            "mode": engine.mode,
            "account_currency": engine.config.trading.account_currency,
            "paused": pause.paused,
            "pause_reason": pause.reason or None,
            "paused_by": str(pause.paused_by) if pause.paused_by else None,
            "ws_connected": bool(health and health.ws_connected),
            "ws_down_s": None if health is None else round(health.down_for(now), 3),
            "ws_up_s": None if health is None else round(health.up_for(now), 3),
            "feed": feed,
            "open_positions": len(engine.positions),
            "equity": engine.equity(),
            "daily_pnl": engine.risk.day_pnl(engine.equity()),  # open positions at mark
            "bankroll": engine.cash,
            "strategies_disabled": sorted(engine.disabled_strategies()),
            "error_trades": len(errors),
            "error_trade_list": errors,
            "pauses": engine.risk.pauses.snapshot(),
            "closing": sorted(t.trade_id for t in engine.positions.values()
                              if t.status is TradeStatus.CLOSING),
            "exchange": self._exchange(),
            "db_ok": runner.db_ok(),
            **soft_parts_status(runner.config,
                                None if runner.analytics is None else runner.analytics.health(),
                                runner.ml.status()),
            "telegram": None if runner.telegram is None else runner.telegram.health().as_dict(),
            "version": __version__,
            "instance": runner.instance_name,
            "uptime_s": round(now - runner.state.started_at, 1),
            "healthy": healthy,  # what /api/v1/health answers: a poller needs one request
            "health_detail": health_detail,
        }

    def _exchange(self) -> dict[str, Any] | None:
        """Canary and live only: the venue, its last error, orders waiting to be sent, and
        the last reconciliation (runbook 5)."""
        live = self._runner.live
        if live is None:
            return None
        result = live.reconciliation
        return {"venue": live.venue.name, "error": live.venue_error,
                "orders_waiting": live.worker.pending,
                "reconciliation": None if result is None else result.as_dict()}

    def thoughts(self, limit: int = 100) -> list[dict[str, Any]]:
        return [thought_to_dict(t) for t in self._runner.thoughts.recent(limit)]

    def subscribe_thoughts(self, listener: Callable[[Thought], None]) -> Callable[[], None]:
        """Push each new thought to `listener`; returns the function that unsubscribes."""
        return self._runner.thoughts.subscribe(listener)

    def risk(self) -> dict[str, Any]:
        """Every gate (the same objects that decide entries), and what a trade really risks;
        stale data is judged on the oldest pair's last update."""
        runner = self._runner
        engine = runner.engine
        health = runner.client.health if runner.client else None
        now = time.time()
        ages = [health.data_age(pair, now) for pair in runner.pairs] if health else []
        known = [age for age in ages if age is not None]
        equity = engine.equity()
        gates = engine.risk.report(now=engine.market_now(), equity=equity, cash=engine.cash,
                                   open_positions=len(engine.positions),
                                   data_age_s=max(known) if known else None)
        return {"gates": gates, "sizing": engine.risk.sizing_report(equity)}

    def strategies(self) -> list[dict[str, Any]]:
        engine = self._runner.engine
        disabled = engine.disabled_strategies()
        rows = []
        for name in engine.strategy_names:
            stats = engine.book.stats(name, engine.market_now())
            rows.append({
                "name": name, "weight": stats.weight, "trades": stats.trades,
                "win_rate": stats.win_rate,
                # No losing trade: undefined (∞ or nothing yet), not the guardrail's cap of 100.
                "profit_factor": stats.profit_factor if stats.gross_loss > 0 else None,
                "wins": stats.wins,
                "weight_reason": stats.weight_reason,
                "weight_changed_at": stats.weight_changed_at,
                "runtime_disabled": stats.runtime_disabled,
                "disabled_until": stats.disabled_until,
                "manually_disabled": name in engine.manually_disabled,
                "enabled": name not in disabled,
            })
        return rows

    def positions(self) -> list[dict[str, Any]]:
        engine = self._runner.engine
        rows = []
        for trade in engine.positions.values():
            row = trade_to_dict(trade)
            price = engine.last_price.get(trade.pair, trade.entry_price)
            row["last_price"] = price
            row["unrealized_pnl"] = (price - trade.entry_price) * trade.quantity - trade.entry_fee
            rows.append(row)
        return rows

    async def trades(self, limit: int = 100, status: str | None = None) -> list[dict[str, Any]]:
        store = self._runner.store
        if store is None:
            return []
        return [trade_to_dict(t) for t in await store.trades(limit=limit, status=status)]

    def equity_curve(self) -> list[tuple[float, float]]:
        return list(self._runner.state.equity_curve)

    def prices(self) -> dict[str, list[tuple[float, float]]]:
        """Recent closes per pair, [close time, close], oldest first."""
        return {pair: list(series) for pair, series in self._runner.state.prices.items()}

    async def performance(self) -> dict[str, Any]:
        engine = self._runner.engine
        st = engine.risk.state
        closed = st.wins + st.losses
        start = engine.config.trading.starting_bankroll
        return {
            "closed_trades": closed,
            "wins": st.wins,
            "losses": st.losses,
            "win_rate": st.wins / closed if closed else 0.0,
            "profit_factor": st.sum_wins / st.sum_losses if st.sum_losses else None,
            "realized_pnl": engine.realized_pnl,
            "equity": engine.equity(),
            "total_return_pct": (engine.equity() - start) / start * 100.0,
            "drawdown_pct": engine.risk.drawdown_pct(engine.equity()),
            "peak_equity": st.peak_equity,
        }

    # --- control ----------------------------------------------------------------------------
    async def pause(self, reason: str, by: PausedBy) -> bool:
        async with self._control_lock:
            return self._runner.engine.pause(reason, by, time.time())

    async def resume(self, by: PausedBy | None = None) -> bool:
        """Without `by`, lifts any pause (an admin's act); with it, only that party's pause."""
        async with self._control_lock:
            return self._runner.engine.resume(time.time(), by)

    async def ml_retrain(self) -> dict[str, Any]:
        """Retrain the confidence model now from the stored labelled samples (runbook 8)."""
        return await self._runner.ml.retrain_now("manual")

    async def close_all(self) -> list[str]:
        """Send an exit for every position held and store the intent (paper: the fills). The
        store write runs to the end even if the caller gives up waiting (a slow database,
        runbook 7): memory and store never disagree. Status shows each trade `closing` until
        its exit fills."""
        async with self._control_lock:
            runner = self._runner
            engine = runner.engine
            executions = engine.close_all(engine.market_now())

            async def record() -> None:
                await runner.commit(executions)
                runner.dispatch()

            task = asyncio.create_task(record(), name="close-all")
            self._background.add(task)
            task.add_done_callback(self._background.discard)
            await asyncio.shield(task)
            return sorted({e.trade.trade_id for e in executions})

    async def resolve(self, trade_id: str, exit_price: float, fee: float, note: str) -> dict[
            str, Any]:
        """Close a trade in `error` with the exit an admin made on the exchange; stored before
        this returns. KeyError: no such trade in error."""
        async with self._control_lock:
            runner = self._runner
            engine = runner.engine
            executions = engine.resolve(trade_id, exit_price, fee, time.time(), note)
            await asyncio.shield(runner.commit(executions))
            log.warning("trade %s resolved by an admin at %s", trade_id, exit_price)
            return trade_to_dict(executions[-1].trade)

    async def set_strategy_enabled(self, name: str, enabled: bool) -> bool:
        async with self._control_lock:
            engine = self._runner.engine
            return engine.set_strategy_enabled(name, enabled, engine.market_now())
