"""The lock identity: the exchange account in canary/live, `instance.identity` in paper."""

from __future__ import annotations

import hashlib

import pytest

from novapulse.account import MissingExchangeKey, exchange_account_identity, lock_identity
from novapulse.config import Config

KEY = "Qm7Zt2Lx9Rv4Kp1Ws8Nc3Bf6Hj0Dg5AyQm7Zt2Lx9Rv4Kp1Ws8Nc3Bf6"
OTHER_KEY = "Zx8Wc7Vb6Nm5Lk4Jh3Gf2Ds1Aq0Pw9Oe8Zx8Wc7Vb6Nm5Lk4Jh3Gf2D"


def config(mode: str, identity: str = "trading/bot-a") -> Config:
    return Config.model_validate({"trading": {"mode": mode}, "instance": {"identity": identity}})


def test_the_identity_is_the_first_16_hex_digits_of_the_keys_sha256() -> None:
    expected = "kraken:" + hashlib.sha256(KEY.encode()).hexdigest()[:16]
    assert exchange_account_identity(KEY) == expected


@pytest.mark.parametrize("mode", ["canary", "live"])
def test_two_bots_with_one_key_get_one_identity_whatever_their_names(mode: str) -> None:
    first = lock_identity(config(mode, "team-a/eth-bot"), {"KRAKEN_API_KEY": KEY})
    second = lock_identity(config(mode, "team-b/btc-bot"), {"KRAKEN_API_KEY": KEY})
    assert first == second == exchange_account_identity(KEY)


def test_canary_and_live_on_one_key_share_the_identity() -> None:
    environ = {"KRAKEN_API_KEY": KEY}
    assert lock_identity(config("canary"), environ) == lock_identity(config("live"), environ)


def test_different_keys_get_different_identities() -> None:
    assert (lock_identity(config("live"), {"KRAKEN_API_KEY": KEY})
            != lock_identity(config("live"), {"KRAKEN_API_KEY": OTHER_KEY}))


def test_blanks_around_the_key_do_not_change_the_account() -> None:
    assert exchange_account_identity(f"  {KEY}\n") == exchange_account_identity(KEY)


def test_paper_keeps_the_configured_identity_even_with_a_key() -> None:
    assert lock_identity(config("paper", "trading/bot-a"), {"KRAKEN_API_KEY": KEY}) == (
        "trading/bot-a")


def test_the_identity_does_not_contain_the_key_or_a_long_part_of_it() -> None:
    identity = lock_identity(config("live"), {"KRAKEN_API_KEY": KEY})
    assert KEY not in identity
    assert len(identity.removeprefix("kraken:")) == 16


@pytest.mark.parametrize("environ", [{}, {"KRAKEN_API_KEY": ""}, {"KRAKEN_API_KEY": "   "}])
def test_live_without_a_key_is_a_clear_error(environ: dict[str, str]) -> None:
    with pytest.raises(MissingExchangeKey, match="KRAKEN_API_KEY is required in live mode"):
        lock_identity(config("live"), environ)
