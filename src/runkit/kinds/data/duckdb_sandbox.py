"""The DuckDB side of ``duckdb_transform``: the host's limits (:func:`configure_duckdb`, else
the ``RUNKIT_DUCKDB_*`` variables, read at every run), the locked-down connection, statements
in a worker thread that a timeout or a cancel interrupts, DuckDB's failures as run errors,
and JSON-safe results. duckdb is imported inside the functions: this imports without it."""

from __future__ import annotations

import base64
import contextlib
import json
import math
import os
import re
import threading
import time
from collections.abc import Awaitable, Callable, Mapping
from datetime import date, datetime, timedelta
from datetime import time as clock_time
from decimal import Decimal
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
import attrs

from ...authoring import Fatal
from ...domain.errors import ConfigurationError

ENV = {f: f"RUNKIT_DUCKDB_{f.upper()}" for f in ("memory_limit", "threads", "timeout_seconds")}
#: Under the root: DuckDB allows its temp directory by itself, so one outside would leak.
TEMP_DIR = ".duckdb-tmp"
#: Outside every allowed directory, so INSTALL is refused before it downloads anything
#: (with the home directory in the root, DuckDB's default would be inside it).
NO_EXTENSIONS = "/nonexistent/runkit-duckdb-extensions"
MAX_SAFE_INT = 2**53 - 1  # what a JSON reader's double holds exactly
STAGING = "__runkit_output"
HINT = "files only under the data root, named '~/path'; no network, extensions or settings"
#: DuckDB's words for a file held by another process, or by this one with other settings.
_BUSY = ("Could not set lock", "different configuration")
Hook = Callable[[], Awaitable[None]]


def _size(_: Any, attribute: attrs.Attribute[Any], value: str) -> None:
    if not re.fullmatch(r"\d+(\.\d+)?\s*([KMGT]i?B|B)", str(value).strip(), re.IGNORECASE):
        raise ValueError(f"{attribute.name}: a size such as '1GB' or '512MiB', not {value!r}")


@attrs.frozen
class DuckdbSettings:
    """What the host allows each run: DuckDB's ``memory_limit`` and ``threads``, and the
    statement timeout (a definition's ``timeoutSeconds`` may lower it, never raise it)."""

    memory_limit: str = attrs.field(default="1GB", validator=_size)
    threads: int = attrs.field(default=2, validator=attrs.validators.ge(1))
    timeout_seconds: float = attrs.field(default=300.0, validator=attrs.validators.gt(0.0))

    @classmethod
    def from_env(cls) -> DuckdbSettings:
        values: dict[str, Any] = {}
        for field, parse in (("memory_limit", str), ("threads", int), ("timeout_seconds", float)):
            if raw := os.environ.get(ENV[field], "").strip():
                try:
                    values[field] = parse(raw)
                    cls(**values)
                except (TypeError, ValueError) as exc:
                    raise ConfigurationError(f"{ENV[field]}={raw!r}: {exc}") from None
        return cls(**values)


_configured: DuckdbSettings | None = None


def configure_duckdb(settings: DuckdbSettings | None) -> None:
    """Set the DuckDB limits for the process (None: back to the environment)."""
    global _configured
    _configured = settings


def current_settings() -> DuckdbSettings:
    return _configured if _configured is not None else DuckdbSettings.from_env()


# ------------------------------------------------------------------ failures --------------
class _StatementError(Fatal):
    def __init__(self, message: str, *, statement: int | None = None) -> None:
        super().__init__(message)
        self.details = {} if statement is None else {"statement": statement}  # 1-based


class SqlError(_StatementError):
    """DuckDB could not run a statement (syntax, a missing table, a constraint, a cast)."""


class SandboxRefused(_StatementError):
    """A file outside the data root, the network, an extension, or a locked setting."""


class StatementTimeout(_StatementError):
    """A statement ran past the timeout and was interrupted."""


class OutOfMemory(_StatementError):
    """A statement needed more memory than the host's limit (and could not spill)."""


class DatabaseBusy(Fatal):
    """The database file stayed in use (by another run or process) past the timeout."""


def failure(exc: BaseException, where: str, statement: int | None) -> BaseException:
    """The run error for DuckDB's ``exc``, raised by what ``where`` describes."""
    import duckdb

    if isinstance(exc, duckdb.PermissionException) or "configuration has been locked" in str(exc):
        message = f"{where} was refused by the sandbox: {exc} ({HINT})"
        return SandboxRefused(message, statement=statement)
    kind = OutOfMemory if isinstance(exc, duckdb.OutOfMemoryException) else SqlError
    return kind(f"{where}: {exc}", statement=statement) if isinstance(exc, duckdb.Error) else exc


