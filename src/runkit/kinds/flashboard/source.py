"""The database a dashboard reads: a DuckDB file under the data root, attached **read-only**
to a connection locked down by :mod:`..data.duckdb_sandbox` (files only under the root, no
network, no extensions, the host's limits), and the queries it runs, one ``SELECT`` each.

The file is attached as the catalog named like its stem (``sales.duckdb``: ``sales``), as
``duckdb_transform`` names it, and made the default (``USE``). duckdb is imported inside the
functions: this imports without it.
"""

from __future__ import annotations

import functools
import re
import threading
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
import attrs

from ..data import duckdb_sandbox as sandbox

#: A ``..`` path segment: paths under the root never need one, and DuckDB 2.0.1 folds it
#: away before its sandbox checks a path (the reason duckdb_transform refuses it too).
PARENT = re.compile(r"(?:^|[/\\'\"])\.\.(?:[/\\'\"]|$)")
#: Catalog names DuckDB has already: a file named so is attached as ``database``.
_TAKEN = frozenset({"memory", "system", "temp", "main"})
MAX_TABLES = 100
MAX_COLUMNS = 60
Hook = Callable[[], Awaitable[None]]


# ------------------------------------------------------------------ statements ------------
_parser: Any = None
_parser_lock = threading.Lock()


def sql_problem(sql: str) -> str | None:
    """Why ``sql`` is not one read-only query (``SELECT``, ``FROM``, ``WITH``, ``VALUES``,
    ``SHOW``, ``DESCRIBE``, ``SUMMARIZE``), or None. Parsed, never run."""
    global _parser
    import duckdb

    if PARENT.search(sql):
        return "'..' in a path is refused: name files from the data root, '~/dir/x'"
    with _parser_lock:
        if _parser is None:
            _parser = duckdb.connect(":memory:")
        try:
            statements = list(_parser.extract_statements(sql))
        except duckdb.Error as exc:
            return str(exc)
    if len(statements) != 1:
        return f"one query is needed, not {len(statements)} statements"
    if statements[0].type.name != "SELECT":
        return f"a query (SELECT, FROM, WITH, VALUES) is needed, not a {statements[0].type.name}"
    return None


# ------------------------------------------------------------------ the connection --------
def catalog_name(database: Path) -> str:
    stem = database.stem
    return "database" if stem.lower() in _TAKEN or not stem else stem


def _identifier(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


async def open_read_only(
    database: Path, root: Path, settings: sandbox.DuckdbSettings, timeout: float, on_wait: Hook
) -> tuple[Any, threading.Lock]:
    """A sandboxed connection with ``database`` (a real path under the real ``root``)
    attached read-only as its :func:`catalog_name`, and the file's lock (release it after
    closing the connection): duckdb_transform's runs and these take turns on a file. A file
    in use is waited for up to ``timeout`` (``on_wait``: awaited once), then
    :class:`~..data.duckdb_sandbox.DatabaseBusy`."""
    alias = catalog_name(database)

    def opener(path: Path, root: Path, settings: sandbox.DuckdbSettings) -> Any:
        return sandbox.open_read_only(path, root, settings, alias)

    con, lock = await sandbox.connect(database, root, settings, timeout, on_wait, opener=opener)
    assert lock is not None  # a file always has one
    return con, lock


async def close(con: Any, lock: threading.Lock) -> None:
    with anyio.CancelScope(shield=True):
        try:
            await anyio.to_thread.run_sync(con.close)
        finally:
            lock.release()


# ------------------------------------------------------------------ what it holds ---------
@attrs.frozen
class Table:
    """A table or view of the database: ``schema.name``, its columns (name, DuckDB type)
    and DuckDB's estimate of its rows (None for a view)."""

    name: str
    columns: tuple[tuple[str, str], ...]
    rows: int | None = None

    def describe(self) -> str:
        size = "" if self.rows is None else f" (about {self.rows:,} rows)"
        columns = ", ".join(f"{_identifier(n)} {t}" for n, t in self.columns)
        return f"- {self.name}{size}: {columns}"


def _tables(con: Any) -> list[Table]:
    rows = con.execute(
        "SELECT c.schema_name, c.table_name, c.column_name, c.data_type, t.estimated_size "
        "FROM duckdb_columns() c LEFT JOIN duckdb_tables() t ON t.database_name = "
        "c.database_name AND t.schema_name = c.schema_name AND t.table_name = c.table_name "
        "WHERE c.database_name = current_database() AND NOT c.internal "
        "ORDER BY c.schema_name, c.table_name, c.column_index"
    ).fetchall()
    tables: dict[str, tuple[list[tuple[str, str]], int | None]] = {}
    for schema, table, column, type_, size in rows:
        name = table if schema == "main" else f"{schema}.{table}"
        if name not in tables and len(tables) >= MAX_TABLES:
            continue
        columns, _ = tables.setdefault(name, ([], size))
        if len(columns) < MAX_COLUMNS:
            columns.append((column, type_))
    return [Table(n, tuple(cols), size) for n, (cols, size) in tables.items()]


async def tables(con: Any) -> list[Table]:
    """The tables and views of the attached database (at most 100, 60 columns each)."""
    return await anyio.to_thread.run_sync(_tables, con)


# ------------------------------------------------------------------ queries ---------------
async def run_query(
    con: Any, sql: str, limit: int, timeout: float, where: str, index: int, on_slow: Hook
) -> dict[str, Any]:
    """``{"columns", "rows", "rowCount", "truncated"}``: the first ``limit`` rows of
    ``sql``, JSON-safe, and how many it returned. Interrupted after ``timeout``."""
    problem = sql_problem(sql)  # checked at create time; again for a model's queries
    if problem is not None:
        raise sandbox.SqlError(f"{where}: {problem}", statement=index)
    call = functools.partial(sandbox.run_last, con, sql, None, None, limit)
    result: dict[str, Any] = await sandbox.call_interruptible(
        con, call, timeout, where, index, on_slow
    )
    result.pop("outputTable", None)
    return result
