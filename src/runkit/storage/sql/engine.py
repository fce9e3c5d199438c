"""Engines and transactions for the SQL store: URL handling, SQLite's locking discipline,
and the translation of driver errors into runkit's.

SQLite. The stdlib driver's own transaction handling ("legacy transaction control") does not
BEGIN before a SELECT, so a read-then-write primitive would read outside its transaction. The
store therefore runs every SQLite connection in driver autocommit mode and emits ``BEGIN``
itself: ``BEGIN IMMEDIATE`` for every write, which takes the database's write lock up front.
Two writers (threads or processes) then queue on the lock (``busy_timeout``) instead of
both reading, one failing to upgrade its lock with SQLITE_BUSY mid-transaction. Within a
process, writers to one file also queue on a :class:`threading.Lock` first: SQLite's busy
handler sleeps and polls, a Python lock hands over at once.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy import event, exc
from sqlalchemy.engine import URL, Connection, Engine, make_url
from sqlalchemy.pool import StaticPool

from ...domain.errors import ConfigurationError, StorageUnavailable
from . import jsoncodec

Synchronous = Literal["NORMAL", "FULL"]

#: PostgreSQL SQLSTATE classes that mean "the server cannot be used now": connection
#: exceptions, insufficient resources, operator intervention (shutdown, recovery).
_PG_UNAVAILABLE = ("08", "53", "57P")
#: Transient conflicts worth re-running the (atomic, rolled back) primitive for.
_PG_RETRY = frozenset({"40001", "40P01"})
_SQLITE_UNAVAILABLE = ("database is locked", "unable to open", "disk i/o", "readonly database")

_file_locks: dict[str, threading.Lock] = {}
_file_locks_guard = threading.Lock()


def normalize_url(url: str) -> str:
    """Accept the libpq spellings ``postgres://`` and ``postgresql://``: runkit's driver is
    psycopg 3, which SQLAlchemy names ``postgresql+psycopg``."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def is_memory_sqlite(url: URL) -> bool:
    return url.database in (None, "", ":memory:") or url.query.get("mode") == "memory"


#: The JSON columns' codec (``jsoncodec``), for the store's engines.
_JSON_CODEC = {"json_serializer": jsoncodec.dumps, "json_deserializer": jsoncodec.loads}


def build_engine(
    url: str | URL, *, busy_timeout: float, synchronous: Synchronous, pool_size: int
) -> Engine:
    """An engine configured the way the store needs it (for URLs the store opens itself).

    ``hide_parameters``: a failed statement's error (and so any log of it) names the SQL but
    not its parameters, which hold run definitions, results and keys. A host that passes its
    own engine decides this itself."""
    u = make_url(normalize_url(url) if isinstance(url, str) else url)
    backend = u.get_backend_name()
    if backend == "sqlite":
        if u.get_driver_name() != "pysqlite":
            raise ConfigurationError(f"runkit's SQLite store uses the stdlib driver, not {u}")
        if synchronous not in ("NORMAL", "FULL"):  # spliced into a PRAGMA below
            raise ConfigurationError(f"sqlite synchronous must be NORMAL or FULL: {synchronous!r}")
        args: dict[str, Any] = {"timeout": busy_timeout}
        kwargs: dict[str, Any] = {"isolation_level": "AUTOCOMMIT"}
        if is_memory_sqlite(u):
            # One connection shared by every thread: separate connections would each see
            # their own empty database. The store's limiter runs one primitive at a time.
            args["check_same_thread"] = False
            kwargs["poolclass"] = StaticPool
        else:
            _create_private(u.database)
        engine = sa.create_engine(
            u, connect_args=args, hide_parameters=True, **_JSON_CODEC, **kwargs
        )
        event.listen(engine, "connect", _sqlite_pragmas(busy_timeout, synchronous))
        return engine
    if backend == "postgresql":
        if u.get_driver_name() != "psycopg":
            raise ConfigurationError(f"runkit's PostgreSQL store uses psycopg 3: {u!r}")
        if importlib.util.find_spec("psycopg") is None:
            raise ConfigurationError(
                "PostgreSQL needs its driver, which is not installed: "
                "pip install 'runkit[postgres]' (or make serve RUNTIME_EXTRAS=http,postgres)"
            )
        return sa.create_engine(
            u,
            pool_size=pool_size,
            max_overflow=pool_size,
            connect_args=pg_connect_args(u),
            hide_parameters=True,
            **_JSON_CODEC,
        )
    raise ConfigurationError(f"unsupported SQL URL {u!r}: use sqlite:/// or postgresql+psycopg://")


def pg_connect_args(url: str | URL) -> dict[str, Any]:
    """Connection options runkit adds to a PostgreSQL URL that does not set them."""
    u = make_url(normalize_url(url) if isinstance(url, str) else url)
    args: dict[str, Any] = {}
    if "connect_timeout" not in u.query:
        args["connect_timeout"] = 10
    if "application_name" not in u.query:
        args["application_name"] = "runkit"
    return args


