"""A bot's pods as the auto-pilot needs them (pure): restarts, waiting reasons, the last
termination (reason, exit code, message). Kept in an in-memory index fed by the Pod watch, so
reading them costs no API call."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from novapulse_operator.manifests import BOT_LABEL

BOT_CONTAINER = "bot"
EXIT_LOCK_HELD = 3  # `novapulse run`: another instance holds the lock


@dataclass(frozen=True)
class Termination:
    reason: str
    exit_code: int | None
    finished_at: str
    message: str


@dataclass(frozen=True)
class PodView:
    name: str
    uid: str
    phase: str
    deleting: bool
    restart_count: int
    running: bool
    waiting_reason: str | None
    last: Termination | None
    created: str
    ready: bool = False  # the pod's Ready condition

    @property
    def crash_looping(self) -> bool:
        return self.waiting_reason == "CrashLoopBackOff"


def _termination(state: Mapping[str, Any] | None) -> Termination | None:
    term = (state or {}).get("terminated")
    if not isinstance(term, Mapping):
        return None
    code = term.get("exitCode")
    return Termination(reason=str(term.get("reason") or ""),
                       exit_code=int(code) if isinstance(code, int) else None,
                       finished_at=str(term.get("finishedAt") or ""),
                       message=str(term.get("message") or "")[-2048:])


def pod_view(pod: Mapping[str, Any]) -> PodView:
    meta = pod.get("metadata") or {}
    status = pod.get("status") or {}
    container: Mapping[str, Any] = next(
        (c for c in status.get("containerStatuses") or () if c.get("name") == BOT_CONTAINER),
        {})
    state = container.get("state") or {}
    waiting = state.get("waiting") if isinstance(state.get("waiting"), Mapping) else None
    return PodView(
        name=str(meta.get("name") or ""),
        uid=str(meta.get("uid") or ""),
        phase=str(status.get("phase") or "Pending"),
        deleting=bool(meta.get("deletionTimestamp")),
        restart_count=int(container.get("restartCount") or 0),
        running="running" in state,
        waiting_reason=str(waiting.get("reason")) if waiting and waiting.get("reason") else None,
        # The current state when it is a termination, else the last one.
        last=_termination(state) or _termination(container.get("lastState")),
        created=str(meta.get("creationTimestamp") or ""),
        ready=any(c.get("type") == "Ready" and c.get("status") == "True"
                  for c in status.get("conditions") or ()),
    )


def index_key(pod: Mapping[str, Any]) -> tuple[str, str] | None:
    """(namespace, TradingBot name) of a bot pod, from its label; None for other pods."""
    meta = pod.get("metadata") or {}
    bot = (meta.get("labels") or {}).get(BOT_LABEL)
    return (str(meta.get("namespace")), str(bot)) if bot else None


def current(pods: list[PodView]) -> PodView | None:
    """The pod that counts: the newest one not being deleted."""
    live = [p for p in pods if not p.deleting]
    return max(live, key=lambda p: (p.created, p.name)) if live else None


STARTING_REASONS = (None, "ContainerCreating", "PodInitializing")


def first_start(pod: PodView | None) -> bool:
    """Whether the bot's pod is on its first start, not Ready yet: none yet, or one that has
    neither restarted nor crashed (a replacement pod starts from here too)."""
    return pod is None or (not pod.ready and pod.restart_count == 0 and pod.last is None
                           and pod.waiting_reason in STARTING_REASONS and not pod.deleting)
