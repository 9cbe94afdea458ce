"""Runbook 11 as a pure function: every missing or malformed secret named, never its value;
paper mode generates what is missing."""

from __future__ import annotations

import stat
from pathlib import Path

import bcrypt
import pytest

from novapulse.secrets import (
    LIVE_REQUIRED,
    PASSWORD_HASH,
    READ_KEY,
    dashboard_secrets,
    login_banner,
    startup_problems,
    write_generated,
)

GOOD_HASH = bcrypt.hashpw(b"correct horse battery staple", bcrypt.gensalt(4)).decode()
LIVE_ENV = {
    "DASHBOARD_ADMIN_KEY": "Zq8vN3kL1pX7rT5wB2mC9dF4hJ6s",
    "DASHBOARD_SESSION_SECRET": "aK9xQ2mZ7vB4nL8pR3tW6yE1uI5oP0sD",
    "DASHBOARD_ADMIN_PASSWORD_HASH": GOOD_HASH,
    "KRAKEN_API_KEY": "KrAk3nK3yAbCdEfGhIj",
    "KRAKEN_API_SECRET": "Xw4Pb9Lm2Zq7Rt1Kv6Nc3Hs8Fj0Dg5Ay+/w=",
}


@pytest.mark.parametrize("mode", ["live", "canary"])
def test_all_present_and_strong_is_fine(mode: str) -> None:
    assert startup_problems(mode, LIVE_ENV) == []


@pytest.mark.parametrize("mode", ["live", "canary"])
@pytest.mark.parametrize("name", LIVE_REQUIRED)
def test_each_missing_variable_is_named(mode: str, name: str) -> None:
    env = {k: v for k, v in LIVE_ENV.items() if k != name}
    assert startup_problems(mode, env) == [f"{name} is required in {mode} mode"]
    assert startup_problems(mode, {**env, name: "   "}) == [f"{name} is required in {mode} mode"]


def test_every_problem_at_once() -> None:
    problems = startup_problems("live", {})
    assert problems == [f"{name} is required in live mode" for name in LIVE_REQUIRED]
    assert "DASHBOARD_ADMIN_KEY is required in live mode" in problems  # the runbook's words


@pytest.mark.parametrize("bad_hash", ["not-a-hash", GOOD_HASH[:-1], "$2b$12$" + "x" * 10,
                                      GOOD_HASH.replace("$2b$", "$1$")],
                         ids=["plain", "truncated", "short", "wrong-scheme"])
def test_malformed_hash_is_refused_in_every_mode(bad_hash: str) -> None:
    for mode in ("paper", "live"):
        problems = startup_problems(mode, {**LIVE_ENV, PASSWORD_HASH: bad_hash})
        assert problems == [f"{PASSWORD_HASH} is not a well-formed bcrypt hash "
                            "(generate one with bcrypt.hashpw)"]


@pytest.mark.parametrize(("name", "value", "why"), [
    ("DASHBOARD_ADMIN_KEY", "<strong-random-key>", "placeholder"),
    ("DASHBOARD_ADMIN_KEY", "Short1xY", "too short"),
    ("DASHBOARD_SESSION_SECRET", "ab" * 20, "too weak"),
    ("KRAKEN_API_SECRET", "changeme-changeme-123", "placeholder"),
])
def test_weak_secrets_are_refused_in_live_mode_without_echoing_them(
        name: str, value: str, why: str) -> None:
    problems = startup_problems("live", {**LIVE_ENV, name: value})
    assert len(problems) == 1 and problems[0].startswith(name) and why in problems[0]
    assert value not in problems[0]
    assert startup_problems("paper", {**LIVE_ENV, name: value}) == []


def test_read_key_must_differ_from_the_admin_key() -> None:
    env = {**LIVE_ENV, READ_KEY: LIVE_ENV["DASHBOARD_ADMIN_KEY"]}
    assert startup_problems("paper", env) == [f"{READ_KEY} must differ from DASHBOARD_ADMIN_KEY"]


def test_paper_mode_needs_nothing_and_generates_the_dashboard_secrets() -> None:
    assert startup_problems("paper", {}) == []
    dash = dashboard_secrets({})
    assert set(dash.generated) == {"DASHBOARD_ADMIN_KEY", "DASHBOARD_SESSION_SECRET",
                                   PASSWORD_HASH}
    assert dash.generated_password is not None and len(dash.generated_password) >= 16
    assert bcrypt.checkpw(dash.generated_password.encode(), dash.password_hash)
    assert len(dash.admin_key) >= 32 and len(dash.session_secret) >= 32
    assert dashboard_secrets({}).admin_key != dash.admin_key  # fresh each session
    banner = login_banner("http://localhost:8090", dash)
    assert "http://localhost:8090" in banner and dash.generated_password in banner
    assert dash.admin_key in banner  # the generated key is shown once, so curl can be used


def test_off_a_terminal_generated_values_go_to_an_owner_only_file(tmp_path: Path) -> None:
    dash = dashboard_secrets({})
    path = tmp_path / "dashboard-login.txt"
    write_generated(dash, path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    text = path.read_text()
    assert f"password={dash.generated_password}" in text
    assert f"DASHBOARD_ADMIN_KEY={dash.admin_key}" in text
    banner = login_banner("http://localhost:8090", dash, reveal=False, saved_to=path,
                          pod="bot1-abc")
    assert f"kubectl exec bot1-abc -- cat {path}" in banner
    for value in dash.values():
        assert value not in banner


def test_given_secrets_are_used_and_never_shown() -> None:
    dash = dashboard_secrets({**LIVE_ENV, READ_KEY: "Rd7kQ2xM9vB4nL8pR3tW6yE1"})
    assert dash.generated == () and dash.generated_password is None
    assert dash.admin_key == LIVE_ENV["DASHBOARD_ADMIN_KEY"]
    assert dash.read_key == "Rd7kQ2xM9vB4nL8pR3tW6yE1"
    banner = login_banner("http://localhost:8090", dash)
    for text in (banner, repr(dash)):
        for value in dash.values():
            assert value not in text
