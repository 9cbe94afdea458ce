"""Telegram commands against the real service (a runner without a store, like the API's unit
tests), command parsing, and which thoughts become notifications."""

from __future__ import annotations

import pytest

from novapulse.config import ConfigError, TelegramConfig, load_config
from novapulse.models import Thought
from novapulse.notify.commands import HELP, parse, run_command
from novapulse.notify.telegram import build_telegram, notification_text
from novapulse.risk import PausedBy
from novapulse.runner import BotRunner, FeedSpec


def runner() -> BotRunner:
    return BotRunner(load_config(None, environ={}), FeedSpec("kraken"))


def test_commands_are_parsed_with_or_without_the_bots_name() -> None:
    assert parse("/pause@NovaPulseBot checking the exchange") == ("pause", "checking the exchange")
    assert parse("  /STATUS ") == ("status", "")
    assert parse("hello") is None and parse("/") is None


async def test_pause_takes_the_manual_slot_and_resume_lifts_every_pause() -> None:
    bot = runner()
    engine = bot.engine
    engine.pause("feed down", PausedBy.OPERATOR, 0.0)
    reply = await run_command(bot.service, "pause", "checking the exchange")
    assert reply == "Trading PAUSED: checking the exchange (via Telegram)"
    holds = {h.by: h.reason for h in engine.risk.pauses.holds}
    assert holds[PausedBy.MANUAL] == "checking the exchange (via Telegram)"
    again = await run_command(bot.service, "pause", "")
    assert again.startswith("Already paused manually")
    assert await run_command(bot.service, "resume", "") == "Trading RESUMED."
    assert not engine.risk.pause.paused  # an admin's resume, like the API's
    assert await run_command(bot.service, "resume", "") == "Nothing to resume: not paused."


async def test_read_commands_answer_from_the_service() -> None:
    bot = runner()
    status = await run_command(bot.service, "status", "")
    assert "paper mode" in status and "trading: active" in status
    assert await run_command(bot.service, "positions", "") == "No open positions."
    assert "realized P&L" in await run_command(bot.service, "pnl", "")
    assert await run_command(bot.service, "trades", "") == "No trades yet."
    assert await run_command(bot.service, "help", "") == HELP
    assert (await run_command(bot.service, "sell_everything", "")).startswith("Unknown command")


def test_fills_pauses_errors_and_guardrails_notify_and_blocks_do_not() -> None:
    assert notification_text(Thought(0, "entry", "BUY ETH/BTC", "ETH/BTC")) == (
        "Fill ETH/BTC: BUY ETH/BTC")
    for kind in ("exit", "pause", "resume", "error", "order_failed", "guardrail"):
        assert notification_text(Thought(0, kind, "x")) is not None
    assert notification_text(Thought(0, "blocked", "Max positions reached", "ETH/BTC")) is None


def test_enabled_needs_a_chat_and_a_missing_token_is_shown_not_fatal() -> None:
    with pytest.raises(ConfigError, match="allowed_chat_ids"):
        load_config(None, environ={}, overrides={"telegram": {"enabled": True}})
    assert build_telegram(TelegramConfig(), {}, runner().service) is None
    bot = build_telegram(TelegramConfig(enabled=True, allowed_chat_ids=[1]), {},
                         runner().service)
    assert bot is not None
    health = bot.health()
    assert health.ok is False and "TELEGRAM_BOT_TOKEN is not set" in str(health.last_error)


def test_status_has_a_telegram_block_when_enabled() -> None:
    config = load_config(None, environ={}, overrides={
        "telegram": {"enabled": True, "allowed_chat_ids": [42]}})
    status = BotRunner(config, FeedSpec("kraken")).service.status()
    assert status["telegram"]["ok"] is False and status["telegram"]["outages"] == 0
