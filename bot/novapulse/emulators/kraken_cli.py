"""`novapulse kraken-emulator`: Kraken's REST API, public and private, until SIGINT/SIGTERM."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

from novapulse.emulators.kraken_faults import FaultSpecError
from novapulse.emulators.kraken_pairs import DEFAULT_FEE_PCT
from novapulse.market.candle_files import CandleFileError
from novapulse.market.replay_cli import parse_sources
from novapulse.serving import serve_until_signal

if TYPE_CHECKING:
    from novapulse.emulators.kraken_rest import KrakenRestEmulator

log = logging.getLogger(__name__)


class EmulatorArgumentError(ValueError):
    pass


def register(subparsers: Any) -> argparse.ArgumentParser:
    """Add the `kraken-emulator` subcommand to an argparse subparsers object."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "kraken-emulator",
        help="Serve Kraken's REST API (market data and a private account) locally",
        description="Kraken's REST API on one port: public market data from candle files and a "
        "private spot account (API-Sign checked) whose orders fill at the replayed price, "
        "with fault injection. Control API under /_emulator/.",
    )
    parser.add_argument("--data", action="extend", nargs="+", default=[], metavar="FILE[=PAIR]",
                        help="candle file, optionally traded as PAIR (repeatable)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--api-key", default=os.environ.get("KRAKEN_API_KEY"),
                        help="the API key private calls must carry (default: $KRAKEN_API_KEY)")
    parser.add_argument("--api-secret", default=os.environ.get("KRAKEN_API_SECRET"),
                        help="its secret, base64 as Kraken issues it (default: $KRAKEN_API_SECRET)")
    parser.add_argument("--balance", action="extend", nargs="+", default=[],
                        metavar="ASSET=AMOUNT", help="starting balance, e.g. BTC=1.5 (repeatable)")
    parser.add_argument("--fee", type=Decimal, default=DEFAULT_FEE_PCT, metavar="PCT",
                        help="fee per fill in percent of its cost, charged in the quote currency")
    parser.add_argument("--faults", default=None,
                        help='e.g. "AddOrder:timeout_after_accept@2,AddOrder:insufficient_funds@5,'
                        'Balance:5xx@1-3" (the Nth call of that endpoint)')
    parser.add_argument("--now", type=float, default=None, metavar="UNIX_TS",
                        help="hold the clock at this time (default: the wall clock)")
    parser.add_argument("--hold-unanswered", type=float, default=120.0, metavar="SECONDS",
                        help="how long a timeout fault holds a request before closing it")
    parser.set_defaults(func=run)
    return parser


def parse_balances(items: list[str]) -> dict[str, Decimal]:
    balances: dict[str, Decimal] = {}
    for item in items:
        asset, equals, amount_text = item.partition("=")
        try:
            amount = Decimal(amount_text)
        except InvalidOperation:
            amount = Decimal("NaN")
        if not equals or not asset.strip() or not amount.is_finite() or amount < 0:
            raise EmulatorArgumentError(
                f"bad --balance {item!r}: expected ASSET=AMOUNT with AMOUNT >= 0, e.g. BTC=1.5")
        balances[asset.strip()] = amount
    return balances


def build(args: argparse.Namespace) -> KrakenRestEmulator:
    # Imported here: every `novapulse` command builds this parser, only this one needs aiohttp.
    from novapulse.emulators.kraken_rest import KrakenRestEmulator

    if not args.api_key or not args.api_secret:
        raise EmulatorArgumentError("--api-key and --api-secret are required "
                                    "(or KRAKEN_API_KEY and KRAKEN_API_SECRET)")
    if not args.fee.is_finite() or not 0 <= args.fee < 100:
        raise EmulatorArgumentError(f"--fee must be a percentage in [0, 100), not {args.fee}")
    fixed_now = args.now
    return KrakenRestEmulator(
        parse_sources(args.data), host=args.host, port=args.port,
        now=None if fixed_now is None else (lambda: fixed_now),
        api_key=args.api_key, api_secret=args.api_secret,
        balances=parse_balances(args.balance), fee_pct=args.fee, faults=args.faults,
        hold_unanswered_s=args.hold_unanswered,
    )


def run(args: argparse.Namespace) -> int:
    try:
        emulator = build(args)
    except (EmulatorArgumentError, FaultSpecError, CandleFileError, ValueError) as exc:
        print(f"kraken-emulator: {exc}", file=sys.stderr)
        return 2
    if not emulator.pairs:
        print("kraken-emulator: no --data given: no pairs to trade", file=sys.stderr)
    try:
        asyncio.run(serve_until_signal(emulator, lambda: (
            f"kraken emulator: pairs {', '.join(emulator.pairs) or 'none'}; "
            f"control API {emulator.url}/_emulator/orders")))
    except OSError as exc:
        print(f"kraken-emulator: cannot listen: {exc}", file=sys.stderr)
        return 1
    return 0
