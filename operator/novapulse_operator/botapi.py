"""A thin client of the bot's control API (contract: README, "Control API and dashboard").

`POST /api/v1/control/pause {reason}`, `POST /api/v1/control/close_all`,
`GET /api/v1/status` (→ `open_positions`), authenticated with `X-API-Key`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import aiohttp

ENDPOINT_ANNOTATION = "novapulse.io/bot-endpoint"
DEFAULT_ENDPOINT_TEMPLATE = "http://{name}.{namespace}.svc:8090"


class BotUnreachable(Exception):
    """The bot did not answer (no pod, network) or answered with an error (`http_status`)."""

    def __init__(self, message: str, http_status: int | None = None) -> None:
        super().__init__(message)
        self.http_status = http_status


def endpoint_for(name: str, namespace: str, annotations: Mapping[str, str],
                 template: str = DEFAULT_ENDPOINT_TEMPLATE,
                 allow_override: bool = False) -> str:
    """The bot's base URL: the Service, from `template`.

    The admin key goes wherever this points, and anyone who may patch a TradingBot may set
    its annotations: the annotation is honoured only when the operator was started with
    `--allow-bot-endpoint-annotation` (local runs and tests); otherwise it is ignored (see
    `ignored_override`, which the handlers turn into a Warning Event)."""
    override = annotations.get(ENDPOINT_ANNOTATION)
    if override and allow_override:
        return override.rstrip("/")
    return template.format(name=name, namespace=namespace).rstrip("/")


def ignored_override(annotations: Mapping[str, str], allow_override: bool) -> str | None:
    """The annotation's value when it is set but not honoured; else None."""
    override = annotations.get(ENDPOINT_ANNOTATION)
    return override if override and not allow_override else None


class BotClient:
    def __init__(self, base_url: str, admin_key: str | None, timeout: float = 5.0,
                 session: aiohttp.ClientSession | None = None) -> None:
        self._base = base_url
        self._headers = {"X-API-Key": admin_key} if admin_key else {}
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._shared = session  # the auto-pilot polls every bot through one session

    async def _call(self, method: str, path: str, body: Any = None,
                    headers: dict[str, str] | None = None) -> dict[str, Any]:
        try:
            if self._shared is not None:
                return await self._send(self._shared, method, path, body, headers)
            async with aiohttp.ClientSession(timeout=self._timeout) as session:
                return await self._send(session, method, path, body, headers)
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            raise BotUnreachable(f"{method} {path} failed: {type(exc).__name__}") from exc

    async def _send(self, session: aiohttp.ClientSession, method: str, path: str, body: Any,
                    headers: dict[str, str] | None) -> dict[str, Any]:
        async with session.request(method, self._base + path, json=body,
                                   headers={**self._headers, **(headers or {})},
                                   timeout=self._timeout) as resp:
            if resp.status >= 400:
                raise BotUnreachable(f"{method} {path} answered HTTP {resp.status}",
                                     resp.status)
            data = await resp.json(content_type=None)
            return data if isinstance(data, dict) else {}

    async def probe(self) -> tuple[bool, dict[str, Any] | None, str]:
        """(healthy, /api/v1/status or None, what went wrong) in one round: one request when
        the status carries the bot's liveness verdict (`healthy`, what /api/v1/health would
        answer), one more to /api/v1/health only when it does not (an older bot) or the
        status came back with an HTTP error (its main loop stuck: the health probe, answered
        off that loop, says why). Not reached at all: not healthy, no second try."""
        status: dict[str, Any] | None = None
        status_error = ""
        try:
            status = await self._call("GET", "/api/v1/status")
        except BotUnreachable as exc:
            if exc.http_status is None:
                return False, None, str(exc)  # no answer: the health probe gets none either
            status_error = str(exc)
        if status is not None and isinstance(status.get("healthy"), bool):
            said = bool(status["healthy"])
            why = "" if said else (f"GET /api/v1/status: not healthy "
                                   f"({status.get('health_detail') or 'no detail'})")
            return said, status, why
        try:
            await self._call("GET", "/api/v1/health")
        except BotUnreachable as exc:
            return False, status, str(exc)
        return True, status, status_error

    async def resume_own(self) -> bool:
        """Lift the operator's own pause only (X-Paused-By: operator); never anyone else's.
        False when the operator held none (the bot answers 409 when someone else does)."""
        try:
            result = await self._call("POST", "/api/v1/control/resume", {},
                                      {"X-Paused-By": "operator"})
        except BotUnreachable as exc:
            if "HTTP 409" in str(exc):
                return False
            raise
        return bool(result.get("changed"))

    async def pause(self, reason: str) -> None:
        # X-Paused-By: the bot records the operator as the one who paused (runbook 3).
        await self._call("POST", "/api/v1/control/pause", {"reason": reason},
                         {"X-Paused-By": "operator"})

    async def close_all(self) -> None:
        await self._call("POST", "/api/v1/control/close_all", {})

    async def open_positions(self) -> int:
        status = await self._call("GET", "/api/v1/status")
        return int(status.get("open_positions") or 0)
