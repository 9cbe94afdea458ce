"""status.bot and the bot-side conditions, from /api/v1/status as the bot answers it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from novapulse_operator import botview, podview, rendering
from novapulse_operator.botview import BotView
from novapulse_operator.manifests import Owner, Remedies, deployment
from novapulse_operator.spec import parse_spec

STATUS: dict[str, Any] = {
    "mode": "paper", "paused": True, "paused_by": "manual", "pause_reason": "checking",
    "pauses": [{"by": "manual", "reason": "checking", "since": 1.0},
               {"by": "operator", "reason": "feed", "since": 2.0}],
    "ws_connected": False, "feed": {"ETH/BTC": 12.4, "XBT/BTC": None}, "open_positions": 2,
    "equity": 1.01, "daily_pnl": -0.002, "error_trades": 1,
    "error_trade_list": [{"trade_id": "T-9", "pair": "ETH/BTC", "quantity": 0.5,
                          "last_error": "EOrder:Insufficient funds"}],
    "strategies_disabled": ["momentum"], "analytics_ok": None, "ml_ok": False,
    "ml_detail": "model file missing", "analytics_detail": "disabled", "exchange": None,
}


def test_mirror_fills_the_printer_columns() -> None:
    bot = botview.mirror(BotView(True, STATUS), "2026-01-01T00:00:00Z")
    assert bot is not None
    assert (bot["paused"], bot["pausedBy"], bot["openPositions"], bot["dailyPnl"]) == (
        True, "manual", 2, -0.002)
    assert bot["pausedByAll"] == ["manual", "operator"]
    assert bot["feedAgeSeconds"] == 12 and bot["errorTradeIds"] == ["T-9"]
    assert bot["strategiesDisabled"] == ["momentum"] and bot["mlOk"] is False
    assert botview.mirror(BotView(False, None, "refused"), "x") is None


def test_conditions_say_what_is_true() -> None:
    conds = botview.conditions(BotView(True, STATUS), running=True)
    assert conds[botview.FEED_HEALTHY][:2] == (False, "Disconnected")
    assert conds[botview.TRADING_ACTIVE][:2] == (False, "PausedManually")
    assert "manual, operator" in conds[botview.TRADING_ACTIVE][2]
    manual = conds[botview.MANUAL_INTERVENTION]
    assert manual[:2] == (True, "ErrorTrades")
    assert "T-9 (ETH/BTC, qty 0.5, last error: EOrder:Insufficient funds)" in manual[2]
    assert conds[botview.ANALYTICS_AVAILABLE][:2] == (False, "SoftDependencyFailing")
    flat = {**STATUS, "error_trades": 0, "error_trade_list": [], "paused": False, "pauses": [],
            "ws_connected": True}
    conds = botview.conditions(BotView(True, flat), running=True)
    assert conds[botview.MANUAL_INTERVENTION][0] is False
    assert conds[botview.TRADING_ACTIVE][0] is True and conds[botview.FEED_HEALTHY][0] is True
    unreachable = botview.conditions(BotView(False, None, "connection refused"), running=True)
    assert unreachable[botview.FEED_HEALTHY][:2] == (None, "BotUnreachable")
    assert "connection refused" in unreachable[botview.FEED_HEALTHY][2]


def test_a_starting_bot_that_does_not_answer_is_starting_whatever_the_error() -> None:
    refused = botview.conditions(BotView(False, None, "connection refused"), True, True)
    not_polled = botview.conditions(BotView(False, None, "not polled"), True, True)
    assert refused == not_polled  # one status write for a new bot, not one per poll error
    assert refused[botview.FEED_HEALTHY][:2] == (None, "BotStarting")
    answered = botview.conditions(BotView(True, STATUS), True, True)
    assert answered[botview.FEED_HEALTHY][:2] == (False, "Disconnected")  # it answered


def _pod(**kw: Any) -> podview.PodView:
    base: dict[str, Any] = {"name": "p", "uid": "u", "phase": "Pending", "deleting": False,
                            "restart_count": 0, "running": False, "waiting_reason": None,
                            "last": None, "created": "", "ready": False}
    return podview.PodView(**{**base, **kw})


def test_first_start_is_a_pod_that_never_failed_and_is_not_ready_yet() -> None:
    crashed = podview.Termination("Error", 1, "", "")
    assert podview.first_start(None)
    assert podview.first_start(_pod())
    assert podview.first_start(_pod(waiting_reason="ContainerCreating"))
    assert podview.first_start(_pod(running=True))  # its readiness probe not passed yet
    assert not podview.first_start(_pod(ready=True, running=True))
    assert not podview.first_start(_pod(restart_count=1))
    assert not podview.first_start(_pod(last=crashed))
    assert not podview.first_start(_pod(waiting_reason="CrashLoopBackOff"))
    assert not podview.first_start(_pod(waiting_reason="ImagePullBackOff"))
    assert not podview.first_start(_pod(deleting=True))


def test_only_significant_changes_count() -> None:
    a = botview.mirror(BotView(True, STATUS), "t1")
    b = botview.mirror(BotView(True, {**STATUS, "equity": 2.0, "feed": {"ETH/BTC": 99}}), "t2")
    assert botview.significant(a) == botview.significant(b)
    # Read back from the server, a null field is gone: still the same.
    running = botview.mirror(BotView(True, {**STATUS, "paused": False, "paused_by": None,
                                            "pause_reason": None, "pauses": []}), "t3")
    stored = {k: v for k, v in (running or {}).items() if v is not None}
    assert "pausedBy" in (running or {}) and "pausedBy" not in stored
    assert botview.significant(running) == botview.significant(stored)


def test_remedies_reach_the_pod() -> None:
    owner = Owner("bot1", "default", "uid")
    spec = parse_spec({"mode": "paper"})
    rendered = rendering.render(spec, "paper", "default/bot1")
    dep = deployment(owner, spec, rendered, "paper", Remedies("1536Mi", "bot1-old"))
    pod = dep["spec"]["template"]
    container = pod["spec"]["containers"][0]
    assert container["resources"]["limits"]["memory"] == "1536Mi"
    assert container["terminationMessagePolicy"] == "FallbackToLogsOnError"
    assert {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}} in \
        container["env"]
    assert pod["spec"]["initContainers"][0]["command"] == [
        "novapulse", "lock", "clear", "--if-stale", "--data-dir", "/data"]
    assert pod["metadata"]["annotations"]["novapulse.io/lock-cleared-for"] == "bot1-old"
    plain = deployment(owner, spec, rendered, "paper")
    assert "initContainers" not in plain["spec"]["template"]["spec"]


def test_reduced_retention_is_runbook_6() -> None:
    spec = parse_spec({"config": {"dashboard": {"thought_feed_max": 50}}})
    text = rendering.render(spec, "paper", "d/b",
                            {"monitoring.metrics_retention_hours": 24,
                             "dashboard.thought_feed_max": 100}).text
    assert "metrics_retention_hours: 24" in text
    assert "thought_feed_max: 50" in text  # never raised


def test_the_feed_went_down_when_the_bot_says_back_from_its_answer() -> None:
    answered = datetime(2026, 1, 1, 12, 0, 10, tzinfo=UTC)

    def since(status: dict[str, Any] | None) -> datetime | None:
        return BotView(True, status, answered_at=answered).feed_down_since

    assert since({"ws_connected": False, "ws_down_s": 2.5}) == answered - timedelta(seconds=2.5)
    assert since({"ws_connected": False, "ws_down_s": -1}) == answered  # never in the future
    assert since({"ws_connected": True, "ws_down_s": 0}) is None
    assert since({"ws_connected": False}) is None  # an older bot: the poll's time counts
    assert since({"ws_connected": False, "ws_down_s": None}) is None  # no feed
    assert since({"ws_connected": False, "ws_down_s": True}) is None
    assert since(None) is None
    assert BotView(True, {"ws_connected": False, "ws_down_s": 2}).feed_down_since is None
    # Connected: how long, by the bot's count; nothing while down.
    assert BotView(True, {"ws_connected": True, "ws_up_s": 4}, answered_at=answered
                   ).feed_up_since == answered - timedelta(seconds=4)
    assert BotView(True, {"ws_connected": False, "ws_up_s": 0}, answered_at=answered
                   ).feed_up_since is None
