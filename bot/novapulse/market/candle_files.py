"""Reading recorded candles (`timestamp_ms,open,high,low,close,volume`, optionally gzipped)."""

from __future__ import annotations

import csv
import gzip
import io
import re
from collections.abc import Iterator
from pathlib import Path

from novapulse.models import Candle

_NAME = re.compile(r"^(?P<base>[A-Za-z0-9]+)_(?P<quote>[A-Za-z0-9]+)-(?P<tf>\d+)(?P<unit>[mhd])")
_UNIT_SECONDS = {"m": 60, "h": 3600, "d": 86400}
# WS v2 spells bitcoin BTC (v1 and the REST API say XBT).
_KRAKEN_ALIASES = {"XBT": "BTC"}


class CandleFileError(ValueError):
    pass


def kraken_symbol(base: str, quote: str) -> str:
    """ETH, XBT -> ETH/BTC: Kraken's WS v2 spelling of a pair."""
    return f"{_KRAKEN_ALIASES.get(base.upper(), base.upper())}/" + _KRAKEN_ALIASES.get(
        quote.upper(), quote.upper()
    )


def describe_file(path: Path) -> tuple[str, int]:
    """(pair, interval seconds) from a file name such as `ETH_BTC-5m.csv.gz`."""
    match = _NAME.match(path.name)
    if not match:
        raise CandleFileError(
            f"{path.name}: cannot tell pair and timeframe from the name "
            "(expected BASE_QUOTE-5m.csv[.gz])"
        )
    interval = int(match["tf"]) * _UNIT_SECONDS[match["unit"]]
    return kraken_symbol(match["base"], match["quote"]), interval


def _open_text(path: Path) -> io.TextIOBase:
    if path.suffix == ".gz":
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8")
    return path.open(encoding="utf-8")


def iter_candles(path: Path, pair: str | None = None) -> Iterator[Candle]:
    """Candles of one file in time order. Bad rows raise with their line number."""
    file_pair, interval = describe_file(path)
    pair = pair or file_pair
    try:
        stream = _open_text(path)
    except OSError as exc:
        raise CandleFileError(f"{path}: {exc.strerror or exc}") from exc
    with stream:
        reader = csv.reader(stream)
        header = next(reader, None)
        if header is None:
            return
        for lineno, row in enumerate(reader, start=2):
            try:
                ts_ms, o, h, low, c, v = row[:6]
                yield Candle(pair, int(ts_ms) // 1000, float(o), float(h), float(low), float(c),
                             float(v), interval)
            except (ValueError, IndexError) as exc:
                raise CandleFileError(f"{path}:{lineno}: bad candle row {row!r}") from exc


def load_candles(path: Path, pair: str | None = None) -> list[Candle]:
    return list(iter_candles(path, pair))
