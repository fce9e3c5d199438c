"""``runkit db upgrade|check|sql``: the schema commands, for operators and deploy scripts.

Each function takes a storage URL (``sqlite:///runs.db``, ``postgresql://...``); the CLI
wiring (:func:`add_db_commands`, :func:`run_db_command`) is argparse-only so that
``runkit.__main__`` can mount it beside its other commands.
"""

from __future__ import annotations

import argparse
import sys

from ._errors import RunkitError
from .storage import migrate

#: The embedded default store of :class:`runkit.Runkit`, so ``runkit db upgrade`` with no
#: URL prepares the database a default app opens.
DEFAULT_URL = "sqlite:///runkit.db"


def db_upgrade(url: str) -> None:
    """Migrate the database to the latest schema (safe to run from several hosts at once)."""
    migrate.upgrade(url)
    print(f"runkit schema at {migrate.head()}")


def db_check(url: str) -> int:
    """0 if the database's schema is at the latest revision, 1 if it is behind (or absent):
    a deploy step can refuse to start a new release against an old schema."""
    current, head = migrate.current(url), migrate.head()
    if current == head:
        print(f"runkit schema at {head}: up to date")
        return 0
    print(
        f"runkit schema at {current or 'nothing'}, latest is {head}: run `runkit db upgrade`",
        file=sys.stderr,
    )
    return 1


def db_sql(url: str) -> None:
    """Print the upgrade as SQL without connecting, for DBAs who apply it themselves.
    ``url`` may be a bare dialect name: ``postgresql`` or ``sqlite``."""
    sys.stdout.write(migrate.sql(url))


def add_db_commands(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``db upgrade|check|sql`` to a parser's subcommands."""
    db = subparsers.add_parser("db", help="manage runkit's database schema")
    actions = db.add_subparsers(dest="db_command", required=True)
    for name, help_text in (
        ("upgrade", "migrate the database to the latest schema"),
        ("check", "exit 1 if the schema is behind the latest"),
        ("sql", "print the migration SQL (a URL or a dialect name) without connecting"),
    ):
        command = actions.add_parser(name, help=help_text)
        command.add_argument("url", nargs="?", default=DEFAULT_URL, help=f"default {DEFAULT_URL}")


def run_db_command(args: argparse.Namespace) -> int:
    try:
        if args.db_command == "upgrade":
            db_upgrade(args.url)
            return 0
        if args.db_command == "check":
            return db_check(args.url)
        db_sql(args.url)
        return 0
    except RunkitError as err:
        print(f"runkit db {args.db_command}: {err}", file=sys.stderr)
        return 2
