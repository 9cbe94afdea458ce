"""`novapulse lock status|clear --if-stale`: inspect and clean up `data/instance.lock`.

Exit codes of `clear`: 0 when a stale lock was removed or there was nothing to clear, 1 when
the lock is live and was left alone, 2 on misuse (no `--if-stale`).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from novapulse.instance_lock import (
    DEFAULT_STALE_AFTER_S,
    LOCK_FILE_NAME,
    LockStatus,
    clear_if_stale,
    lock_status,
)

EXIT_OK = 0
EXIT_LIVE = 1
EXIT_USAGE = 2


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    lock = subparsers.add_parser("lock", help="inspect or clear the single-instance lock")
    verbs = lock.add_subparsers(dest="lock_command", required=True)

    def common(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--data-dir", type=Path, default=None,
                            help="data directory holding instance.lock "
                                 "(default: config instance.data_dir)")
        parser.add_argument("--stale-after", type=float, default=DEFAULT_STALE_AFTER_S,
                            metavar="SECONDS",
                            help="heartbeat age that counts as stale where flock is "
                                 f"unsupported (default {DEFAULT_STALE_AFTER_S:g})")
        parser.set_defaults(func=run)

    status = verbs.add_parser("status", help="who holds the lock, and is it stale?")
    common(status)
    status.add_argument("--json", action="store_true", help="print one JSON object")

    clear = verbs.add_parser("clear", help="remove the lock file, only if it is stale")
    common(clear)
    clear.add_argument("--if-stale", action="store_true",
                       help="required: remove the lock only when no live process holds it")


def _default_data_dir() -> Path:
    from novapulse.config import ConfigError, InstanceConfig, load_config

    try:
        return Path(load_config().instance.data_dir)
    except ConfigError:  # a bad environment must not keep an operator from seeing the lock
        return Path(InstanceConfig().data_dir)


def _format_status(status: LockStatus) -> str:
    if not status.exists:
        return f"{status.path}: no lock file"
    lines = [f"{status.path}: {'STALE' if status.stale else 'LIVE'}", f"  {status.reason}"]
    if status.heartbeat_age_s is not None:
        lines.append(f"  heartbeat {status.heartbeat_age_s:.1f}s ago")
    if status.holder_pid_alive is not None:
        lines.append(f"  holder pid alive on this host: {status.holder_pid_alive}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    data_dir: Path = args.data_dir if args.data_dir is not None else _default_data_dir()
    path = data_dir / LOCK_FILE_NAME
    if args.lock_command == "status":
        status = lock_status(path, args.stale_after)
        if args.json:
            print(json.dumps(status.to_dict(), sort_keys=True))
        else:
            print(_format_status(status))
        return EXIT_OK
    if not args.if_stale:
        print("novapulse lock clear: refusing without --if-stale. Removing a live lock lets a "
              "second bot trade the same account (double orders); `--if-stale` removes the "
              "lock only when no live process holds it.", file=sys.stderr)
        return EXIT_USAGE
    result = clear_if_stale(path, args.stale_after)
    if not result.live:
        print(result.message)
        return EXIT_OK
    print(f"novapulse lock clear: {result.message}", file=sys.stderr)
    return EXIT_LIVE


def main(argv: list[str] | None = None) -> int:
    """Stand-alone entry (`python -m novapulse.lock_cli lock status`)."""
    parser = argparse.ArgumentParser(prog="novapulse")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    code: int = args.func(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
