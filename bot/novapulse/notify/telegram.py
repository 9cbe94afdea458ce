"""Telegram: commands by long polling, and notifications — neither ever in trading's way.

Only `telegram.allowed_chat_ids` may command; a message from any other chat gets no answer
and a log line. Notifications (fills, pauses, resumes, error trades, guardrail actions, the
operator's pauses and resumes) come from the thought log through a bounded queue — an O(1)
append in the decision loop — and go out at most `notify_max_per_minute`, to every allowed
chat. A Telegram outage is counted and shown in status; it never stops the bot.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from novapulse.config import TelegramConfig
from novapulse.models import Thought
from novapulse.notify.commands import Service, parse, run_command
from novapulse.notify.telegram_api import TelegramApi, TelegramError, TelegramProblem

log = logging.getLogger("novapulse.telegram")

TOKEN_ENV = "TELEGRAM_BOT_TOKEN"
# A command that waited longer than this (the bot was down) is not carried out: a /resume
# from an hour ago is not what anybody means now.
STALE_COMMAND_SECONDS = 300.0
NOTIFY_QUEUE_MAX = 200
NOTIFY_KINDS = {"entry": "Fill", "exit": "Fill", "pause": "Paused", "resume": "Resumed",
                "error": "ERROR", "order_failed": "Order failed", "guardrail": "Guardrail"}


@dataclass(frozen=True, slots=True)
class TelegramHealth:
    ok: bool | None  # None: no call answered or failed yet
    last_error: str | None
    outages: int
    commands: int
    refused: int
    notifications_sent: int
    notifications_dropped: int

    def as_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "last_error": self.last_error, "outages": self.outages,
                "commands": self.commands, "refused": self.refused,
                "notifications_sent": self.notifications_sent,
                "notifications_dropped": self.notifications_dropped}


def notification_text(thought: Thought) -> str | None:
    title = NOTIFY_KINDS.get(thought.kind)
    if title is None:
        return None
    pair = f" {thought.pair}" if thought.pair else ""
    return f"{title}{pair}: {thought.message}"


class TelegramBot:
    def __init__(self, config: TelegramConfig, token: str | None, service: Service,
                 clock: Callable[[], float] = time.time) -> None:
        self.config = config
        self.allowed = frozenset(config.allowed_chat_ids)
        self._service = service
        self._clock = clock
        self._api = TelegramApi(config.api_base_url, token or "", config.request_timeout_seconds)
        self._token_missing = not token
        self._queue: deque[str] = deque()
        self._wake = asyncio.Event()
        self._sent_at: deque[float] = deque()
        self._ok: bool | None = None
        self._last_error: str | None = (f"{TOKEN_ENV} is not set: Telegram is off"
                                        if self._token_missing else None)
        self.outages = 0
        self.commands = 0
        self.refused = 0
        self.sent = 0
        self.dropped = 0
        self._delay = config.retry_initial_seconds

    # --- from the decision loop: an append, never a wait ------------------------------------
    def on_thought(self, thought: Thought) -> None:
        if not self.config.notify:
            return
        text = notification_text(thought)
        if text is not None:
            self.notify(text)

    def notify(self, text: str) -> None:
        if len(self._queue) >= NOTIFY_QUEUE_MAX:
            self._queue.popleft()
            self.dropped += 1
        self._queue.append(text)
        self._wake.set()

    def health(self) -> TelegramHealth:
        ok = False if self._token_missing else self._ok
        return TelegramHealth(ok, self._last_error, self.outages, self.commands, self.refused,
                              self.sent, self.dropped)

    # --- outcome of each call ---------------------------------------------------------------
    def _failed(self, exc: TelegramError) -> None:
        if self._ok is not False:
            self.outages += 1
            log.error("telegram: %s; trading goes on, notifications are queued", exc)
        elif str(exc) != self._last_error:
            log.error("telegram: %s", exc)
        self._ok, self._last_error = False, str(exc)

    def _answered(self) -> None:
        if self._ok is False:
            log.info("telegram: the Bot API answers again (%d outage(s) so far)", self.outages)
        self._ok = True
        self._delay = self.config.retry_initial_seconds

    async def _back_off(self, exc: TelegramError) -> None:
        delay = exc.retry_after if exc.retry_after is not None else self._delay
        self._delay = min(self._delay * 2, self.config.retry_max_seconds)
        await asyncio.sleep(delay)

    # --- the background tasks -----------------------------------------------------------------
    async def run(self) -> None:
        if self._token_missing:
            log.error("telegram: telegram.enabled but %s is not set: no commands, no "
                      "notifications (trading is not affected)", TOKEN_ENV)
            return
        log.info("telegram: polling %s for %d allowed chat(s)", self._api.base_url,
                 len(self.allowed))
        try:
            await asyncio.gather(self._poll_forever(), self._notify_forever())
        finally:
            await self._api.close()

    async def _poll_forever(self) -> None:
        offset: int | None = None
        while True:
            try:
                updates = await self._api.get_updates(offset, self.config.poll_timeout_seconds)
            except TelegramError as exc:
                self._failed(exc)
                await self._back_off(exc)
                continue
            self._answered()
            for update in updates:
                update_id = update.get("update_id")
                if isinstance(update_id, int):
                    offset = update_id + 1
                await self._handle(update)

    async def _handle(self, update: Mapping[str, Any]) -> None:
        message = update.get("message")
        if not isinstance(message, dict):
            return
        chat = message.get("chat")
        chat_id = chat.get("id") if isinstance(chat, dict) else None
        command = parse(str(message.get("text") or ""))
        if chat_id not in self.allowed:
            self.refused += 1
            log.warning("telegram: ignored %s from chat %s: not in telegram.allowed_chat_ids",
                        f"/{command[0]}" if command else "a message", chat_id)
            return
        if command is None or not isinstance(chat_id, int):
            return
        sent = message.get("date")
        if isinstance(sent, int) and self._clock() - sent > STALE_COMMAND_SECONDS:
            reply = (f"Not carried out: /{command[0]} was sent {self._clock() - sent:.0f}s ago, "
                     "while the bot could not answer. Send it again if you still mean it.")
        else:
            self.commands += 1
            log.info("telegram: /%s from chat %s", command[0], chat_id)
            try:
                reply = await run_command(self._service, *command)
            except Exception as exc:  # a control surface must not die on one command
                log.exception("telegram: /%s failed", command[0])
                reply = f"/{command[0]} failed: {type(exc).__name__}: {exc}"
        try:
            await self._api.send_message(chat_id, reply)
        except TelegramError as exc:
            self._failed(exc)

    async def _notify_forever(self) -> None:
        while True:
            if not self._queue:
                self._wake.clear()
                await self._wake.wait()
                continue
            await self._within_rate()
            text = self._queue[0]
            try:
                for chat_id in sorted(self.allowed):
                    await self._api.send_message(chat_id, text)
            except TelegramError as exc:
                if exc.problem is TelegramProblem.REFUSED:  # this one will never go; not an
                    log.warning("telegram: notification not delivered: %s", exc)  # outage
                    self._drop_first()
                    continue
                self._failed(exc)
                await self._back_off(exc)
                continue
            self._answered()
            self._drop_first(sent=True)

    def _drop_first(self, sent: bool = False) -> None:
        with contextlib.suppress(IndexError):
            self._queue.popleft()
        if sent:
            self.sent += 1
            self._sent_at.append(time.monotonic())
        else:
            self.dropped += 1

    async def _within_rate(self) -> None:
        """At most `notify_max_per_minute` notifications in any minute; the queue's bound
        drops the oldest meanwhile."""
        window = self._sent_at
        while True:
            now = time.monotonic()
            while window and now - window[0] >= 60.0:
                window.popleft()
            if len(window) < self.config.notify_max_per_minute:
                return
            await asyncio.sleep(60.0 - (now - window[0]))


def build_telegram(config: TelegramConfig, environ: Mapping[str, str],
                   service: Service) -> TelegramBot | None:
    if not config.enabled:
        return None
    return TelegramBot(config, environ.get(TOKEN_ENV) or None, service)
