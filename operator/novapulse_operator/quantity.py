"""Kubernetes memory quantities: parse to bytes, format as whole MiB (pure)."""

from __future__ import annotations

import math
import re

_SUFFIXES = {
    "": 1, "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12,
    "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40,
}
_PATTERN = re.compile(r"^([0-9]+(?:\.[0-9]+)?)([kMGT]i?|Ki)?$")


def parse_bytes(quantity: str | int | float) -> int:
    """'1Gi' → 1073741824; raises ValueError on what is not a memory quantity."""
    if isinstance(quantity, int | float):
        return int(quantity)
    match = _PATTERN.fullmatch(quantity.strip())
    if match is None:
        raise ValueError(f"not a memory quantity: {quantity!r}")
    number, suffix = match.groups()
    return int(float(number) * _SUFFIXES[suffix or ""])


def format_mib(size: int) -> str:
    """Bytes as whole MiB, rounded up ('1536Mi'); Gi when exact."""
    mib = math.ceil(size / 2**20)
    return f"{mib // 1024}Gi" if mib % 1024 == 0 else f"{mib}Mi"


def grow(current: str, factor: float, ceiling: str) -> str | None:
    """The limit after an OOM kill: current × factor, at most the ceiling; None when the
    current limit already is at (or above) the ceiling."""
    now, top = parse_bytes(current), parse_bytes(ceiling)
    if now >= top:
        return None
    return format_mib(min(int(now * factor), top))