# ------------------------------------------------------------------ the connection --------
_file_locks: dict[str, threading.Lock] = {}
_file_locks_guard = threading.Lock()


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def open_sandbox(database: Path | None, root: Path, settings: DuckdbSettings) -> Any:
    """A connection to ``database`` (None: a private in-memory one) locked down to the real
    data root ``root``. Blocking: call it in a worker thread."""
    import duckdb

    config: dict[str, Any] = {"threads": settings.threads, "memory_limit": settings.memory_limit}
    off = ("autoinstall_known_extensions", "autoload_known_extensions", "allow_persistent_secrets")
    con = duckdb.connect(str(database or ":memory:"), config=config | dict.fromkeys(off, False))
    try:
        # In this order: DuckDB allows its temp directory by itself (so it goes inside the
        # root first), allowed_directories cannot be given at connect, and nothing can be
        # changed once the configuration is locked.
        con.execute(f"SET temp_directory = {_literal(str(root / TEMP_DIR))}")
        con.execute(f"SET home_directory = {_literal(str(root))}")  # '~/x.csv': a root file
        con.execute(f"SET extension_directory = {_literal(NO_EXTENSIONS)}")
        con.execute("SET python_enable_replacements = false")  # no scans of Python variables
        con.execute("SET allow_community_extensions = false")
        with contextlib.suppress(duckdb.Error):  # ICU is in the usual builds
            con.execute("SET TimeZone = 'UTC'")  # results do not depend on the host's zone
        con.execute(f"SET allowed_directories = [{_literal(str(root) + '/')}]")
        con.execute("SET enable_external_access = false")
        con.execute("SET lock_configuration = true")
    except BaseException:
        con.close()
        raise
    return con


def open_read_only(database: Path, root: Path, settings: DuckdbSettings, alias: str) -> Any:
    """A sandbox (in memory) with ``database`` attached read-only as ``alias`` and in use:
    for the kinds that only read a file (explain_schema, generate_query, create_flashboard).
    Give it to :func:`connect` as ``opener`` so they take turns with duckdb_transform."""
    con = open_sandbox(None, root, settings)
    try:
        name = '"' + alias.replace('"', '""') + '"'
        con.execute(f"ATTACH {_literal(str(database))} AS {name} (READ_ONLY)")
        con.execute(f"USE {name}")
    except BaseException:
        con.close()
        raise
    return con


Opener = Callable[[Path, Path, DuckdbSettings], Any]


async def connect(
    database: Path | None,
    root: Path,
    settings: DuckdbSettings,
    timeout: float,
    on_wait: Hook,
    *,
    opener: Opener | None = None,
) -> tuple[Any, threading.Lock | None]:
    """The sandboxed connection, and the file's lock until it closes: DuckDB would give a
    second connection in this process the first one's database, its settings locked, and
    refuses a file one of its instances has open to another ("Unique file handle
    conflict"). A file in use (here or by another process) is waited for up to ``timeout``,
    ``on_wait`` once. ``opener(database, root, settings)`` opens it (default:
    :func:`open_sandbox` with the file as its database)."""
    deadline, waited = time.monotonic() + timeout, False
    with _file_locks_guard:
        lock = _file_locks.setdefault(str(database), threading.Lock()) if database else None
    while True:
        why = f"{database and database.name} was in use by another run of this process"
        if lock is None or lock.acquire(blocking=False):
            try:
                if opener is not None and database is not None:
                    return await anyio.to_thread.run_sync(opener, database, root, settings), lock
                return await anyio.to_thread.run_sync(open_sandbox, database, root, settings), lock
            except BaseException as exc:  # a cancel too: the lock must not stay taken
                if lock is not None:
                    lock.release()
                if not isinstance(exc, Exception):
                    raise
                if not any(sign in str(exc) for sign in _BUSY):
                    raise failure(exc, "opening the database", None) from None
                why = f"{database and database.name} was held: {exc}"
        if time.monotonic() > deadline:
            raise DatabaseBusy(f"{why} for more than {timeout:g} s")
        if not waited:
            waited = True
            await on_wait()
        await anyio.sleep(0.05)


