"""``runkit db upgrade|check|sql``: the schema commands, for operators and deploy scripts.

Each function takes a storage URL (``sqlite:///runs.db``, ``postgresql://...``);
``runkit.__main__`` maps ``runkit db ACTION`` to ``db_ACTION``. Errors (an unreachable
database: :class:`~runkit.StorageUnavailable`) propagate to the caller.
"""

from __future__ import annotations

import sys

from . import migrate


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
