"""The live gate of runbook 11 (pure)."""

from __future__ import annotations

from datetime import UTC, datetime

import bcrypt
import pytest

from novapulse.secrets import is_bcrypt_hash
from novapulse_operator import database, livegate
from novapulse_operator.livegate import GateResult, effective_mode, evaluate, weakness
from novapulse_operator.spec import parse_spec

NOW = datetime(2026, 1, 1, tzinfo=UTC)
HASH = bcrypt.hashpw(b"pw", bcrypt.gensalt(4)).decode()
DASH = {"DASHBOARD_ADMIN_KEY": "k3Yq9vR2mX7pL0sT4wZ8bN6cF1hJ5dG",
        "DASHBOARD_SESSION_SECRET": "s8Fq2LmZ0xR7vT3kW9pB5nC1yH6jD4gA",
        "DASHBOARD_ADMIN_PASSWORD_HASH": HASH}
EXCHANGE = {"KRAKEN_API_KEY": "Qm7Zt2Lx9Rv4Kp1Ws8Nc3Bf6Hj0Dg5Ay",
            "KRAKEN_API_SECRET": "Xw4Pb9Lm2Zq7Rt1Kv6Nc3Hs8Fj0Dg5Ay+/w="}
LIVE = parse_spec({"mode": "live", "exchange": {"credentialsSecretRef": {"name": "kraken"}},
                   "dashboard": {"secretRef": {"name": "dash"}}})


def gate(spec=LIVE, exchange=EXCHANGE, dashboard=DASH, running=None, credit=None) -> GateResult:  # type: ignore[no-untyped-def]
    return evaluate(spec, exchange, dashboard, running_mode=running, canary_seconds=credit)


def test_everything_present_and_strong_opens_the_gate() -> None:
    result = gate()
    assert result.met and result.reason == "PrerequisitesMet"


def test_paper_needs_nothing() -> None:
    assert gate(parse_spec({}), None, None).met


def test_missing_secret_and_keys_are_named() -> None:
    result = gate(exchange=None, dashboard={"DASHBOARD_ADMIN_KEY": DASH["DASHBOARD_ADMIN_KEY"]})
    assert not result.met and result.reason == "SecretsIncomplete"
    assert result.problems == (
        "Secret kraken not found",
        "Secret dash lacks DASHBOARD_SESSION_SECRET, DASHBOARD_ADMIN_PASSWORD_HASH",
    )


def test_unset_refs_are_named() -> None:
    result = gate(parse_spec({"mode": "canary"}), None, None)
    assert result.problems == ("spec.exchange.credentialsSecretRef is not set",
                               "spec.dashboard.secretRef is not set")


@pytest.mark.parametrize(("key", "value", "problem"), [
    ("KRAKEN_API_KEY", "", "KRAKEN_API_KEY is empty"),
    ("KRAKEN_API_KEY", "   ", "KRAKEN_API_KEY is empty"),
    ("KRAKEN_API_KEY", "<exchange-key>", "KRAKEN_API_KEY is a placeholder"),
    ("DASHBOARD_ADMIN_KEY", "changeme-changeme-changeme", "DASHBOARD_ADMIN_KEY is a placeholder"),
    ("DASHBOARD_ADMIN_KEY", "your_admin_key_here_123456", "DASHBOARD_ADMIN_KEY is a placeholder"),
    ("DASHBOARD_ADMIN_KEY", "aB3", "DASHBOARD_ADMIN_KEY is too short (under 24 characters)"),
    ("DASHBOARD_SESSION_SECRET", "a" * 40, "too weak (fewer than 8 distinct characters)"),
    ("DASHBOARD_ADMIN_PASSWORD_HASH", "plaintext-password",
     "DASHBOARD_ADMIN_PASSWORD_HASH is not a well-formed bcrypt hash"),
    ("DASHBOARD_ADMIN_PASSWORD_HASH", HASH[:-1], "not a well-formed bcrypt hash"),
], ids=lambda v: "truncated-hash" if isinstance(v, str) and v.startswith("$2") else None)
def test_weak_values(key: str, value: str, problem: str) -> None:
    found = weakness(key, value)
    assert found is not None and problem in found
    assert value.strip() == "" or value not in found  # never echo the value


def test_real_values_pass() -> None:
    for key, value in {**DASH, **EXCHANGE}.items():
        assert weakness(key, value) is None, key
    assert is_bcrypt_hash(bcrypt.hashpw(b"x", bcrypt.gensalt()).decode())


