"""Kraken's error strings, verbatim, and the exception that carries one to the HTTP layer.

Strings from Kraken's spot REST error list (docs "Spot Error Messages"). Kraken answers them
with HTTP 200 and `{"error": [message]}`, except when the service is down (HTTP 5xx).
"""

from __future__ import annotations

INVALID_KEY = "EAPI:Invalid key"
INVALID_SIGNATURE = "EAPI:Invalid signature"
INVALID_NONCE = "EAPI:Invalid nonce"
RATE_LIMIT = "EAPI:Rate limit exceeded"
UNAVAILABLE = "EService:Unavailable"
CANCEL_ONLY = "EService:Market in cancel_only mode"
INVALID_ARGUMENTS = "EGeneral:Invalid arguments"
UNKNOWN_PAIR = "EQuery:Unknown asset pair"
INSUFFICIENT_FUNDS = "EOrder:Insufficient funds"
ORDER_MINIMUM = "EOrder:Order minimum not met"
COST_MINIMUM = "EOrder:Cost minimum not met"
UNKNOWN_ORDER = "EOrder:Unknown order"
INVALID_ORDER = "EOrder:Invalid order"
# Kraken documents that cl_ord_id is unique among a client's open orders but not the string
# it answers a repeat with; this is the one the emulator uses.
DUPLICATE_ORDER = "EOrder:Duplicate order"


def invalid_argument(name: str) -> str:
    """`EGeneral:Invalid arguments:volume` and the like (ccxt maps volume to InvalidOrder)."""
    return f"{INVALID_ARGUMENTS}:{name}"


def price_precision(altname: str, decimals: int) -> str:
    return f"EOrder:Invalid price:{altname} price can only be specified up to {decimals} decimals."


class KrakenError(Exception):
    """A request Kraken refuses, with the exact string it answers."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message
