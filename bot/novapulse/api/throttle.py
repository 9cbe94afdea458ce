"""Login throttling: exponential back-off per account and client address.

Failed logins for one account from one client buy that client a growing wait (after
`free_failures`, 1 s, 2 s, 4 s, … up to `max_delay_s`); a success clears it. Another client —
another user behind the same ingress, once its address is known — is not held back by them.

The client's address is the peer's, unless the peer is a configured proxy
(`dashboard.trusted_proxies`): then the right-most address of `X-Forwarded-For` that is not a
trusted proxy. A header from anyone else is ignored, so a guesser cannot pick a fresh address
per attempt.
"""

from __future__ import annotations

import ipaddress
import math
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
ADMIN_ACCOUNT = "admin"  # the dashboard has one account; the key leaves room for more


def parse_networks(items: Iterable[str]) -> tuple[Network, ...]:
    """'10.0.0.0/8', '192.0.2.7', '::1' → networks (ValueError on anything else)."""
    return tuple(ipaddress.ip_network(item.strip(), strict=False) for item in items)


def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text.strip())
    except ValueError:
        return None


def _trusted(text: str, proxies: tuple[Network, ...]) -> bool:
    address = _address(text)
    return address is not None and any(address in net for net in proxies)


def client_address(peer: str, forwarded_for: str | None, proxies: tuple[Network, ...]) -> str:
    """Who is logging in: see the module's docstring."""
    if not forwarded_for or not _trusted(peer, proxies):
        return peer
    for hop in reversed([h.strip() for h in forwarded_for.split(",") if h.strip()]):
        if not _trusted(hop, proxies):
            return hop if _address(hop) is not None else peer
    return peer


@dataclass
class _Record:
    failures: int = 0
    blocked_until: float = 0.0
    last: float = 0.0


class LoginThrottle:
    def __init__(self, free_failures: int = 3, base_delay_s: float = 1.0,
                 max_delay_s: float = 900.0, forget_after_s: float = 3600.0,
                 max_entries: int = 10_000,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.free_failures = free_failures
        self.base_delay_s = base_delay_s
        self.max_delay_s = max_delay_s
        self.forget_after_s = forget_after_s
        self.max_entries = max_entries
        self.clock = clock
        self._records: OrderedDict[tuple[str, str], _Record] = OrderedDict()

    def delay_after(self, failures: int) -> float:
        if failures < self.free_failures:
            return 0.0
        exponent = min(failures - self.free_failures, 60)
        return float(min(self.base_delay_s * 2 ** exponent, self.max_delay_s))

    def retry_after(self, account: str, client: str) -> int:
        """Whole seconds this client must wait before trying this account again (0: go)."""
        record = self._get((account, client))
        if record is None:
            return 0
        remaining = record.blocked_until - self.clock()
        return math.ceil(remaining) if remaining > 0 else 0

    def failed(self, account: str, client: str) -> float:
        """Record a failure; returns the wait it buys."""
        key = (account, client)
        record = self._get(key) or _Record()
        now = self.clock()
        record.failures += 1
        record.last = now
        record.blocked_until = now + self.delay_after(record.failures)
        self._records[key] = record
        self._records.move_to_end(key)
        while len(self._records) > self.max_entries:  # bounded under a spray of addresses
            self._records.popitem(last=False)
        return record.blocked_until - now

    def succeeded(self, account: str, client: str) -> None:
        self._records.pop((account, client), None)

    def _get(self, key: tuple[str, str]) -> _Record | None:
        record = self._records.get(key)
        if record is not None and self.clock() - record.last > self.forget_after_s:
            del self._records[key]
            return None
        return record