async def call_interruptible(
    con: Any, fn: Callable[[], Any], timeout: float, where: str, statement: int, on_slow: Hook
) -> Any:
    """``fn()`` in a worker thread. A cancel of the caller's scope or ``timeout`` calls
    ``con.interrupt()`` at once, then waits for the thread (an abandoned one would go on
    writing after the run is reported stopped). ``on_slow``: awaited after 0.25 s."""
    outcome: list[tuple[bool, Any]] = []
    finished, interrupted = anyio.Event(), False

    async def work() -> None:
        try:  # shielded: returns when the thread ends, whatever is cancelled meanwhile
            outcome.append((True, await anyio.to_thread.run_sync(fn)))
        except Exception as exc:  # raised below, once the task group is done
            outcome.append((False, exc))
        finally:
            finished.set()

    async def report() -> None:
        await anyio.sleep(0.25)
        with anyio.CancelScope(shield=True):  # never cut a store write in half
            await on_slow()

    with anyio.move_on_after(timeout) as limit:
        async with anyio.create_task_group() as tg:
            tg.start_soon(work)
            tg.start_soon(report)
            try:
                await finished.wait()
            finally:
                if not finished.is_set():
                    interrupted = True
                    con.interrupt()
            tg.cancel_scope.cancel()
    if limit.cancelled_caught and (interrupted or not outcome):
        message = f"{where} ran past the timeout of {timeout:g} s and was interrupted"
        raise StatementTimeout(message, statement=statement)
    ok, value = outcome[0]
    if ok:
        return value
    raise failure(value, where, statement) from None


def run_last(con: Any, query: str, args: Any, output: Any, limit: int) -> dict[str, Any]:
    """Run the last statement, write its rows to ``output`` (table, mode) if given, and
    return the result, its first ``limit`` rows JSON-safe. Blocking: in the worker thread."""
    if output is None:
        con.execute(query, args)
        columns, rows = _preview(con, limit)
        count = len(rows)
        while columns and (chunk := con.fetchmany(10_000)):  # counted, never kept
            count += len(chunk)
    else:
        table = ".".join(f'"{part}"' for part in output.table.split("."))  # checked names
        query = query.strip().rstrip(";")  # wrapped as CREATE ... AS <query>
        if output.mode == "replace":
            (count,) = con.execute(f"CREATE OR REPLACE TABLE {table} AS {query}", args).fetchone()
            con.execute(f"FROM {table} LIMIT {limit}")
        else:  # staged, so that the preview shows the rows added, not the table's first ones
            con.execute(f"CREATE OR REPLACE TEMP TABLE {STAGING} AS {query}", args)
            con.execute(f"CREATE TABLE IF NOT EXISTS {table} AS FROM {STAGING} WITH NO DATA")
            (count,) = con.execute(f"INSERT INTO {table} BY NAME FROM {STAGING}").fetchone()
            con.execute(f"FROM {STAGING} LIMIT {limit}")  # the temp table goes with the session
        columns, rows = _preview(con, limit)
    result = {"columns": columns, "rows": rows, "rowCount": count}
    return result | {"truncated": count > len(rows), "outputTable": output and output.table}


def _preview(con: Any, limit: int) -> tuple[list[dict[str, str]], list[list[Any]]]:
    columns = [{"name": d[0], "type": str(d[1])} for d in con.description or ()]
    rows = con.fetchmany(limit) if limit and columns else []
    return columns, [[jsonable(v) for v in row] for row in rows]


# ------------------------------------------------------------------ JSON-safe values ------
def jsonable(value: Any) -> Any:
    """``value`` as DuckDB's Python client gives it, JSON-safe: integers past 2**53,
    decimals, NaN and infinities as strings, times as ISO 8601, blobs as base64."""
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else "Infinity" if value > 0 else "-Infinity"
    if value is None or isinstance(value, bool | str | float):
        return value
    if isinstance(value, int):
        return value if -MAX_SAFE_INT <= value <= MAX_SAFE_INT else str(value)
    if isinstance(value, Decimal):
        return format(value, "f")  # never exponent notation
    if isinstance(value, datetime | date | clock_time):
        return value.isoformat()
    if isinstance(value, timedelta):
        return iso_duration(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, Mapping):  # STRUCT and MAP; JSON keys are strings: 1 -> "1"
        return {_key(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):  # LIST and ARRAY
        return [jsonable(v) for v in value]
    return str(value)  # UUID, and whatever a later DuckDB adds


def _key(key: Any) -> str:
    return key if isinstance(key, str) else json.dumps(jsonable(key))


def iso_duration(delta: timedelta) -> str:
    """An INTERVAL (which Python receives with months as 30 days) as ISO 8601: P1DT2H."""
    sign, delta = ("-", -delta) if delta < timedelta(0) else ("", delta)
    hours, minutes, whole = delta.seconds // 3600, delta.seconds // 60 % 60, delta.seconds % 60
    seconds = f"{whole}.{delta.microseconds:06d}".rstrip("0") if delta.microseconds else whole
    clock = "".join(f"{n}{unit}" for n, unit in ((hours, "H"), (minutes, "M"), (seconds, "S")) if n)
    text = (f"{delta.days}D" if delta.days else "") + (f"T{clock}" if clock else "")
    return f"{sign}P{text}" if text else "PT0S"
