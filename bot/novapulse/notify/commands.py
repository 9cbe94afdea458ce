"""Telegram commands: text in, the reply out, through the same `BotService` as the API.

`/pause` takes the manual pause slot like `POST /control/pause`, and `/resume` is an admin's
resume like `POST /control/resume` (every pause lifted, and the thought log says which).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from novapulse.risk import PausedBy

HELP = """NovaPulse commands:
/status — mode, pauses, feed, equity, positions
/pause [reason] — pause new entries (a manual pause)
/resume — lift every pause
/positions — open positions
/pnl — performance and today's P&L
/trades — the last trades
/help — this list"""


class Service(Protocol):
    """What the commands need of `novapulse.service.BotService`."""

    def status(self) -> dict[str, Any]: ...
    def positions(self) -> list[dict[str, Any]]: ...
    async def performance(self) -> dict[str, Any]: ...
    async def trades(self, limit: int = 100, status: str | None = None) -> list[
        dict[str, Any]]: ...
    async def pause(self, reason: str, by: PausedBy) -> bool: ...
    async def resume(self, by: PausedBy | None = None) -> bool: ...


def parse(text: str) -> tuple[str, str] | None:
    """'/pause@NovaPulseBot checking' → ('pause', 'checking'); None for no command."""
    text = text.strip()
    if not text.startswith("/"):
        return None
    head, _, rest = text.partition(" ")
    name = head[1:].split("@", 1)[0].lower()
    return (name, rest.strip()) if name else None


def _num(value: Any, digits: int = 8) -> str:
    return "n/a" if not isinstance(value, int | float) else f"{value:.{digits}g}"


def format_status(s: dict[str, Any]) -> str:
    lines = [f"NovaPulse {s.get('instance', '')} — {s.get('mode')} mode"]
    pauses = s.get("pauses") or []
    if pauses:
        lines.append("PAUSED: " + "; ".join(f"{p['by']}: {p['reason']}" for p in pauses))
    else:
        lines.append("trading: active")
    lines.append(f"feed: {'connected' if s.get('ws_connected') else 'DISCONNECTED'}")
    lines.append(f"equity: {_num(s.get('equity'))}  daily P&L: {_num(s.get('daily_pnl'))}")
    lines.append(f"open positions: {s.get('open_positions')}  error trades: "
                 f"{s.get('error_trades')}")
    lines.append(f"database: {'ok' if s.get('db_ok') else 'NOT OK'}  analytics: "
                 f"{s.get('analytics_detail')}")
    disabled = s.get("strategies_disabled") or []
    if disabled:
        lines.append("strategies disabled: " + ", ".join(disabled))
    return "\n".join(lines)


def format_positions(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "No open positions."
    return "\n".join(
        f"{r['pair']} {r['trade_id']}: {_num(r['quantity'], 6)} @ {_num(r['entry_price'])}, "
        f"last {_num(r.get('last_price'))}, unrealized {_num(r.get('unrealized_pnl'), 6)}, "
        f"stop {_num(r.get('stop_loss'))} ({r['status']})" for r in rows)


def format_pnl(perf: dict[str, Any], status: dict[str, Any]) -> str:
    win_rate = perf.get("win_rate")
    return "\n".join([
        f"realized P&L: {_num(perf.get('realized_pnl'), 6)}",
        f"today: {_num(status.get('daily_pnl'), 6)}",
        f"equity: {_num(perf.get('equity'))} ({_num(perf.get('total_return_pct'), 4)} %)",
        f"closed trades: {perf.get('closed_trades')}, win rate "
        f"{'n/a' if not isinstance(win_rate, float) else f'{win_rate:.0%}'}",
        f"drawdown: {_num(perf.get('drawdown_pct'), 4)} %",
    ])


def format_trades(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return "No trades yet."
    return "\n".join(
        f"{r['trade_id']} {r['status']}: {_num(r['quantity'], 6)} @ {_num(r['entry_price'])}"
        + (f" → {_num(r['exit_price'])}, P&L {_num(r.get('pnl'), 6)}"
           if r.get("exit_price") is not None else "") for r in rows)


TRADES_SHOWN = 5


async def run_command(service: Service, name: str, argument: str) -> str:
    async def status() -> str:
        return format_status(service.status())

    async def pause() -> str:
        reason = f"{argument} (via Telegram)" if argument else "manual pause via Telegram"
        changed = await service.pause(reason, PausedBy.MANUAL)
        return ("Trading PAUSED: " + reason) if changed else (
            "Already paused manually; the first reason stays.\n" + format_status(
                service.status()))

    async def resume() -> str:
        changed = await service.resume(None)
        state = service.status()
        if not changed:
            return "Nothing to resume: not paused."
        return "Trading RESUMED." if not state.get("paused") else format_status(state)

    async def positions() -> str:
        return format_positions(service.positions())

    async def pnl() -> str:
        return format_pnl(await service.performance(), service.status())

    async def trades() -> str:
        return format_trades(await service.trades(limit=TRADES_SHOWN))

    async def help_() -> str:
        return HELP

    handlers: dict[str, Callable[[], Awaitable[str]]] = {
        "status": status, "pause": pause, "resume": resume, "positions": positions,
        "pnl": pnl, "trades": trades, "help": help_, "start": help_,
    }
    handler = handlers.get(name)
    if handler is None:
        return f"Unknown command /{name}.\n\n{HELP}"
    return await handler()
