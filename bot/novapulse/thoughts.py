"""The thought log: every decision and every block, with its reason.

A bounded ring buffer (`dashboard.thought_feed_max`) for the API, plus a list of entries not
yet written to the store, which the runner drains in batches."""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable

from novapulse.models import Thought

log = logging.getLogger("novapulse.thoughts")

ThoughtData = dict[str, float | str | int | bool | None]


class ThoughtLog:
    def __init__(self, maxlen: int, *, keep_unsaved: bool = True) -> None:
        self._recent: deque[Thought] = deque(maxlen=maxlen)
        self._unsaved: list[Thought] = []
        self._keep_unsaved = keep_unsaved
        self._listeners: list[Callable[[Thought], None]] = []
        # The process log says a pause once when it starts and once when it ends; the thought
        # log keeps every entry it blocked (runbook 3).
        self._pause_said = False
        self._blocked_while_paused = 0

    def add(
        self,
        ts: float,
        kind: str,
        message: str,
        pair: str | None = None,
        data: ThoughtData | None = None,
        *,
        level: int = logging.INFO,
    ) -> Thought:
        thought = Thought(ts, kind, message, pair, data or {})
        self._recent.append(thought)
        if self._keep_unsaved:
            self._unsaved.append(thought)
        if log.isEnabledFor(level):
            line = self._process_log_line(kind, message, thought.data)
            if line is not None:
                log.log(level, "%s%s", f"[{pair}] " if pair else "", line)
        for listener in self._listeners:
            listener(thought)
        return thought

    def _process_log_line(self, kind: str, message: str, data: ThoughtData) -> str | None:
        """The line for the process log, or None when it would only repeat a pause."""
        if kind == "pause":
            self._pause_said = True
        elif kind == "blocked" and data.get("gate") == "paused":
            self._blocked_while_paused += 1
            if self._pause_said:
                return None
            self._pause_said = True  # e.g. a pause restored at start: say it once
        elif kind == "resume":
            blocked, self._blocked_while_paused = self._blocked_while_paused, 0
            self._pause_said = bool(data.get("still_paused"))
            if blocked:
                return f"{message} ({blocked} entry signal{'s' * (blocked != 1)} blocked " \
                       "while paused)"
        return message

    def subscribe(self, listener: Callable[[Thought], None]) -> Callable[[], None]:
        """Call `listener` with every new thought; returns the function that unsubscribes."""
        self._listeners.append(listener)

        def unsubscribe() -> None:
            if listener in self._listeners:
                self._listeners.remove(listener)

        return unsubscribe

    def recent(self, limit: int | None = None) -> list[Thought]:
        items = list(self._recent)
        return items if limit is None else items[-limit:]

    def drain_unsaved(self) -> list[Thought]:
        batch, self._unsaved = self._unsaved, []
        return batch

    def __len__(self) -> int:
        return len(self._recent)
