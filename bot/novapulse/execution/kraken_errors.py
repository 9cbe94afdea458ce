"""ccxt's exceptions → runbook 4's error classes, at the venue boundary.

Each class decides what the caller may do next (`retryable`):

- AuthenticationError, PermissionDenied: the key is wrong or lacks rights. No retry.
- InsufficientFunds: no blind retry; the bot does not resize for the funds available.
- InvalidOrder, BadSymbol: the order itself is wrong (pair, volume, precision). No retry.
- RateLimitExceeded, DDoSProtection (and Kraken's `EService:Throttled`): retry after back-off.
  (A few Kraken strings ccxt does not know, such as `EAPI:Invalid signature`, are classed
  here by their text.)
- RequestTimeout, NetworkError, and a connection that broke after the request went out: the
  outcome is unknown (the exchange may have accepted the order), so look the order up by
  its client order id, then retry only if it does not exist.
- ExchangeNotAvailable, OnMaintenance, and a connection that could not even be opened: retry
  later; the exchange has not seen the request.
- anything else: OTHER, no retry.

Messages keep the exchange's own text (`EOrder:Insufficient funds`) and never the API key or
secret: both are scrubbed from whatever ccxt put into its message.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable

import aiohttp
from ccxt.base import errors as ccxt_errors

from novapulse.execution.venue import ErrorClass, VenueError

_NETWORK_HINT = (
    "the order's outcome is unknown: look it up by client order id before sending it again"
)
# Kraken strings that ccxt leaves as a plain ExchangeError, classed as their meaning says.
_UNMAPPED_BY_CCXT: list[tuple[re.Pattern[str], ErrorClass, bool]] = [
    (re.compile(r"EAPI:Invalid (key|signature)"), ErrorClass.AUTHENTICATION, False),
    (re.compile(r"EService:\s*Throttled"), ErrorClass.RATE_LIMIT, True),
    (re.compile(r"EOrder:(Cost minimum not met|Order minimum not met|Invalid)"),
     ErrorClass.INVALID_ORDER, False),
    (re.compile(r"EQuery:(Unknown|Invalid) asset pair"), ErrorClass.INVALID_ORDER, False),
]
# Kraken's answer to a cl_ord_id an open order already carries: the order exists.
DUPLICATE_ORDER = re.compile(r"EOrder:Duplicate order")
_KRAKEN_BODY = re.compile(r"\{.*\}", re.DOTALL)


def classify(exc: BaseException) -> tuple[ErrorClass, bool]:
    """The error class of `exc` and whether the same intent may be tried again."""
    if isinstance(exc, ccxt_errors.AuthenticationError):
        return ErrorClass.AUTHENTICATION, False
    if isinstance(exc, ccxt_errors.InsufficientFunds):
        return ErrorClass.INSUFFICIENT_FUNDS, False
    if isinstance(exc, ccxt_errors.InvalidOrder | ccxt_errors.BadSymbol):
        return ErrorClass.INVALID_ORDER, False
    if isinstance(exc, ccxt_errors.DDoSProtection | ccxt_errors.RateLimitExceeded):
        return ErrorClass.RATE_LIMIT, True
    if isinstance(exc, ccxt_errors.ExchangeNotAvailable):
        return _transport_class(exc.__cause__) or (ErrorClass.UNAVAILABLE, True)
    if isinstance(exc, ccxt_errors.NetworkError):
        return ErrorClass.NETWORK, True
    if isinstance(exc, ccxt_errors.BaseError):
        text = str(exc)
        for pattern, error, retryable in _UNMAPPED_BY_CCXT:
            if pattern.search(text):
                return error, retryable
    if isinstance(exc, TimeoutError | OSError | aiohttp.ClientError):
        return _transport_class(exc) or (ErrorClass.NETWORK, True)
    return ErrorClass.OTHER, False


def _transport_class(cause: BaseException | None) -> tuple[ErrorClass, bool] | None:
    """ccxt reports any broken connection as ExchangeNotAvailable. Whether the exchange saw
    the request is what matters: a connection never opened means it did not (UNAVAILABLE); a
    connection lost mid-request means it may have (NETWORK, look up first)."""
    if isinstance(cause, aiohttp.ClientConnectorError):
        return ErrorClass.UNAVAILABLE, True
    if isinstance(cause, aiohttp.ClientError | OSError | TimeoutError):
        return ErrorClass.NETWORK, True
    return None


def exchange_text(exc: BaseException) -> str:
    """Kraken's own error strings when ccxt quoted the response body (`kraken {"error":
    ["EOrder:Insufficient funds"]}` → `EOrder:Insufficient funds`), else ccxt's message."""
    message = str(exc) or type(exc).__name__
    match = _KRAKEN_BODY.search(message)
    if match is not None:
        try:
            body = json.loads(match.group(0))
        except ValueError:
            return message
        errors = body.get("error") if isinstance(body, dict) else None
        if isinstance(errors, list) and errors:
            return "; ".join(str(e) for e in errors)
        if isinstance(errors, str) and errors:
            return errors
    return message


def redact(text: str, secrets: Iterable[str]) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text


def venue_error(exc: BaseException, *, secrets: Iterable[str] = ()) -> VenueError:
    """The `VenueError` for `exc`, its message free of `secrets`."""
    error, retryable = classify(exc)
    text = redact(exchange_text(exc), secrets)
    if error is ErrorClass.NETWORK:
        text = f"{text} ({type(exc).__name__}); {_NETWORK_HINT}"
    return VenueError(error, text, retryable=retryable)
