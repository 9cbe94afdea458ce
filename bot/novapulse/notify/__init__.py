"""Notifications and remote control: Telegram over the Bot API (a soft dependency)."""

from novapulse.notify.telegram import TelegramBot, TelegramHealth, build_telegram

__all__ = ["TelegramBot", "TelegramHealth", "build_telegram"]
