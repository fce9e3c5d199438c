"""``runkit serve`` for the ``runkit`` command line (``runkit.__main__`` calls
:func:`add_serve_command` when runkit_contrib is installed)."""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from typing import Any

from ._serve import DEFAULT_DATABASE

#: Shared with ``runkit worker``: one variable names the database for every command.
DATABASE_ENV = "RUNKIT_DATABASE_URL"


def add_serve_command(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``serve`` to an argparse sub-command set; dispatch with ``args.handler(args)``."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "serve",
        help="serve the Action Runs HTTP API (and optionally workers) with uvicorn",
        description="Serve the Action Runs API. API keys come from RUNKIT_API_KEYS "
        "(comma-separated); without it a key is generated on first start and printed once.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    parser.add_argument(
        "--database",
        default=None,
        help=f"storage URL or SQLite file path (default: ${DATABASE_ENV}, else {DEFAULT_DATABASE})",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=4,
        help="runs executed at once in this process (default 4; 0: the API alone, with "
        "workers in separate `runkit worker` processes)",
    )
    parser.set_defaults(handler=run_serve)
    return parser


def run_serve(args: argparse.Namespace) -> int:
    if args.workers < 0:
        raise SystemExit("runkit serve: --workers must be >= 0")
    from ._serve import serve

    database = args.database or os.environ.get(DATABASE_ENV) or DEFAULT_DATABASE
    return serve(host=args.host, port=args.port, database=database, workers=args.workers)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m runkit_contrib._cli serve ...`` without the runkit command line."""
    parser = argparse.ArgumentParser(prog="runkit")
    add_serve_command(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    result: int = args.handler(args)
    return result


if __name__ == "__main__":
    raise SystemExit(main())
