"""One bot per exchange account: the pure decision, the hash, and the claim a status records."""

from __future__ import annotations

from typing import Any

import pytest

from novapulse_operator.accounts import (
    ACCOUNT_IN_USE,
    Claim,
    account_hash,
    account_of,
    claim_of,
    decide,
)

KEY = "Qm7Zt2Lx9Rv4Kp1Ws8Nc3Bf6Hj0Dg5AyQm7Zt2Lx9Rv4Kp1Ws8Nc3Bf6"
ACCOUNT = account_hash(KEY)
OTHER = account_hash("Zx8Wc7Vb6Nm5Lk4Jh3Gf2Ds1Aq0Pw9Oe8Zx8Wc7Vb6Nm5Lk4Jh3Gf2D")
EARLY, MID, LATE = "2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z", "2026-01-03T00:00:00Z"


def claim(ref: str, created: str, running: bool, account: str = ACCOUNT) -> Claim:
    namespace, name = ref.split("/")
    return Claim(namespace=namespace, name=name, uid=f"uid-{ref}", created=created,
                 account=account, running=running)


ME_WAITING = claim("ns/me", MID, running=False)
ME_RUNNING = claim("ns/me", MID, running=True)

# (case, me, others, allowed, the bot named as first)
CASES: list[tuple[str, Claim, list[Claim], bool, str | None]] = [
    ("alone", ME_WAITING, [], True, None),
    ("others on another account", ME_WAITING,
     [claim("ns/a", EARLY, True, OTHER), claim("ns/b", EARLY, False, OTHER)], True, None),
    ("an older bot runs on it", ME_WAITING, [claim("ns/a", EARLY, True)], False, "ns/a"),
    ("a younger bot runs on it: it keeps it", ME_WAITING, [claim("ns/z", LATE, True)],
     False, "ns/z"),
    ("an older bot waits for it too", ME_WAITING, [claim("ns/a", EARLY, False)], False, "ns/a"),
    ("only younger bots wait", ME_WAITING, [claim("ns/z", LATE, False)], True, None),
    ("same second: namespace/name decides", ME_WAITING, [claim("ns/a", MID, False)],
     False, "ns/a"),
    ("same second, I come first by name", claim("ns/a", MID, False),
     [claim("ns/me", MID, False)], True, None),
    ("same second, namespace before name", claim("b/a", MID, False),
     [claim("a/z", MID, False)], False, "a/z"),
    ("a runner is named before an older waiter", ME_WAITING,
     [claim("ns/a", EARLY, False), claim("ns/z", LATE, True)], False, "ns/z"),
    ("I run, an older bot only waits: I keep it", ME_RUNNING, [claim("ns/a", EARLY, False)],
     True, None),
    ("I run, a younger bot runs too: I keep it", ME_RUNNING, [claim("ns/z", LATE, True)],
     True, None),
    ("I run, an older bot runs too: it keeps it", ME_RUNNING, [claim("ns/a", EARLY, True)],
     False, "ns/a"),
    ("my own recorded claim is no rival", ME_WAITING, [ME_RUNNING], True, None),
    ("an unreadable timestamp comes last", ME_WAITING, [claim("ns/a", "garbage", False)],
     True, None),
]


@pytest.mark.parametrize(("me", "others", "allowed", "first"),
                         [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_decide(me: Claim, others: list[Claim], allowed: bool, first: str | None) -> None:
    decision = decide(me, others)
    assert decision.allowed is allowed
    assert (decision.first.ref if decision.first else None) == first


def test_decision_does_not_depend_on_the_order_of_the_claims() -> None:
    others = [claim("ns/c", LATE, False), claim("ns/a", EARLY, False), claim("ns/b", MID, False)]
    assert decide(claim("ns/d", LATE, False), others).first == claim("ns/a", EARLY, False)
    assert decide(claim("ns/d", LATE, False), others[::-1]).first == claim("ns/a", EARLY, False)


def test_the_refusal_names_the_other_bot() -> None:
    running = decide(ME_WAITING, [claim("team-a/eth", EARLY, True)])
    assert "in use by TradingBot team-a/eth" in running.message
    waiting = decide(ME_WAITING, [claim("team-a/eth", EARLY, False)])
    assert "wanted first by TradingBot team-a/eth" in waiting.message


def test_the_hash_is_stable_one_way_and_ignores_blanks() -> None:
    assert account_hash(KEY) == account_hash(f" {KEY}\n") == ACCOUNT
    assert ACCOUNT != OTHER
    assert ACCOUNT.startswith("hmac-sha256:") and len(ACCOUNT) == len("hmac-sha256:") + 32
    assert KEY not in ACCOUNT


@pytest.mark.parametrize(("data", "expected"), [
    ({"KRAKEN_API_KEY": KEY, "KRAKEN_API_SECRET": "s"}, ACCOUNT),
    ({"KRAKEN_API_SECRET": "s"}, None),
    ({"KRAKEN_API_KEY": "  "}, None),
    (None, None),
])
def test_account_of_a_secret(data: dict[str, str] | None, expected: str | None) -> None:
    assert account_of(data) == expected


def body(effective: str | None, account: str | None = ACCOUNT,
         gate_reason: str = "PrerequisitesMet", gate_status: str = "True") -> dict[str, Any]:
    status: dict[str, Any] = {
        "effectiveMode": effective,
        "conditions": [{"type": "LivePrerequisitesMet", "status": gate_status,
                        "reason": gate_reason}],
    }
    if account is not None:
        status["exchangeAccount"] = account
    return {"metadata": {"namespace": "ns", "name": "a", "uid": "u1",
                         "creationTimestamp": EARLY},
            "status": status}


@pytest.mark.parametrize(("obj", "running"), [
    (body("live"), True),
    (body("canary"), True),
    (body(None, gate_reason=ACCOUNT_IN_USE, gate_status="False"), False),
    (body("paper", gate_reason=ACCOUNT_IN_USE, gate_status="False"), False),
])
def test_claims_a_status_records(obj: dict[str, Any], running: bool) -> None:
    assert claim_of(obj) == Claim("ns", "a", "u1", EARLY, ACCOUNT, running)


@pytest.mark.parametrize("obj", [
    body("paper"),  # paper trades on no account
    body("live", account=None),  # nothing recorded (e.g. before this operator version)
    body(None, gate_reason="SecretsIncomplete", gate_status="False"),  # held back otherwise
    {"metadata": {"name": "a"}},
])
def test_no_claim(obj: dict[str, Any]) -> None:
    assert claim_of(obj) is None
