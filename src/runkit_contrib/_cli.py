"""``runkit serve`` (and, through :mod:`._keys_cli`, ``runkit keys``) for the ``runkit``
command line: ``runkit.__main__`` calls :func:`add_serve_command` when runkit_contrib is
installed, which adds both."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from runkit import ConfigurationError, Settings

from ._keys_cli import add_keys_command
from ._keys_cli import database as _database
from ._keys_cli import database_option as _database_option
from ._limits import ServeLimits, count_option, seconds_option
from ._serve import KEYS_ENV


def add_serve_command(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``serve`` (and ``keys``, which manages serve's key store) to an argparse
    sub-command set; dispatch with ``args.handler(args)``. Returns the ``serve`` parser."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "serve",
        help="serve the Action Runs HTTP API (and optionally workers) with uvicorn",
        description=f"Serve the Action Runs API. API keys come from {KEYS_ENV} "
        "(comma-separated); without it from the key store beside the database, where a key "
        "is generated on first start and printed once (more: `runkit keys create`).",
    )
    parser.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    _database_option(parser)
    parser.add_argument(
        "--workers",
        type=int,
        default=4,
        help="runs executed at once in this process (default 4; 0: the API alone, with "
        "workers in separate `runkit worker` processes)",
    )
    defaults = ServeLimits()
    parser.add_argument(
        "--max-connections",
        type=count_option,
        default=None,
        metavar="N",
        help="connections held at once; at the limit, the one waiting longest for a request "
        "is closed to make room (default: from the open-file limit, see docs/deploy.md)",
    )
    parser.add_argument(
        "--header-timeout",
        type=seconds_option,
        default=defaults.header_timeout,
        metavar="SECONDS",
        help="a request head must arrive within this, from the connection's opening or the "
        f"previous response's end (default {defaults.header_timeout:g})",
    )
    parser.add_argument(
        "--keep-alive-timeout",
        type=seconds_option,
        default=defaults.keep_alive_timeout,
        metavar="SECONDS",
        help="an idle keep-alive connection is closed after this "
        f"(default {defaults.keep_alive_timeout:g})",
    )
    parser.add_argument(
        "--no-ui",
        dest="ui",
        action="store_false",
        help="serve the API alone, without the dashboard under /ui/",
    )
    parser.set_defaults(handler=run_serve)
    add_keys_command(subparsers)
    return parser


def run_serve(args: argparse.Namespace) -> int:
    if args.workers < 0:
        raise SystemExit("runkit serve: --workers must be >= 0")
    from ._serve import serve

    limits = ServeLimits(
        max_connections=args.max_connections,
        header_timeout=args.header_timeout,
        keep_alive_timeout=args.keep_alive_timeout,
    )
    return serve(
        host=args.host,
        port=args.port,
        database=_database(args),
        workers=args.workers,
        settings=_settings(args),
        limits=limits,
        ui=args.ui,
    )


def _settings(args: argparse.Namespace) -> Settings:
    """Engine timing from ``--lease``/``--heartbeat`` (which ``runkit``'s own parser adds to
    ``serve``), else ``RUNKIT_LEASE_SECONDS``/``RUNKIT_HEARTBEAT_SECONDS``, else defaults."""
    overrides = {}
    for name in ("lease", "heartbeat"):
        value = getattr(args, name, None)
        if value is not None:
            overrides[name] = timedelta(seconds=value)
    try:
        return Settings.from_environ(os.environ, **overrides)
    except ValueError as exc:
        raise SystemExit(f"runkit serve: {exc}") from None


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m runkit_contrib._cli serve|keys ...`` without the runkit command line."""
    parser = argparse.ArgumentParser(prog="runkit")
    add_serve_command(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    try:
        result: int = args.handler(args)
    except ConfigurationError as exc:  # as `runkit` itself reports it: no traceback
        print(f"runkit: {exc}", file=sys.stderr, flush=True)
        return 1
    return result


if __name__ == "__main__":
    raise SystemExit(main())
