"""What the bot's API says, as the operator shows it: `status.bot` and four conditions (pure).

Input: the JSON of `GET /api/v1/status` (or nothing, when the bot did not answer) and whether
`GET /api/v1/health` answered 200. Output: the `status.bot` block (camelCase, what
`kubectl get tb` prints) and the conditions FeedHealthy, TradingActive,
ManualInterventionRequired (error trades, runbook 4) and AnalyticsAvailable (runbooks 8, 12).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

FEED_HEALTHY = "FeedHealthy"
TRADING_ACTIVE = "TradingActive"
MANUAL_INTERVENTION = "ManualInterventionRequired"
ANALYTICS_AVAILABLE = "AnalyticsAvailable"
# Fields that move all the time: refreshed in status at most every few seconds, not per poll.
VOLATILE = ("equity", "dailyPnl", "feedAgeSeconds", "lastSeen")
MAX_LISTED_TRADES = 10

ConditionValue = tuple[bool | None, str, str]  # (status, reason, message)


# How the bot's feed circuit breaker words its pause (novapulse.runner).
FEED_BREAKER_REASON = "WebSocket disconnected"


@dataclass(frozen=True)
class BotView:
    """One poll of a bot. `status` is None when /api/v1/status did not answer."""

    healthy: bool  # GET /api/v1/health answered 200
    status: Mapping[str, Any] | None
    error: str = ""  # why the bot could not be read, when it could not
    answered_at: datetime | None = None  # when its answer had arrived

    @property
    def reachable(self) -> bool:
        return self.status is not None

    @property
    def feed_down_since(self) -> datetime | None:
        """When the bot saw its feed go down, by its own count (`ws_down_s`) back from its
        answer: a threshold counts from there, not from the first poll that saw it. None
        while connected, or from a bot that does not say."""
        return None if self.ws_connected else self._since("ws_down_s")

    @property
    def feed_up_since(self) -> datetime | None:
        """When the bot's feed connected, by its own count (`ws_up_s`); None while down."""
        return self._since("ws_up_s") if self.ws_connected else None

    def _since(self, key: str) -> datetime | None:
        seconds = None if self.status is None else self.status.get(key)
        if (self.answered_at is None or isinstance(seconds, bool)
                or not isinstance(seconds, int | float)):
            return None
        return self.answered_at - timedelta(seconds=max(0.0, float(seconds)))

    @property
    def ws_connected(self) -> bool | None:
        return None if self.status is None else bool(self.status.get("ws_connected"))

    @property
    def pause_holders(self) -> tuple[str, ...]:
        if self.status is None:
            return ()
        holders = [str(p.get("by")) for p in self.status.get("pauses") or ()
                   if isinstance(p, Mapping)]
        if not holders and self.status.get("paused") and self.status.get("paused_by"):
            holders = [str(self.status["paused_by"])]
        return tuple(holders)

    @property
    def feed_breaker_paused(self) -> bool:
        """Whether the bot's own feed circuit breaker holds a pause (runbook 2). The
        breaker's slot also serves the live venue's "exchange unavailable" pause, which the
        bot lifts itself: only the feed's, by its reason, is the operator's to lift."""
        if self.status is None:
            return False
        return any(isinstance(p, Mapping) and p.get("by") == "circuit_breaker"
                   and str(p.get("reason") or "").startswith(FEED_BREAKER_REASON)
                   for p in self.status.get("pauses") or ())

    @property
    def error_trades(self) -> tuple[Mapping[str, Any], ...]:
        if self.status is None:
            return ()
        return tuple(t for t in self.status.get("error_trade_list") or ()
                     if isinstance(t, Mapping))


@dataclass(frozen=True)
class Conditions:
    values: dict[str, ConditionValue] = field(default_factory=dict)


def feed_age(status: Mapping[str, Any]) -> float | None:
    """The oldest pair's seconds since its last data (the feed is as old as its stalest pair)."""
    ages = [float(a) for a in (status.get("feed") or {}).values() if isinstance(a, int | float)]
    return max(ages) if ages else None


def mirror(view: BotView, now_text: str) -> dict[str, Any] | None:
    """`status.bot` from one poll; None when the bot did not answer (the last one stays)."""
    st = view.status
    if st is None:
        return None
    age = feed_age(st)
    errors = view.error_trades
    exchange = st.get("exchange") if isinstance(st.get("exchange"), Mapping) else None
    bot: dict[str, Any] = {
        "mode": st.get("mode"),
        "paused": bool(st.get("paused")),
        "pausedBy": st.get("paused_by"),
        "pauseReason": st.get("pause_reason"),
        "pausedByAll": list(view.pause_holders),
        "wsConnected": bool(st.get("ws_connected")),
        "feedAgeSeconds": None if age is None else round(age),
        "openPositions": int(st.get("open_positions") or 0),
        "equity": st.get("equity"),
        "dailyPnl": st.get("daily_pnl"),
        "errorTrades": int(st.get("error_trades") or len(errors)),
        "errorTradeIds": [str(t.get("trade_id")) for t in errors][:MAX_LISTED_TRADES],
        "strategiesDisabled": list(st.get("strategies_disabled") or ()),
        "dbOk": st.get("db_ok"),
        "analyticsOk": st.get("analytics_ok"),
        "mlOk": st.get("ml_ok"),
        "healthy": view.healthy,
        "lastSeen": now_text,
    }
    if exchange is not None:
        rec = exchange.get("reconciliation") if isinstance(
            exchange.get("reconciliation"), Mapping) else {}
        bot["exchangeError"] = exchange.get("error")
        bot["ghosts"] = list((rec or {}).get("ghosts") or ())[:MAX_LISTED_TRADES]
        bot["orphans"] = list((rec or {}).get("orphans") or ())[:MAX_LISTED_TRADES]
    return bot


