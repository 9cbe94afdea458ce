"""The few Telegram Bot API methods the bot uses, over HTTP (aiohttp).

The token is part of every URL (`<base>/bot<token>/<method>`), so no URL is ever logged or
put in an error: every message that leaves this module has the token scrubbed out.
"""

from __future__ import annotations

import enum
from typing import Any

import aiohttp


class TelegramProblem(enum.StrEnum):
    UNAUTHORIZED = "unauthorized"  # 401: a wrong or revoked token
    CONFLICT = "conflict"  # 409: another poller or a webhook on this token
    RATE_LIMITED = "rate_limited"  # 429
    REFUSED = "refused"  # 400/403: e.g. a chat that blocked the bot
    UNREACHABLE = "unreachable"
    TIMEOUT = "timeout"
    SERVER = "server"  # 5xx or not the Bot API


class TelegramError(Exception):
    def __init__(self, problem: TelegramProblem, message: str,
                 retry_after: float | None = None) -> None:
        super().__init__(message)
        self.problem = problem
        self.retry_after = retry_after


class TelegramApi:
    def __init__(self, base_url: str, token: str, request_timeout_s: float) -> None:
        self.base_url = base_url.rstrip("/")
        self._token = token
        self._timeout_s = request_timeout_s
        self._session: aiohttp.ClientSession | None = None

    def scrub(self, text: str) -> str:
        return text.replace(self._token, "<token>") if self._token else text

    async def close(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    async def call(self, method: str, payload: dict[str, Any],
                   extra_timeout_s: float = 0.0) -> Any:
        """One Bot API call; its `result`, or TelegramError with a scrubbed message."""
        if self._session is None:
            self._session = aiohttp.ClientSession()
        url = f"{self.base_url}/bot{self._token}/{method}"
        timeout = aiohttp.ClientTimeout(total=self._timeout_s + extra_timeout_s)
        try:
            async with self._session.post(url, json=payload, timeout=timeout) as response:
                status = response.status
                try:
                    body = await response.json(content_type=None)
                except (ValueError, aiohttp.ContentTypeError):
                    body = None
        except TimeoutError as exc:
            raise TelegramError(TelegramProblem.TIMEOUT, f"the Bot API at {self.base_url} did "
                                f"not answer {method} within {timeout.total:g}s") from exc
        except aiohttp.ClientError as exc:
            raise TelegramError(TelegramProblem.UNREACHABLE, self.scrub(
                f"cannot reach the Bot API at {self.base_url}: {type(exc).__name__}: {exc}"),
            ) from None
        if not isinstance(body, dict):
            raise TelegramError(TelegramProblem.SERVER, f"{self.base_url} answered {method} with "
                                f"HTTP {status} and no Bot API reply (telegram.api_base_url?)")
        if body.get("ok") is True:
            return body.get("result")
        raise _api_error(status, body, method, self.scrub)

    async def get_updates(self, offset: int | None, timeout_s: int) -> list[dict[str, Any]]:
        payload: dict[str, Any] = {"timeout": timeout_s, "allowed_updates": ["message"]}
        if offset is not None:
            payload["offset"] = offset
        result = await self.call("getUpdates", payload, extra_timeout_s=timeout_s)
        return [u for u in result if isinstance(u, dict)] if isinstance(result, list) else []

    async def send_message(self, chat_id: int, text: str) -> None:
        await self.call("sendMessage", {"chat_id": chat_id, "text": text[:4000],
                                        "disable_web_page_preview": True})


def _api_error(status: int, body: dict[str, Any], method: str, scrub: Any) -> TelegramError:
    code = body.get("error_code", status)
    description = scrub(str(body.get("description", "")))[:300]
    if code == 401:
        return TelegramError(TelegramProblem.UNAUTHORIZED, "the Bot API refused the token (401 "
                             f"{description}) — check TELEGRAM_BOT_TOKEN")
    if code == 409:
        return TelegramError(TelegramProblem.CONFLICT, f"{method}: 409 {description} — another "
                             "bot process or a webhook uses this token")
    if code == 429:
        params = body.get("parameters")
        retry = params.get("retry_after") if isinstance(params, dict) else None
        return TelegramError(TelegramProblem.RATE_LIMITED, f"{method}: rate limited (429)",
                             float(retry) if isinstance(retry, int | float) else None)
    if isinstance(code, int) and 400 <= code < 500:
        return TelegramError(TelegramProblem.REFUSED, f"{method}: {code} {description}")
    return TelegramError(TelegramProblem.SERVER, f"{method}: {code} {description}")


__all__ = ["TelegramApi", "TelegramError", "TelegramProblem"]