def _create_private(database: str | None) -> None:
    """Create a new SQLite file readable by its owner alone (mode 0600): it holds run
    definitions and results. SQLite gives its -wal and -shm files the database's mode. An
    existing file keeps the mode its owner chose."""
    if not database or database.startswith("file:"):
        return  # a URI names its own options; SQLite creates it
    # There already, or no such directory (SQLite then says so itself): nothing to do.
    with contextlib.suppress(FileExistsError, FileNotFoundError, IsADirectoryError):
        os.close(os.open(database, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))


def _sqlite_pragmas(busy_timeout: float, synchronous: Synchronous) -> Any:
    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout = {int(busy_timeout * 1000)}")
            cursor.execute(f"PRAGMA synchronous = {synchronous}")
            cursor.execute("PRAGMA foreign_keys = ON")
        finally:
            cursor.close()

    return on_connect


def file_lock(engine: Engine) -> threading.Lock:
    """The in-process writer lock of an SQLite database file (one per file, shared by every
    store of the process); a private one for an in-memory database."""
    database = engine.url.database
    if is_memory_sqlite(engine.url) or not database:
        return threading.Lock()
    path = os.path.realpath(database)
    with _file_locks_guard:
        return _file_locks.setdefault(path, threading.Lock())


class Transactions:
    """Opens the store's transactions on an engine: one method per kind, so each primitive
    says whether it writes and the dialect's discipline is applied in one place.

    ``autocommit_engine``: the engine was built by :func:`build_engine`, whose SQLite
    connections are in driver autocommit mode already. A host's engine keeps its settings;
    the store's checkouts switch to autocommit for their duration (SQLAlchemy resets it).
    """

    def __init__(self, engine: Engine, *, autocommit_engine: bool = False) -> None:
        self.sqlite = engine.dialect.name == "sqlite"
        autocommit = engine.execution_options(isolation_level="AUTOCOMMIT")
        if self.sqlite:
            self._engine = engine if autocommit_engine else autocommit
            self._lock: threading.Lock | None = file_lock(engine)
            self._reader = self._engine
        else:
            self._engine = engine
            self._lock = None
            # One-statement reads need no transaction: autocommit spares BEGIN and ROLLBACK.
            self._reader = autocommit

    @contextmanager
    def write(self) -> Iterator[Connection]:
        """One write transaction (``BEGIN IMMEDIATE`` on SQLite), committed on success."""
        if self._lock is not None:
            with self._lock, self._engine.connect() as conn:
                conn.exec_driver_sql("BEGIN IMMEDIATE")
                yield conn
                conn.commit()
        else:
            with self._engine.begin() as conn:
                yield conn

    @contextmanager
    def snapshot(self) -> Iterator[Connection]:
        """A read transaction, for reads of more than one statement that must agree."""
        with self._engine.connect() as conn:
            if self.sqlite:
                conn.exec_driver_sql("BEGIN")
            else:
                # READ COMMITTED would give each statement its own snapshot.
                conn.execution_options(isolation_level="REPEATABLE READ")
            yield conn
            conn.rollback()

    def read(self) -> Connection:
        """A connection for one read statement, outside any transaction."""
        return self._reader.connect()

    def single(self) -> Connection:
        """A connection for one statement that is its own transaction (autocommit), on
        PostgreSQL only: a write that fits in one statement spares BEGIN and COMMIT."""
        assert not self.sqlite, "SQLite writes take the write lock: use write()"
        return self._reader.connect()


def unavailable(err: BaseException) -> bool:
    """Whether ``err`` means the database cannot be used right now."""
    if isinstance(err, exc.TimeoutError):  # no pooled connection came free in time
        return True
    if not isinstance(err, exc.DBAPIError):
        return False
    if err.connection_invalidated:
        return True
    if not isinstance(err, exc.OperationalError | exc.InterfaceError):
        return False
    orig = err.orig
    sqlstate = getattr(orig, "sqlstate", None)
    if type(orig).__module__.startswith("psycopg"):
        # No SQLSTATE: the client itself failed (refused, unreachable, closed socket).
        return sqlstate is None or str(sqlstate).startswith(_PG_UNAVAILABLE)
    message = str(orig).lower()
    return any(text in message for text in _SQLITE_UNAVAILABLE)


def retryable(err: BaseException) -> bool:
    """A serialization failure or deadlock on PostgreSQL: the transaction was rolled back
    whole, so running the primitive again is safe."""
    return isinstance(err, exc.DBAPIError) and getattr(err.orig, "sqlstate", None) in _PG_RETRY


def violates(err: exc.IntegrityError, constraint: str, column: str) -> bool:
    """Whether ``err`` is a unique violation of ``constraint`` (PostgreSQL names it) or of
    ``column`` (SQLite names the column: "UNIQUE constraint failed: table.column")."""
    diag = getattr(err.orig, "diag", None)
    if diag is not None:
        return getattr(diag, "constraint_name", None) == constraint
    return f"UNIQUE constraint failed: {column}" in str(err.orig)


def translate(err: BaseException) -> BaseException:
    if unavailable(err):
        return StorageUnavailable(f"database unavailable: {err}")
    return err
