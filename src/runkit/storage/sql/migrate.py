"""runkit's schema migrations, run programmatically (no ``alembic.ini`` on disk).

:func:`upgrade` is safe to call from many processes at once (every ``SqlStore(...,
create_schema=True)`` does, at start-up): the first applies the migrations, the others wait
and then find the schema at head. PostgreSQL serializes them with an advisory lock held by
the migration's own transaction (DDL is transactional there, so a crash mid-way leaves
nothing behind); SQLite with ``BEGIN IMMEDIATE``, the database's write lock.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import exc
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.pool import NullPool

from .engine import file_lock, is_memory_sqlite, normalize_url, translate
from .schema import VERSION_TABLE

__all__ = ["check", "current", "head", "sql", "upgrade"]

#: pg_advisory_xact_lock key of migrations: b"runkit" read as an integer.
MIGRATION_LOCK = int.from_bytes(b"runkit", "big")


def script_location() -> str:
    import runkit.storage.sql.migrations

    return os.path.dirname(os.path.abspath(runkit.storage.sql.migrations.__file__))


def _config(output: io.StringIO | None = None) -> Config:
    cfg = Config(output_buffer=output) if output is not None else Config()
    cfg.set_main_option("script_location", script_location())
    return cfg


def _engine(url_or_engine: str | Engine) -> tuple[Engine, bool]:
    """The engine to migrate with, and whether it is ours to dispose."""
    if isinstance(url_or_engine, Engine):
        return url_or_engine, False
    url = make_url(normalize_url(url_or_engine))
    # A long busy timeout on SQLite: another process may be migrating right now.
    args = {"timeout": 60.0} if url.get_backend_name() == "sqlite" else {"connect_timeout": 10}
    return sa.create_engine(url, poolclass=NullPool, connect_args=args), True


@contextmanager
def _serialized(engine: Engine) -> Iterator[Connection]:
    """A connection in a transaction that no other migrator can be in at the same time."""
    if engine.dialect.name == "postgresql":
        with engine.begin() as conn:
            conn.execute(sa.select(sa.func.pg_advisory_xact_lock(MIGRATION_LOCK)))
            yield conn
    elif engine.dialect.name == "sqlite":
        with file_lock(engine), engine.connect() as conn:
            # Driver autocommit, so that the stdlib driver neither begins nor commits
            # behind our back: the DDL and the version row commit in our transaction.
            conn.execution_options(isolation_level="AUTOCOMMIT")
            conn.exec_driver_sql("BEGIN IMMEDIATE")
            yield conn
            conn.commit()
    else:
        with engine.begin() as conn:
            yield conn


def upgrade(url_or_engine: str | Engine, revision: str = "head") -> None:
    """Migrate the database to ``revision`` (default: the latest)."""
    engine, owned = _engine(url_or_engine)
    try:
        with _serialized(engine) as conn:
            cfg = _config()
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, revision)
    except (exc.DBAPIError, exc.TimeoutError) as err:
        raise translate(err) from err
    finally:
        if owned:
            engine.dispose()


def head() -> str:
    """The revision the shipped migrations end at."""
    heads = ScriptDirectory.from_config(_config()).get_heads()
    assert len(heads) == 1, heads
    return str(heads[0])


def current(url_or_engine: str | Engine) -> str | None:
    """The database's revision, or None if runkit's schema was never installed there."""
    if isinstance(url_or_engine, str) and _missing_sqlite_file(url_or_engine):
        return None  # connecting would create the file just to find it empty
    engine, owned = _engine(url_or_engine)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE})
            revision = context.get_current_revision()
            return None if revision is None else str(revision)
    except (exc.DBAPIError, exc.TimeoutError) as err:
        raise translate(err) from err
    finally:
        if owned:
            engine.dispose()


def _missing_sqlite_file(url: str) -> bool:
    parsed = make_url(normalize_url(url))
    if parsed.get_backend_name() != "sqlite" or is_memory_sqlite(parsed) or not parsed.database:
        return False
    return not os.path.exists(parsed.database)


def check(url_or_engine: str | Engine) -> bool:
    """Whether the database's schema is at the latest revision."""
    return current(url_or_engine) == head()


def sql(url_or_dialect: str) -> str:
    """The upgrade as a SQL script, without connecting (Alembic's offline mode).

    ``url_or_dialect``: a database URL, or just a dialect name (``postgresql``, ``sqlite``).
    """
    output = io.StringIO()
    cfg = _config(output)
    if "://" in url_or_dialect:
        # Config values go through configparser interpolation: escape a literal '%'.
        cfg.set_main_option("sqlalchemy.url", normalize_url(url_or_dialect).replace("%", "%%"))
    else:
        name = url_or_dialect.lower()
        cfg.set_main_option("runkit.dialect", "postgresql" if name == "postgres" else name)
    command.upgrade(cfg, "head", sql=True)
    return output.getvalue()
