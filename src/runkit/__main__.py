"""The ``runkit`` command (also ``python -m runkit``).

::

    runkit worker [--database URL] [--concurrency N]   execute runs until SIGTERM/SIGINT
    runkit db upgrade|check|sql [--database URL]       schema migrations (runkit.storage.sql.cli)
    runkit demo                                        a few runs, executed in-process
    runkit serve ...                                   when the HTTP extra is installed
    runkit keys create [--name N]                      add an API key to serve's key store
    runkit runs list|get|create|execute|wait|logs|...  the runs of a server, over HTTP (docs/cli.md)
    runkit kinds | runkit workers                      what a server can run, and its live workers

``--database`` defaults to ``$RUNKIT_DATABASE_URL``, else ``sqlite:///runkit.db``.
Exit codes: 0 ok, 1 error, 2 usage (``runs``: see docs/cli.md).
"""

from __future__ import annotations

import argparse
import gc
import importlib
import logging
import os
import sys
from collections.abc import Sequence
from typing import Any

DATABASE_ENV = "RUNKIT_DATABASE_URL"
DEFAULT_DATABASE = "sqlite:///runkit.db"


def default_database() -> str:
    return os.environ.get(DATABASE_ENV) or DEFAULT_DATABASE


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="runkit", description="Durable runs of typed actions.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log at INFO level")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    worker = commands.add_parser("worker", help="execute runs until SIGTERM or SIGINT")
    _database_option(worker)
    worker.add_argument("--concurrency", type=int, default=10, help="executors at once")
    worker.add_argument(
        "--grace-period", type=float, default=30.0, help="seconds running executors get"
    )
    timing_options(worker)
    worker.set_defaults(handler=_worker)

    db = commands.add_parser("db", help="database schema")
    db.add_argument("action", choices=["upgrade", "check", "sql"])
    db.add_argument("url", nargs="?", default=None, help="same as --database")
    _database_option(db)
    db.set_defaults(handler=_db)

    demo = commands.add_parser("demo", help="create a few runs and execute them in-process")
    demo.add_argument("--database", default="sqlite:///runkit-demo.db", help="default: %(default)s")
    demo.set_defaults(handler=_demo)

    # --- hook for the HTTP package: it adds `serve` and `keys` when installed -----------
    try:
        contrib_cli: Any = importlib.import_module("runkit_contrib._cli")
    except ImportError:
        contrib_cli = None
    if contrib_cli is not None and hasattr(contrib_cli, "add_serve_command"):
        timing_options(contrib_cli.add_serve_command(commands))
    # --- and for the HTTP client: `runs`, `kinds`, `workers` --------------------------------
    try:
        client_cli: Any = importlib.import_module("runkit.client._cli")
    except ImportError:
        client_cli = None
    if client_cli is not None and hasattr(client_cli, "add_client_commands"):
        client_cli.add_client_commands(commands)
    return parser


def timing_options(parser: argparse.ArgumentParser) -> None:
    """``--lease`` and ``--heartbeat`` (seconds), shared by ``worker`` and ``serve``."""
    parser.add_argument(
        "--lease",
        type=float,
        default=None,
        metavar="SECONDS",
        help="how long a run is held without a heartbeat before another worker takes it over "
        "(default: $RUNKIT_LEASE_SECONDS, else 10)",
    )
    parser.add_argument(
        "--heartbeat",
        type=float,
        default=None,
        metavar="SECONDS",
        help="how often leases are renewed (default: $RUNKIT_HEARTBEAT_SECONDS, else 2)",
    )


def settings_from(args: argparse.Namespace) -> Any:
    """The engine Settings of a command: its flags, else the environment, else defaults."""
    from datetime import timedelta

    from .domain.settings import Settings

    def seconds(value: float | None) -> timedelta | None:
        return None if value is None else timedelta(seconds=value)

    try:
        return Settings.from_environ(
            os.environ, lease=seconds(args.lease), heartbeat=seconds(args.heartbeat)
        )
    except ValueError as exc:
        raise SystemExit(f"runkit: {exc}") from None


def _database_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--database",
        default=None,
        help=f"storage URL (default: ${DATABASE_ENV}, else {DEFAULT_DATABASE})",
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        code: int = args.handler(args)
    except KeyboardInterrupt:
        return 1
    except Exception as exc:
        from .domain.errors import RunkitError

        if not isinstance(exc, RunkitError):
            raise
        print(f"runkit: {exc}", file=sys.stderr)
        return 1
    return code


def _worker(args: argparse.Namespace) -> int:
    import anyio

    from .engine import Worker, run_workers
    from .service.runkit import Runkit

    url = args.database or default_database()
    settings = settings_from(args)

    def announce(worker: Worker) -> None:
        # Started: what start-up made lives as long as the process, so the cyclic
        # collector need not walk it on every full pass (a process of our own).
        gc.collect()
        gc.freeze()
        print(
            f"runkit worker {worker.worker_id}: database {_shown(url)}, "
            f"kinds {', '.join(sorted(worker.kinds)) or '(none)'}, "
            f"concurrency {worker.concurrency}, lease {settings.lease.total_seconds():g} s "
            "(Ctrl-C stops it gracefully; -v logs each run)",
            flush=True,
        )

    async def serve() -> None:
        async with Runkit(url, settings=settings) as rk:
            await run_workers(
                rk, args.concurrency, grace_period=args.grace_period, on_start=announce
            )

    anyio.run(serve)
    return 0


def _shown(url: str) -> str:
    """``url`` with any password masked, for printing."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return url.split("://", 1)[0] + "://..."


def _db(args: argparse.Namespace) -> int:
    url = args.url or args.database or default_database()
    try:
        # Written alongside the SQL store; imported lazily so the CLI works without it.
        db_cli: Any = importlib.import_module("runkit.storage.sql.cli")
    except ImportError:
        print("runkit: database commands are not available in this build", file=sys.stderr)
        return 1
    command = getattr(db_cli, f"db_{args.action}", None)
    if command is None:
        print(f"runkit: runkit.storage.sql.cli has no {args.action!r} command", file=sys.stderr)
        return 1
    result = command(url)
    return int(result) if isinstance(result, int) else 0


def _demo(args: argparse.Namespace) -> int:
    import anyio

    from ._demo import demo

    # The demo uses the test kinds; they register only when this is set at Runkit build.
    os.environ["RUNKIT_ENABLE_TEST_KINDS"] = "1"
    anyio.run(demo, args.database)
    return 0


if __name__ == "__main__":
    sys.exit(main())
