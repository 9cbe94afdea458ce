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

from novapulse_operator import botapi, manifests
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
    return prev.get("effectiveMode") in ("canary", "live")


async def teardown(body: Mapping[str, Any], client: KubeClient, emit: Emit,
                   settings: TeardownSettings) -> None:
    owner = owner_of(body)
    spec = parse_spec(body.get("spec") or {})
    prev: Mapping[str, Any] = body.get("status") or {}
    annotations = body["metadata"].get("annotations") or {}
    url = botapi.endpoint_for(owner.name, owner.namespace, annotations,
                              settings.endpoint_template, settings.allow_endpoint_annotation)
    dash = await client.secret_data(owner.namespace,
                                    manifests.dashboard_secret_name(owner, spec))
    bot = botapi.BotClient(url, (dash or {}).get("DASHBOARD_ADMIN_KEY"))
    try:
        await bot.pause(PAUSE_REASON)
    except botapi.BotUnreachable as exc:
        if spec.on_delete == "closePositions" and _real_money(prev):
            raise Held("BotUnreachable",
                       f"cannot reach the bot to close its positions ({exc}); resume it "
                       "(spec.suspended: false) or set spec.onDelete: leaveOpen") from exc
        emit("Normal", "BotUnreachable",
             f"the bot did not answer ({exc}); no {prev.get('effectiveMode') or 'running'} "
             "positions to close, deleting")
        return
    if spec.on_delete == "leaveOpen":
        emit("Normal", "PositionsLeftOpen",
             "bot paused; spec.onDelete is leaveOpen, positions are left open")
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
