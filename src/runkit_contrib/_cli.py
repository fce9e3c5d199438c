"""``runkit serve`` and ``runkit keys`` for the ``runkit`` command line (``runkit.__main__``
calls :func:`add_serve_command` when runkit_contrib is installed, which adds both)."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from runkit import ConfigurationError, Settings

from ._serve import DEFAULT_DATABASE, KEY_FILE_ENV, KEYS_ENV

#: Shared with ``runkit worker``: one variable names the database for every command.
DATABASE_ENV = "RUNKIT_DATABASE_URL"


def _database_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--database",
        default=None,
        help=f"storage URL or SQLite file path (default: ${DATABASE_ENV}, else {DEFAULT_DATABASE})",
    )


def _database(args: argparse.Namespace) -> str:
    return str(args.database or os.environ.get(DATABASE_ENV) or DEFAULT_DATABASE)


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
    parser.set_defaults(handler=run_serve)
    add_keys_command(subparsers)
    return parser


def add_keys_command(subparsers: Any) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "keys",
        help="API keys of `runkit serve`",
        description="Manage the key store of `runkit serve`: beside a SQLite file "
        "(<file>.api-keys), else under $XDG_CONFIG_HOME/runkit/; "
        f"${KEY_FILE_ENV} overrides.",
    )
    actions = parser.add_subparsers(dest="keys_command", required=True, metavar="ACTION")
    create = actions.add_parser(
        "create",
        help="make a new API key: its hash joins the key store, the key is printed once",
        description="Make a new API key for `runkit serve` on this database. Only the "
        "key's hash is stored; the key is printed once. A running server reads the key "
        "store when it starts: restart it to accept the new key.",
    )
    create.add_argument(
        "--name", default=None, help="the key's principal id (default: key-<12 hex of its hash>)"
    )
    _database_option(create)
    create.set_defaults(handler=run_keys_create)
    return parser


def run_serve(args: argparse.Namespace) -> int:
    if args.workers < 0:
        raise SystemExit("runkit serve: --workers must be >= 0")
    from ._serve import serve

    return serve(
        host=args.host,
        port=args.port,
        database=_database(args),
        workers=args.workers,
        settings=_settings(args),
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


def run_keys_create(args: argparse.Namespace) -> int:
    from ._serve import create_key, database_url, key_file_for

    path = key_file_for(database_url(_database(args)))
    try:
        name, key = create_key(path, args.name)
    except ConfigurationError as exc:
        print(f"runkit keys create: {exc}", file=sys.stderr, flush=True)
        return 1
    lines = [
        f"Created API key {name!r} (shown once; only its hash is kept in {path}):",
        "",
        f"    {key}",
        "",
        "Send it as 'X-API-Key: <key>' or 'Authorization: Bearer <key>'. A running "
        "`runkit serve` reads the key store when it starts: restart it to accept this key.",
    ]
    if os.environ.get(KEYS_ENV, "").strip():
        lines.append(f"Note: {KEYS_ENV} is set; while it is, `runkit serve` ignores the store.")
    print("\n".join(lines), flush=True)
    return 0


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
