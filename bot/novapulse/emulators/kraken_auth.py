"""Kraken's private-endpoint authentication: API-Key, API-Sign and an increasing nonce per key.

API-Sign = base64(HMAC-SHA512(key=base64decode(secret), msg=URI path + SHA256(nonce + POST
data))), where the POST data is the request body exactly as sent (it includes `nonce=`).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac

from novapulse.emulators.kraken_errors import (
    INVALID_KEY,
    INVALID_NONCE,
    INVALID_SIGNATURE,
    KrakenError,
)


def decode_secret(secret_b64: str) -> bytes:
    try:
        secret = base64.b64decode(secret_b64, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("API secret must be base64, as Kraken issues it") from None
    if not secret:
        raise ValueError("API secret is empty")
    return secret


def api_sign(uri_path: str, nonce: str, post_data: bytes, secret_b64: str) -> str:
    digest = hashlib.sha256(nonce.encode() + post_data).digest()
    mac = hmac.new(decode_secret(secret_b64), uri_path.encode() + digest, hashlib.sha512)
    return base64.b64encode(mac.digest()).decode()


class ApiKeys:
    """The key pairs the emulated account accepts, and the last nonce each one used."""

    def __init__(self) -> None:
        self._secrets: dict[str, str] = {}
        self._last_nonce: dict[str, int] = {}

    def add(self, api_key: str, api_secret: str) -> None:
        if not api_key:
            raise ValueError("API key is empty")
        decode_secret(api_secret)
        self._secrets[api_key] = api_secret

    def authenticate(
        self, api_key: str | None, signature: str | None, uri_path: str, post_data: bytes,
        nonce: str | None,
    ) -> None:
        """Raise KrakenError with Kraken's answer unless the request is signed and fresh."""
        secret = self._secrets.get(api_key) if api_key else None
        if api_key is None or secret is None:
            raise KrakenError(INVALID_KEY)
        if not nonce or not nonce.isdigit():
            raise KrakenError(INVALID_NONCE)
        expected = api_sign(uri_path, nonce, post_data, secret)
        if not signature or not hmac.compare_digest(expected, signature.strip()):
            raise KrakenError(INVALID_SIGNATURE)
        value = int(nonce)
        if value <= self._last_nonce.get(api_key, -1):
            raise KrakenError(INVALID_NONCE)
        self._last_nonce[api_key] = value
