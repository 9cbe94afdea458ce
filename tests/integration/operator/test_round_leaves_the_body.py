"""The reconcile and the auto-pilot's round leave the TradingBot they are given exactly as it
was. One that edited a nested structure in place (a condition list, the remediation record)
would edit what kopf holds wherever the body is not deep-copied first (the change handler and
the resync copy it; the teardown and the tests do not), and the status diff would then miss
the change."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from typing import Any

import kopf
from aiohttp import web

from novapulse_operator import botview, pilot, reconcile
from novapulse_operator.account_book import AccountBook
from novapulse_operator.kube import KubeClient
from support.local_http import serving

from .conftest import Cluster

SPEC = {"mode": "paper", "pairs": ["ETH/BTC"],
        "remediation": {"feed": {"pauseAfter": "5s", "restartAfter": "1h",
                                 "resumeAfterHealthy": "3s"}}}


def bot_says(connected: bool, seconds: float, at: datetime) -> botview.BotView:
    return botview.BotView(True, {
        "mode": "paper", "paused": False, "pause_reason": None, "paused_by": None,
        "pauses": [], "ws_connected": connected, "ws_down_s": 0 if connected else seconds,
        "ws_up_s": seconds if connected else 0, "feed": {"ETH/BTC": 1.0},
        "open_positions": 1, "equity": 1.0, "daily_pnl": 0.01, "error_trades": 1,
        "error_trade_list": [{"trade_id": "t-1", "pair": "ETH/BTC", "side": "long",
                              "reason": "exit retries exhausted"}],
        "strategies_disabled": ["rsi"], "analytics_ok": None, "ml_ok": None,
        "healthy": True, "health_detail": "ok"}, answered_at=at)


def with_status(body: dict[str, Any], status: dict[str, Any]) -> dict[str, Any]:
    return {**body, "status": {**(body.get("status") or {}), **status}}


async def control(request: web.Request) -> web.Response:
    """The bot's pause and resume, as the auto-pilot calls them."""
    return web.json_response({"changed": True, "paused": request.path.endswith("pause")})


async def test_reconcile_and_the_auto_pilot_leave_the_tradingbot_as_it_was(
        cluster: Cluster) -> None:
    app = web.Application()
    app.router.add_post("/api/v1/control/pause", control)
    app.router.add_post("/api/v1/control/resume", control)
    async with serving(app) as url:
        await cluster.create_bot("pure", SPEC, {"novapulse.io/bot-endpoint": url})
        await rounds(cluster)


async def rounds(cluster: Cluster) -> None:
    client = KubeClient(kopf.login_with_kubeconfig(settings=kopf.OperatorSettings()))
    autopilot = pilot.Pilot(pilot.PilotSettings(timeout=1.0, allow_endpoint_annotation=True))
    reasons: list[str] = []

    def emit(_type: str, reason: str, _message: str) -> None:
        reasons.append(reason)

    try:
        body = await cluster.bot("pure")
        assert body is not None
        given = copy.deepcopy(body)
        status = await reconcile.reconcile(body, client, emit, AccountBook())
        assert body == given, "the first reconcile edited the body it was given"
        body = with_status(body, status)

        now = datetime.now(UTC)
        for what, view, drift in (
                ("feed down long enough to pause", bot_says(False, 60, now), True),
                ("feed back", bot_says(True, 1, now + timedelta(seconds=1)), False),
                ("feed healthy past resumeAfterHealthy", bot_says(True, 5, now
                                                                  + timedelta(seconds=5)), True)):
            given = copy.deepcopy(body)
            new = await reconcile.reconcile(body, client, emit, AccountBook(),
                                            drift_check=drift)
            assert body == given, f"the reconcile ({what}) edited the body it was given"
            ticked = await autopilot.tick(with_status(body, new), client, emit, view,
                                          view.answered_at or now)
            assert body == given, f"the auto-pilot ({what}) edited the body it was given"
            body = with_status(body, {**new, **ticked.status})
        # The rounds did run the paths that build on the previous status.
        remediation = body["status"]["remediation"]
        assert [h["reason"] for h in remediation["history"]] == ["FeedDownPaused"]
        assert "FeedDownPaused" in reasons
        assert botview.MANUAL_INTERVENTION in {c["type"] for c in body["status"]["conditions"]}
    finally:
        await autopilot.close()
        await client.close()