def test_canary_first_policy() -> None:
    spec = parse_spec({**{"mode": "live"}, "exchange": {"credentialsSecretRef": {"name": "k"}},
                       "dashboard": {"secretRef": {"name": "d"}},
                       "canary": {"requiredBeforeLive": True, "minDuration": "1h"}})
    assert gate(spec).reason == "CanaryRequired"  # never ran canary
    early = gate(spec, running="canary", credit=20 * 60)
    assert not early.met and "2400s of canary left" in early.message
    assert "only time the canary pod is Ready and trading counts" in early.message
    assert gate(spec, running="canary", credit=3600).met
    assert gate(spec, running="live").met  # already live: the policy is about switching


@pytest.mark.parametrize(("requested", "met", "running", "expected"), [
    ("live", True, None, "live"),
    ("live", False, None, None),
    ("live", False, "paper", "paper"),
    ("live", False, "canary", "canary"),
    ("canary", False, "live", None),  # never a more dangerous mode than asked, nor the same
    ("live", False, "live", None),
    ("paper", True, "live", "paper"),  # going down is always allowed
])
def test_effective_mode(requested, met, running, expected) -> None:  # type: ignore[no-untyped-def]
    result = GateResult(met, (), "x")
    assert effective_mode(requested, result, running) == expected


@pytest.mark.parametrize(("requested", "running", "expected"), [
    ("live", None, None),
    ("live", "paper", "paper"),  # paper trades on no account: it keeps running
    ("live", "canary", None),  # canary trades on the account too
    ("live", "live", None),
    ("canary", "paper", "paper"),
])
def test_refused_the_account_only_paper_keeps_running(  # type: ignore[no-untyped-def]
        requested, running, expected) -> None:
    refused = livegate.refused_for_account(GateResult(True, (), "PrerequisitesMet"),
                                           "exchange account in use by TradingBot ns/a")
    assert (refused.met, refused.reason) == (False, "ExchangeAccountInUse")
    assert refused.message == "exchange account in use by TradingBot ns/a"
    assert effective_mode(requested, refused, running) == expected


@pytest.mark.parametrize(("spec", "data", "problem"), [
    ({"urlSecretRef": {"name": "pg"}}, None,
     "Secret pg (spec.database.urlSecretRef) not found"),
    ({"urlSecretRef": {"name": "pg"}}, {"URL": "postgresql://db/np"},
     "Secret pg (spec.database.urlSecretRef) lacks DATABASE_URL"),
    ({"urlSecretRef": {"name": "pg", "key": "URL"}}, {"URL": ""},
     "Secret pg (spec.database.urlSecretRef): URL is empty"),
    ({"cnpg": {"cluster": "main"}}, None,
     "Secret main-app of the CloudNativePG cluster main not found"),
], ids=["url-secret-absent", "url-key-absent", "url-empty", "cnpg-secret-absent"])
def test_canary_and_live_wait_for_the_database_secret(
        spec: dict[str, object], data: dict[str, str] | None, problem: str) -> None:
    for mode in ("canary", "live"):
        bot = parse_spec({"mode": mode, "exchange": {"credentialsSecretRef": {"name": "kraken"}},
                          "dashboard": {"secretRef": {"name": "dash"}}, "database": spec})
        db = database.decide(bot, "trading", data)
        result = evaluate(bot, EXCHANGE, DASH, running_mode=None, canary_seconds=None,
                          database_problem=db.problem)
        assert (result.met, result.reason) == (False, "SecretsIncomplete")
        assert result.problems == (problem,)
        assert "postgresql://" not in result.message


def test_the_database_secret_with_its_key_opens_the_gate() -> None:
    bot = parse_spec({"mode": "live", "exchange": {"credentialsSecretRef": {"name": "kraken"}},
                      "dashboard": {"secretRef": {"name": "dash"}},
                      "database": {"urlSecretRef": {"name": "pg"}}})
    db = database.decide(bot, "trading", {"DATABASE_URL": "postgresql://u:p@pg:5432/np"})
    assert evaluate(bot, EXCHANGE, DASH, running_mode=None, canary_seconds=None,
                    database_problem=db.problem).met


def test_problems_with_the_database_and_other_secrets_are_all_named() -> None:
    result = gate(exchange=None).problems
    assert result == ("Secret kraken not found",)
    both = evaluate(LIVE, None, DASH, running_mode=None, canary_seconds=None,
                    database_problem="Secret pg (spec.database.urlSecretRef) not found")
    assert both.problems == ("Secret kraken not found",
                             "Secret pg (spec.database.urlSecretRef) not found")


def test_paper_does_not_wait_on_the_gate_for_its_database() -> None:
    """Paper's wait is the DatabaseReady condition's (no pod), not the live gate's."""
    assert evaluate(parse_spec({}), None, None, running_mode=None, canary_seconds=None,
                    database_problem="Secret pg (spec.database.urlSecretRef) not found").met
