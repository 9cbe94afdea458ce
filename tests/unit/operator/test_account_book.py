"""The account book: recorded claims (kopf's index) joined with this process's decisions."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from novapulse_operator.account_book import AccountBook, Guarded, index_entries
from novapulse_operator.accounts import ACCOUNT_IN_USE, account_hash
from novapulse_operator.livegate import GateResult
from novapulse_operator.spec import Mode

ACCOUNT = account_hash("Qm7Zt2Lx9Rv4Kp1Ws8Nc3Bf6Hj0Dg5AyQm7Zt2Lx9Rv4Kp1Ws8Nc3Bf6")
OPEN = GateResult(True, (), "PrerequisitesMet")
CANARY_FIRST = GateResult(False, ("canary first: 60s of canary left before live",),
                          "CanaryRequired")


def bot(name: str, created: str, status: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"metadata": {"namespace": "ns", "name": name, "uid": f"uid-{name}",
                         "creationTimestamp": created},
            "status": status or {}}


A = bot("a", "2026-01-01T00:00:00Z")
B = bot("b", "2026-01-02T00:00:00Z")
C = bot("c", "2026-01-03T00:00:00Z")


def index_of(*bodies: dict[str, Any]) -> dict[Any, list[Any]]:
    """What kopf's index holds for these objects."""
    index: dict[Any, list[Any]] = defaultdict(list)
    for body in bodies:
        for key, value in index_entries(body).items():
            index[key].append(value)
    return dict(index)


def book_of(*bodies: dict[str, Any]) -> AccountBook:
    book = AccountBook()
    book.observe(index_of(*bodies))
    return book


def live(book: AccountBook, body: dict[str, Any], gate: GateResult = OPEN,
         effective: Mode | None = "live", requested: Mode = "live") -> Guarded:
    return book.guard(body, ACCOUNT, requested, gate, effective)


def test_two_new_bots_reconciled_before_either_status_is_written_get_one_pod() -> None:
    book = book_of(A, B)  # both exist, neither status records anything yet
    second, first = live(book, B), live(book, A)
    assert (second.effective, second.gate.met) == ("live", True)  # decided first: runs
    assert (first.effective, first.gate.reason) == (None, ACCOUNT_IN_USE)
    assert "in use by TradingBot ns/b" in first.gate.message
    assert first.account == second.account == ACCOUNT


def test_a_running_bot_recorded_in_its_status_keeps_the_account_after_a_restart() -> None:
    running_b = {**B, "status": {"effectiveMode": "live", "exchangeAccount": ACCOUNT}}
    book = book_of(A, running_b)  # a fresh operator: only the statuses are known
    refused = live(book, A)
    assert refused.effective is None and "ns/b" in refused.gate.message
    assert live(book, running_b).effective == "live"


def test_the_refused_bot_keeps_paper_but_never_canary() -> None:
    running_a = {**A, "status": {"effectiveMode": "live", "exchangeAccount": ACCOUNT}}
    paper_b = {**B, "status": {"effectiveMode": "paper"}}
    canary_b = {**B, "status": {"effectiveMode": "canary", "exchangeAccount": ACCOUNT}}
    assert live(book_of(running_a, paper_b), paper_b).effective == "paper"
    # b runs canary on the account, but a (older) runs too: b's canary trades on it as well
    assert live(book_of(running_a, canary_b), canary_b, gate=CANARY_FIRST,
                effective="canary").effective is None


def test_other_problems_stay_in_the_message_after_the_account() -> None:
    running_a = {**A, "status": {"effectiveMode": "live", "exchangeAccount": ACCOUNT}}
    canary_b = {**B, "status": {"effectiveMode": "canary", "exchangeAccount": ACCOUNT}}
    result = live(book_of(running_a, canary_b), canary_b, gate=CANARY_FIRST, effective="canary")
    assert result.gate.problems[1:] == CANARY_FIRST.problems


def test_when_the_runner_switches_to_paper_the_first_waiter_gets_the_account() -> None:
    book = book_of(A, B, C)
    assert live(book, A).effective == "live"
    assert live(book, C).effective is None  # waits
    assert live(book, B).effective is None  # waits, and comes before c
    assert book.guard(A, ACCOUNT, "paper", OPEN, "paper").account is None
    assert live(book, C).effective is None  # b was created first
    assert live(book, B).effective == "live"
    assert "in use by TradingBot ns/b" in live(book, C).gate.message


def test_a_deleted_bot_frees_the_account() -> None:
    book = book_of(A, B)
    assert live(book, A).effective == "live"
    assert live(book, B).effective is None
    book.forget("uid-a")
    assert live(book, B).effective == "live"


def test_a_bot_gone_without_forget_frees_the_account_once_the_index_drops_it() -> None:
    book = book_of(A, B)
    assert live(book, A).effective == "live"
    book.observe(index_of(B))  # a's finalizer removed by hand: no delete handler ran
    assert live(book, B).effective == "live"


def test_a_bot_held_back_by_the_gate_claims_nothing() -> None:
    book = book_of(A, B)
    held = live(book, A, gate=GateResult(False, ("Secret dash not found",), "SecretsIncomplete"),
                effective=None)
    assert (held.effective, held.gate.reason, held.account) == (None, "SecretsIncomplete",
                                                                ACCOUNT)
    assert live(book, B).effective == "live"


def test_a_key_moved_to_another_account_releases_the_first() -> None:
    book = book_of(A, B)
    assert live(book, A).effective == "live"
    other = account_hash("Zx8Wc7Vb6Nm5Lk4Jh3Gf2Ds1Aq0Pw9Oe8Zx8Wc7Vb6Nm5Lk4Jh3Gf2D")
    assert book.guard(A, other, "live", OPEN, "live").effective == "live"
    assert live(book, B).effective == "live"


def test_without_a_key_a_running_pod_keeps_its_recorded_account() -> None:
    canary_a = {**A, "status": {"effectiveMode": "canary", "exchangeAccount": ACCOUNT}}
    result = book_of(canary_a).guard(canary_a, None, "live",
                                     GateResult(False, ("x",), "SecretsIncomplete"), "canary")
    assert result.account == ACCOUNT
    assert book_of(A).guard(A, None, "live", GateResult(False, ("x",), "SecretsIncomplete"),
                            None).account is None
