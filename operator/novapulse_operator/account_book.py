"""The exchange-account claims this operator knows, for `accounts.decide`.

Two sources: the claims TradingBot statuses record (a kopf index, kept current by the watch
the operator already has, so finding the bots on one account costs a dictionary lookup and
no API call), overlaid with the decisions this process made since. Statuses lag: two bots
created together are reconciled before either status is written, and without the overlay
both would see an unused account. The decision and its recording run with no await between
them, so reconciles of different bots never decide on the same stale view.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, replace
from typing import Any

from novapulse_operator.accounts import GUARDED_MODES, AccountDecision, Claim, claim_of, decide
from novapulse_operator.livegate import GateResult, effective_mode, refused_for_account
from novapulse_operator.spec import Mode

_BOT = "bot"
_ACCOUNT = "account"


ClaimIndex = Mapping[Any, Collection[Any]]  # kopf's index: key → the values of every object


def index_entries(body: Mapping[str, Any]) -> dict[tuple[str, str], Any]:
    """What kopf's index keeps of one TradingBot: that it exists, and its recorded claim."""
    uid = str((body.get("metadata") or {}).get("uid") or "")
    entries: dict[tuple[str, str], Any] = {(_BOT, uid): True}
    claim = claim_of(body)
    if claim is not None:
        entries[(_ACCOUNT, claim.account)] = claim
    return entries


@dataclass(frozen=True)
class Guarded:
    """The live gate and running mode once the exchange account is checked, and the account
    `status.exchangeAccount` records (None: none)."""

    gate: GateResult
    effective: Mode | None
    account: str | None


class AccountBook:
    def __init__(self) -> None:
        self._index: ClaimIndex = {}
        self._decided: dict[str, Claim | None] = {}  # uid → its latest decided claim
        self._by_account: dict[str, dict[str, Claim]] = {}

    def observe(self, index: ClaimIndex) -> None:
        """Read recorded claims from `index` (kopf passes the same live index every time)."""
        self._index = index

    def _exists(self, uid: str) -> bool:
        return (_BOT, uid) in self._index

    def claims_on(self, account: str) -> list[Claim]:
        """Every known claim on `account`: decided here if this process decided for the bot,
        else as its status records it. Bots that no longer exist are left out."""
        claims: dict[str, Claim] = {}
        key = (_ACCOUNT, account)
        for claim in self._index.get(key, ()):
            if isinstance(claim, Claim) and claim.uid not in self._decided:
                claims[claim.uid] = claim
        for uid, claim in self._by_account.get(account, {}).items():
            if self._exists(uid):
                claims[uid] = claim
        return list(claims.values())

    def was_running(self, uid: str, account: str, status_says: bool) -> bool:
        """Whether the bot runs canary/live on `account` now: this process's last decision
        if there was one, else its status (`status_says`)."""
        if uid in self._decided:
            claim = self._decided[uid]
            return claim is not None and claim.running and claim.account == account
        return status_says

    def decide(self, me: Claim) -> AccountDecision:
        return decide(me, self.claims_on(me.account))

    def record(self, uid: str, claim: Claim | None) -> None:
        """The bot's claim as just decided (None: it claims no account)."""
        previous = self._decided.get(uid)
        if previous is not None:
            bucket = self._by_account.get(previous.account, {})
            bucket.pop(uid, None)
            if not bucket:
                self._by_account.pop(previous.account, None)
        self._decided[uid] = claim
        if claim is not None:
            self._by_account.setdefault(claim.account, {})[uid] = claim

    def forget(self, uid: str) -> None:
        self.record(uid, None)
        del self._decided[uid]

    def guard(self, bot: Mapping[str, Any], account: str | None, requested: Mode,
              gate: GateResult, effective: Mode | None) -> Guarded:
        """Check and record one TradingBot's (`bot`: its body) use of the exchange account of
        its credentials Secret (`account`; None: no API key there). `gate` and `effective`
        are the live gate's verdict without the account. No await in here: see the module."""
        meta: Mapping[str, Any] = bot.get("metadata") or {}
        prev: Mapping[str, Any] = bot.get("status") or {}
        uid = str(meta.get("uid") or "")
        running: Mode | None = prev.get("effectiveMode")
        recorded = prev.get("exchangeAccount")
        if requested not in GUARDED_MODES:
            self.record(uid, None)
            return Guarded(gate, effective, None)
        if account is None:
            # No key in the Secret (the gate is closed); a pod still running canary/live keeps
            # the account it was started with, and its claim stays as it was.
            kept = recorded if effective in GUARDED_MODES and isinstance(recorded, str) else None
            return Guarded(gate, effective, kept)
        if effective not in GUARDED_MODES:  # held back by the gate: nothing runs on it
            self.record(uid, None)
            return Guarded(gate, effective, account)
        me = Claim(namespace=str(meta.get("namespace") or ""), name=str(meta.get("name") or ""),
                   uid=uid, created=str(meta.get("creationTimestamp") or ""), account=account,
                   running=self.was_running(uid, account, running in GUARDED_MODES
                                            and recorded == account))
        decision = self.decide(me)
        if decision.allowed:
            self.record(uid, replace(me, running=True))
            return Guarded(gate, effective, account)
        self.record(uid, replace(me, running=False))
        refused = refused_for_account(gate, decision.message)
        return Guarded(refused, effective_mode(requested, refused, running), account)
