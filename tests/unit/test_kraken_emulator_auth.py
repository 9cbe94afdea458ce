"""API-Sign and nonces as Kraken checks them."""

from __future__ import annotations

import base64

import pytest

from novapulse.emulators.kraken_auth import ApiKeys, api_sign
from novapulse.emulators.kraken_errors import KrakenError

# The worked example of Kraken's REST authentication guide.
DOC_SECRET = ("kQH5HW/8p1uGOVjbgWA7FunAmGO8lsSUXNsu3eow76sz84Q18fWxnyRzBHCd3pd5nE9qa99HAZtuZ"
              "uj6F1huXg==")
DOC_NONCE = "1616492376594"
DOC_BODY = b"nonce=1616492376594&ordertype=limit&pair=XBTUSD&price=37500&type=buy&volume=1.25"
DOC_SIGN = ("4/dpxb3iT4tp/ZCVEwSnEsLxx0bqyhLpdfOpc6fn7OR8+UClSV5n9E6aSS8MPtnRfp32bAb0nmbRn6"
            "H8ndwLUQ==")
PATH = "/0/private/AddOrder"
OTHER_SECRET = base64.b64encode(b"another secret of the same account").decode()


def _keys() -> ApiKeys:
    keys = ApiKeys()
    keys.add("doc-key", DOC_SECRET)
    return keys


def _body(nonce: int) -> bytes:
    return f"nonce={nonce}&pair=XBTUSD".encode()


def _signed(keys: ApiKeys, nonce: int, secret: str = DOC_SECRET) -> None:
    body = _body(nonce)
    keys.authenticate("doc-key", api_sign(PATH, str(nonce), body, secret), PATH, body, str(nonce))


def test_signature_matches_krakens_documented_example() -> None:
    assert api_sign(PATH, DOC_NONCE, DOC_BODY, DOC_SECRET) == DOC_SIGN


def test_the_documented_request_is_accepted() -> None:
    _keys().authenticate("doc-key", DOC_SIGN, PATH, DOC_BODY, DOC_NONCE)


@pytest.mark.parametrize("api_key", [None, "", "someone-else"])
def test_an_unknown_key_is_invalid_key(api_key: str | None) -> None:
    with pytest.raises(KrakenError, match=r"^EAPI:Invalid key$"):
        _keys().authenticate(api_key, DOC_SIGN, PATH, DOC_BODY, DOC_NONCE)


def test_a_wrong_secret_is_invalid_signature() -> None:
    keys = _keys()
    with pytest.raises(KrakenError, match=r"^EAPI:Invalid signature$"):
        _signed(keys, 1, secret=OTHER_SECRET)


def test_a_body_changed_after_signing_is_invalid_signature() -> None:
    tampered = DOC_BODY.replace(b"volume=1.25", b"volume=12.5")
    with pytest.raises(KrakenError, match=r"^EAPI:Invalid signature$"):
        _keys().authenticate("doc-key", DOC_SIGN, PATH, tampered, DOC_NONCE)


def test_a_signature_for_another_endpoint_is_invalid() -> None:
    with pytest.raises(KrakenError, match=r"^EAPI:Invalid signature$"):
        _keys().authenticate("doc-key", DOC_SIGN, "/0/private/Balance", DOC_BODY, DOC_NONCE)


def test_nonces_must_increase_per_key() -> None:
    keys = _keys()
    _signed(keys, 100)
    _signed(keys, 101)
    for stale in (101, 50):
        with pytest.raises(KrakenError, match=r"^EAPI:Invalid nonce$"):
            _signed(keys, stale)
    _signed(keys, 102)


def test_each_key_has_its_own_nonce() -> None:
    keys = _keys()
    keys.add("second-key", OTHER_SECRET)
    _signed(keys, 500)
    body = _body(10)
    keys.authenticate("second-key", api_sign(PATH, "10", body, OTHER_SECRET), PATH, body, "10")


def test_a_badly_signed_request_does_not_use_up_its_nonce() -> None:
    keys = _keys()
    with pytest.raises(KrakenError):
        _signed(keys, 7, secret=OTHER_SECRET)
    _signed(keys, 7)


@pytest.mark.parametrize("nonce", [None, "", "12a", "-5"])
def test_a_missing_or_malformed_nonce_is_invalid_nonce(nonce: str | None) -> None:
    with pytest.raises(KrakenError, match=r"^EAPI:Invalid nonce$"):
        _keys().authenticate("doc-key", DOC_SIGN, PATH, DOC_BODY, nonce)


@pytest.mark.parametrize("secret", ["not base64!", ""])
def test_a_secret_that_is_not_base64_is_refused_up_front(secret: str) -> None:
    with pytest.raises(ValueError, match=r"base64|empty"):
        ApiKeys().add("key", secret)
