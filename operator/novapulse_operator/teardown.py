"""Deletion under the finalizer: pause, close positions if asked, wait (bounded) until flat.

Returns normally when the children may go (garbage collection through the owner
references); raises `Held` when they may not, with a reason the handler turns into a
condition, an Event and a retry — a bot with open positions is never silently stranded.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from novapulse_operator import botapi, holds, manifests
from novapulse_operator.kube import KubeClient
from novapulse_operator.reconcile import Emit, owner_of
from novapulse_operator.spec import parse_spec

PAUSE_REASON = "operator: the TradingBot is being deleted"


class Held(Exception):
    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


@dataclass(frozen=True)
class TeardownSettings:
    endpoint_template: str = botapi.DEFAULT_ENDPOINT_TEMPLATE
    allow_endpoint_annotation: bool = False
    flat_wait_seconds: float = 60.0
    poll_seconds: float = 1.0


def _real_money(prev: Mapping[str, Any]) -> bool:
    """Whether the bot may hold real positions: it runs canary/live, or it did and its last
    mirrored status still showed open positions (e.g. stopped by a closed live gate)."""
    if prev.get("effectiveMode") in ("canary", "live"):
        return True
    bot = prev.get("bot") or {}
    return bot.get("mode") in ("canary", "live") and bool(bot.get("openPositions"))


def unreachable_hint(name: str, suspended: bool, namespace_deleted: bool = False) -> str:
    """What a human can do about a real-money bot the operator cannot reach."""
    if namespace_deleted:
        return ("its namespace is being deleted, which stops its pod for good: close its "
                "positions on the exchange by hand, then set spec.onDelete: leaveOpen "
                f"(kubectl patch tradingbot {name} --type merge "
                "-p '{\"spec\":{\"onDelete\":\"leaveOpen\"}}')")
    if suspended:
        return "resume it (spec.suspended: false) or set spec.onDelete: leaveOpen"
    return (f"see why it does not answer (kubectl get pod -l novapulse.io/tradingbot={name}; "
            f"kubectl logs deploy/{name}) or set spec.onDelete: leaveOpen")


def unreachable_note(prev: Mapping[str, Any], on_delete: str, error: str) -> str:
    """The Event of a deletion that goes on without reaching the bot, saying what is true."""
    mode = prev.get("effectiveMode")
    if on_delete == "leaveOpen":
        return (f"the bot did not answer ({error}); spec.onDelete is leaveOpen: any open "
                "positions are left as they are; deleting")
    if mode == "paper":
        return (f"the bot did not answer ({error}); a paper bot's positions are simulated, "
                "nothing to close on the exchange; deleting")
    bot = prev.get("bot") or {}
    if bot.get("mode") in ("canary", "live"):
        return (f"the bot did not answer ({error}); no pod runs and its last status showed no "
                f"open {bot.get('mode')} position; deleting")
    return f"the bot did not answer ({error}); no bot ran, nothing to close; deleting"


async def teardown(body: Mapping[str, Any], client: KubeClient, emit: Emit,
                   settings: TeardownSettings, known_key: str | None = None) -> None:
    """`known_key`: the admin key the operator last read, used when the Secret is gone (a
    namespace being deleted takes a user's Secret with it)."""
    owner = owner_of(body)
    spec = parse_spec(body.get("spec") or {})
    prev: Mapping[str, Any] = body.get("status") or {}
    annotations = body["metadata"].get("annotations") or {}
    url = botapi.endpoint_for(owner.name, owner.namespace, annotations,
                              settings.endpoint_template, settings.allow_endpoint_annotation)
    dash = await client.secret_data(owner.namespace,
                                    manifests.dashboard_secret_name(owner, spec))
    bot = botapi.BotClient(url, (dash or {}).get("DASHBOARD_ADMIN_KEY") or known_key)
    try:
        await bot.pause(PAUSE_REASON)
    except botapi.BotUnreachable as exc:
        if spec.on_delete == "closePositions" and _real_money(prev):
            ending = await holds.namespace_terminating(client, owner.namespace)
            raise Held("BotUnreachable",
                       f"cannot reach the bot to close its positions ({exc}); "
                       f"{unreachable_hint(owner.name, spec.suspended, ending)}") from exc
        emit("Normal", "BotUnreachable", unreachable_note(prev, spec.on_delete, str(exc)))
        return
    if spec.on_delete == "leaveOpen":
        emit("Normal", "PositionsLeftOpen",
             "bot paused; spec.onDelete is leaveOpen: its open positions (if any) are left "
             "open, on the exchange or in the simulation; deleting")
        return
    await bot.close_all()
    deadline = time.monotonic() + settings.flat_wait_seconds
    open_positions = await bot.open_positions()
    while open_positions > 0 and time.monotonic() < deadline:
        await asyncio.sleep(settings.poll_seconds)
        open_positions = await bot.open_positions()
    if open_positions > 0:
        raise Held("PositionsNotClosed",
                   f"{open_positions} position(s) still open after "
                   f"{settings.flat_wait_seconds:.0f}s of close_all; close them by hand or "
                   "set spec.onDelete: leaveOpen")
    emit("Normal", "PositionsClosed", "bot paused and flat; deleting its children")


def held_children(body: Mapping[str, Any]) -> list[holds.Ref]:
    """Every child the bot may hold for its teardown: the ones status.teardownHolds records
    and the ones it would hold now (a hold added just before a crash is not yet recorded)."""
    owner = owner_of(body)
    spec = parse_spec(body.get("spec") or {})
    recorded = [holds.Ref.parse(text)
                for text in (body.get("status") or {}).get("teardownHolds") or []]
    return [*(ref for ref in recorded if ref is not None),
            holds.Ref("apps/v1", "Deployment", owner.name),
            holds.Ref("v1", "Secret", manifests.dashboard_secret_name(owner, spec))]


async def release_holds(body: Mapping[str, Any], client: KubeClient) -> None:
    """The teardown is done: the children may go (idempotent)."""
    owner = owner_of(body)
    await holds.release(client, owner.namespace, owner.name, held_children(body))