def significant(bot: Mapping[str, Any] | None) -> dict[str, Any]:
    """The mirror without its fast-moving numbers: a change here is written at once. A
    null field is left out: written as a merge patch, it is not stored, so the status read
    back never has it (compared with it, every poll of every bot looked like a change)."""
    return {k: v for k, v in (bot or {}).items() if k not in VOLATILE and v is not None}


def _error_trades_message(trades: Sequence[Mapping[str, Any]], count: int) -> str:
    named = ", ".join(
        f"{t.get('trade_id')} ({t.get('pair')}, qty {t.get('quantity')}"
        + (f", last error: {t.get('last_error')}" if t.get("last_error") else "") + ")"
        for t in trades[:MAX_LISTED_TRADES])
    listed = len(trades[:MAX_LISTED_TRADES])
    more = f" and {count - listed} more" if count > listed else ""
    return (f"{count} trade(s) in error after their exit retries gave up, possibly still open "
            f"on the exchange: {named}{more}. Close each on the exchange, then POST "
            "/api/v1/trades/ID/resolve (runbook 4)")


def conditions(view: BotView, running: bool, starting: bool = False,
               ) -> dict[str, ConditionValue]:
    """The bot-side conditions. `running`: a pod of this bot is meant to run (not suspended,
    not gated); otherwise every one is Unknown with that reason. `starting`: its pod has not
    been Ready yet (none yet, or a first start) — a bot that does not answer then is no
    fault, and nothing about its feed or trading is known."""
    if not running:
        why = "no bot pod is meant to run"
        return {FEED_HEALTHY: (None, "NotRunning", why),
                TRADING_ACTIVE: (False, "NotRunning", why),
                ANALYTICS_AVAILABLE: (None, "NotRunning", why)}
    st = view.status
    if st is None and starting:
        why = "the bot's pod is starting: its API is read once it answers"
        return {FEED_HEALTHY: (None, "BotStarting", why),
                TRADING_ACTIVE: (None, "BotStarting", why),
                ANALYTICS_AVAILABLE: (None, "BotStarting", why)}
    if st is None:
        why = f"the bot's API did not answer: {view.error or 'no answer'}"
        return {FEED_HEALTHY: (None, "BotUnreachable", why),
                TRADING_ACTIVE: (None, "BotUnreachable", why),
                ANALYTICS_AVAILABLE: (None, "BotUnreachable", why)}
    out: dict[str, ConditionValue] = {}
    # No ages in messages: a condition changes when the feed does, not with every poll.
    if st.get("ws_connected"):
        out[FEED_HEALTHY] = (True, "Connected", "market feed connected")
    else:
        out[FEED_HEALTHY] = (False, "Disconnected",
                             "market feed disconnected (runbook 2; status.bot.feedAgeSeconds "
                             "says for how long the data is old)")
    if st.get("paused"):
        holders = ", ".join(view.pause_holders) or str(st.get("paused_by"))
        reason = {"manual": "PausedManually", "risk_rule": "PausedByRiskRule",
                  "circuit_breaker": "PausedByCircuitBreaker",
                  "operator": "PausedByOperator"}.get(str(st.get("paused_by")), "Paused")
        out[TRADING_ACTIVE] = (False, reason,
                               f"paused by {holders}: {st.get('pause_reason') or 'no reason'}")
    else:
        out[TRADING_ACTIVE] = (True, "Trading", "no pause is held: new entries allowed")
    analytics, ml = st.get("analytics_ok"), st.get("ml_ok")
    detail = (f"analytics: {st.get('analytics_detail') or analytics}; "
              f"model: {st.get('ml_detail') or ml}; neither blocks trading")
    if analytics is False or ml is False:
        out[ANALYTICS_AVAILABLE] = (False, "SoftDependencyFailing", detail)
    elif analytics is None and ml is None:
        out[ANALYTICS_AVAILABLE] = (None, "NotAvailable", detail)
    else:
        out[ANALYTICS_AVAILABLE] = (True, "Available", detail)
    errors = view.error_trades
    count = int(st.get("error_trades") or len(errors))
    if count:
        out[MANUAL_INTERVENTION] = (True, "ErrorTrades", _error_trades_message(errors, count))
    else:
        out[MANUAL_INTERVENTION] = (False, "NoErrorTrades", "no trade waits for a human")
    return out
