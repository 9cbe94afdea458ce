"""`novapulse replay-server`: run the Kraken WS v2 replay server until SIGINT/SIGTERM."""

from __future__ import annotations

import argparse
import asyncio
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from novapulse.market.candle_files import CandleFileError
from novapulse.market.replay_server import FaultSpecError, ReplayServer, parse_fault_schedule
from novapulse.serving import serve_until_signal


def register(subparsers: Any) -> argparse.ArgumentParser:
    """Add the `replay-server` subcommand to an argparse subparsers object."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "replay-server",
        help="Replay recorded candles over the Kraken WebSocket v2 protocol",
        description="Serve recorded candles as Kraken WS v2 ohlc, with fault injection.",
    )
    parser.add_argument(
        "--data",
        action="append",
        required=True,
        metavar="FILE[=PAIR]",
        help="candle file, optionally played as PAIR (repeatable: one file may play as many pairs)",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument(
        "--speed", type=float, default=1.0, help="candles per interval; <=0: as fast as possible"
    )
    start = parser.add_mutually_exclusive_group()
    start.add_argument("--start-index", type=int, default=0,
                       help="begin this many candles into every file (the earlier ones are "
                       "the first snapshot's history)")
    start.add_argument("--start-after", type=parse_time, metavar="TIME",
                       help="begin every pair at its first candle after TIME (epoch seconds or "
                       "ISO 8601, UTC unless it says otherwise): resume where a client stopped")
    parser.add_argument("--start-on-subscribe", action="store_true",
                        help="hold the clock until the first subscription, so a client that "
                        "starts after the server misses no candle")
    parser.add_argument("--exit-when-done", action="store_true",
                        help="exit (status 0) once every file is played to its end")
    parser.add_argument("--snapshot-size", type=int, default=50)
    parser.add_argument("--heartbeat-interval", type=float, default=1.0)
    parser.add_argument(
        "--faults", default=None, help='schedule, e.g. "drop@100,1013@200,silence@300:8,gap@400:5"'
    )
    parser.add_argument("--loop", action="store_true", help="start again at the end of the data")
    parser.set_defaults(func=run)
    return parser


def parse_time(text: str) -> float:
    """Epoch seconds, or an ISO 8601 time (`2018-01-20T12:00`, `...Z`, `...+01:00`; UTC when
    it names no offset)."""
    try:
        return float(text)
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is neither epoch seconds nor an ISO 8601 time") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def parse_sources(items: list[str]) -> list[tuple[Path, str | None]]:
    sources: list[tuple[Path, str | None]] = []
    for item in items:
        path, _, pair = item.partition("=")
        sources.append((Path(path), pair or None))
    return sources


def run(args: argparse.Namespace) -> int:
    try:
        parse_fault_schedule(args.faults)
        server = ReplayServer(
            parse_sources(args.data),
            host=args.host,
            port=args.port,
            speed=args.speed,
            start_index=args.start_index,
            snapshot_size=args.snapshot_size,
            heartbeat_interval=args.heartbeat_interval,
            faults=args.faults,
            loop=args.loop,
            start_after=args.start_after,
            start_on_subscribe=args.start_on_subscribe,
        )
    except (FaultSpecError, CandleFileError, ValueError) as exc:
        print(f"replay-server: {exc}", file=sys.stderr)
        return 2
    try:
        asyncio.run(serve_until_signal(
            server, lambda: f"replay server control: http://{server.host}:{server.port}/control/state",
            until=server.finished.wait if args.exit_when_done else None))
    except OSError as exc:
        print(f"replay-server: cannot listen: {exc}", file=sys.stderr)
        return 1
    return 0
