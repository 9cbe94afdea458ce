"""One bot per exchange account (pure): which canary/live TradingBot may trade on a Kraken key.

Two bots on one account place double orders, so of the TradingBots whose credentials Secret
holds the same API key only one may run canary or live. Each bot records the account it
uses in its own status (`status.exchangeAccount`, a keyed hash of the API key), so deciding
reads no other bot's Secret: a bot's claim is what its status says (see `claim_of`).

The rule, deterministic whatever order the reconciles run in:

- a bot already running canary/live on the account keeps it; of two such bots (e.g. both
  started before this rule existed) the first by creationTimestamp, then namespace/name;
- a bot that wants the account gets it only when nobody runs on it and no bot that also
  waits for it comes first (creationTimestamp, then namespace/name).

A running bot is never displaced by an older one that asks later: the two pods would overlap
while one stops and the other starts.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

ACCOUNT_IN_USE = "ExchangeAccountInUse"
GUARDED_MODES = ("canary", "live")
# A fixed, published key: it separates this hash from any plain hash of the API key (and from
# the bot's lock identity), so equal values mean one account only to this operator. Secrecy
# of the API key rests on its own entropy (Kraken keys are 56 random characters).
_HASH_KEY = b"novapulse.io/exchange-account/v1"
_HASH_PREFIX = "hmac-sha256:"
_HASH_HEX_DIGITS = 32
_LATEST = datetime.max.replace(tzinfo=UTC)


def account_hash(api_key: str) -> str:
    """The value `status.exchangeAccount` shows for an API key: one-way, safe to show."""
    digest = hmac.new(_HASH_KEY, api_key.strip().encode("utf-8"), hashlib.sha256).hexdigest()
    return _HASH_PREFIX + digest[:_HASH_HEX_DIGITS]


def account_of(exchange_secret: Mapping[str, str] | None) -> str | None:
    """The account of a credentials Secret's data, or None when it holds no API key."""
    api_key = (exchange_secret or {}).get("KRAKEN_API_KEY", "")
    return account_hash(api_key) if api_key.strip() else None


def _parse_created(text: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return _LATEST  # unreadable: last in line, never ahead of a bot with a real timestamp
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


@dataclass(frozen=True)
class Claim:
    """One TradingBot's use of an exchange account: running on it, or waiting for it."""

    namespace: str
    name: str
    uid: str
    created: str  # metadata.creationTimestamp
    account: str
    running: bool

    @property
    def ref(self) -> str:
        return f"{self.namespace}/{self.name}"

    @property
    def order(self) -> tuple[datetime, str, str]:
        return _parse_created(self.created), self.namespace, self.name


@dataclass(frozen=True)
class AccountDecision:
    allowed: bool
    first: Claim | None = None  # the bot that keeps (or comes first for) the account

    @property
    def message(self) -> str:
        if self.first is None:
            return "no other canary/live TradingBot uses this exchange account"
        if self.first.running:
            return (f"exchange account in use by TradingBot {self.first.ref}: one bot per "
                    "exchange account (two would place double orders); this one starts when "
                    "that one is deleted or switched to paper")
        return (f"exchange account wanted first by TradingBot {self.first.ref}, which waits "
                "for it too: one bot per exchange account (two would place double orders)")


def decide(me: Claim, others: Iterable[Claim]) -> AccountDecision:
    """May `me` run canary/live on `me.account`, given the other bots' claims?"""
    rivals = [c for c in others if c.account == me.account and c.uid != me.uid]
    running = [c for c in rivals if c.running]
    if me.running:
        ahead = [c for c in running if c.order < me.order]
    else:
        ahead = running or [c for c in rivals if c.order < me.order]
    if not ahead:
        return AccountDecision(True)
    return AccountDecision(False, min(ahead, key=lambda c: c.order))


def _refused_for_account(status: Mapping[str, Any]) -> bool:
    for cond in status.get("conditions") or ():
        if cond.get("type") == "LivePrerequisitesMet":
            return bool(cond.get("status") == "False" and cond.get("reason") == ACCOUNT_IN_USE)
    return False


def claim_of(body: Mapping[str, Any]) -> Claim | None:
    """The claim a TradingBot's status records: running canary/live on its account, or
    refused for it (so waiting); None when it holds no account."""
    meta: Mapping[str, Any] = body.get("metadata") or {}
    status: Mapping[str, Any] = body.get("status") or {}
    account = status.get("exchangeAccount")
    if not isinstance(account, str) or not account:
        return None
    running = status.get("effectiveMode") in GUARDED_MODES
    if not running and not _refused_for_account(status):
        return None
    return Claim(namespace=str(meta.get("namespace") or ""), name=str(meta.get("name") or ""),
                 uid=str(meta.get("uid") or ""),
                 created=str(meta.get("creationTimestamp") or ""), account=account,
                 running=running)
