"""The database the schema kinds read, through the data kinds' DuckDB sandbox: a DuckDB file
under the data root attached **read-only**, or DDL text loaded into a private in-memory
database. Its tables and columns (with row counts and a few sample rows) described for the
model and for the result, SQL checked by having DuckDB parse and plan it (``EXPLAIN``), and
a query run read-only for a preview.

The connection is the sandbox of :mod:`runkit.kinds.data.duckdb_sandbox` (files only under
the data root, no network, no extensions, locked settings, the host's limits), each
statement in a worker thread that a cancel or the host's statement timeout interrupts.
duckdb is imported inside the functions: this imports without it.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
import attrs

from ...authoring import Fatal
from ..data import duckdb_sandbox as sandbox
from ..data.root import current_root

#: Statement types DDL text may hold (rows too: INSERT, for a realistic sample).
DDL_TYPES = frozenset({"CREATE", "INSERT", "ALTER"})
#: The most tables described to the model, and the most characters of their description.
MAX_TABLES = 200
MAX_SCHEMA_CHARS = 100_000
#: Sample values longer than this are cut in the prompt.
MAX_SAMPLE_CHARS = 120
_ALIAS = "db"
_PARENT = re.compile(r"(?:^|[/\\'\"])\.\.(?:[/\\'\"]|$)")
_PLAIN = re.compile(r"^[a-z_][a-z0-9_]*$")


class SchemaError(Fatal):
    """The database has no table to describe, lacks a table the definition names, or is too
    large to describe to the model."""


@attrs.frozen
class Column:
    name: str
    type: str
    nullable: bool

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "type": self.type, "nullable": self.nullable}


@attrs.frozen
class Table:
    """A table (or view): ``name`` is ``table`` in the main schema, else ``schema.table``."""

    name: str
    schema: str
    table: str
    view: bool
    columns: tuple[Column, ...]
    row_count: int | None
    sample: tuple[dict[str, Any], ...] = ()

    @property
    def ref(self) -> str:
        return f"{quote(self.schema)}.{quote(self.table)}"


def quote(name: str) -> str:
    return name if _PLAIN.match(name) else '"' + name.replace('"', '""') + '"'


def describe(tables: Sequence[Table]) -> str:
    """``tables`` as DDL with comments (row counts, sample rows): what the model reads."""
    blocks = []
    for table in tables:
        what = "VIEW" if table.view else "TABLE"
        name = table.ref if table.schema != "main" else quote(table.table)
        count = "" if table.row_count is None else f"  -- {table.row_count} rows"
        lines = [f"CREATE {what} {name} ({count}"]
        for column in table.columns:
            null = "" if column.nullable else " NOT NULL"
            lines.append(f"  {quote(column.name)} {column.type}{null},")
        lines.append(");")
        for row in table.sample:
            lines.append("-- sample: " + json.dumps(row, ensure_ascii=False, default=str))
        blocks.append("\n".join(lines))
    text = "\n\n".join(blocks)
    if len(text) > MAX_SCHEMA_CHARS:
        raise SchemaError(
            f"the schema takes {len(text):,} characters to describe, more than "
            f"{MAX_SCHEMA_CHARS:,}: name fewer tables"
        )
    return text


def _short(value: Any) -> Any:
    value = sandbox.jsonable(value)
    if isinstance(value, str) and len(value) > MAX_SAMPLE_CHARS:
        return value[:MAX_SAMPLE_CHARS] + "…"
    return value


_parser: Any = None
_parser_lock = threading.Lock()


def statement_types(sql: str) -> list[str]:
    """The types of ``sql``'s statements (``SELECT``, ``CREATE``...), parsed, never run;
    duckdb's errors as they are (a ParserException for a syntax error)."""
    global _parser
    import duckdb

    with _parser_lock:
        if _parser is None:
            _parser = duckdb.connect(":memory:")
        return [s.type.name for s in _parser.extract_statements(sql)]


class Source:
    """An open, sandboxed, read-only view of the database (use :func:`open_source`)."""

    def __init__(self, con: Any, timeout: float) -> None:
        self.con = con
        self.timeout = timeout

    async def _call(self, fn: Any, where: str) -> Any:
        async def quiet() -> None:
            return None

        return await sandbox.call_interruptible(self.con, fn, self.timeout, where, 1, quiet)

    async def tables(self, names: Sequence[str] | None, sample_rows: int) -> list[Table]:
        """The tables (``names`` only, in that order, if given), with their columns, row
        counts (views: None) and up to ``sample_rows`` sample rows each."""
        found = await self._call(self._catalog, "reading the schema")
        if names is not None:
            by_name = {t.name.lower(): t for t in found}
            missing = [n for n in names if n.lower() not in by_name]
            if missing:
                known = ", ".join(t.name for t in found[:50]) or "(none)"
                raise SchemaError(f"no table named {', '.join(missing)} (tables: {known})")
            found = [by_name[n.lower()] for n in dict.fromkeys(names)]
        if not found:
            raise SchemaError("the database has no tables")
        if len(found) > MAX_TABLES:
            raise SchemaError(f"{len(found)} tables, more than {MAX_TABLES}: name fewer tables")
        done = []
        for table in found:
            count = None
            if not table.view:
                count = await self._call(
                    lambda t=table: self.con.execute(f"SELECT count(*) FROM {t.ref}").fetchone()[0],
                    f"counting the rows of {table.name}",
                )
            sample: tuple[dict[str, Any], ...] = ()
            if sample_rows:
                sample = await self._call(
                    lambda t=table: self._sample(t, sample_rows), f"sampling {table.name}"
                )
            done.append(attrs.evolve(table, row_count=count, sample=sample))
        return done

    def _catalog(self) -> list[Table]:
        rows = self.con.execute(
            "SELECT t.table_schema, t.table_name, t.table_type, c.column_name, c.data_type, "
            "c.is_nullable FROM information_schema.tables t JOIN information_schema.columns c "
            "ON c.table_catalog = t.table_catalog AND c.table_schema = t.table_schema "
            "AND c.table_name = t.table_name WHERE t.table_catalog = current_database() "
            "AND t.table_schema NOT IN ('information_schema', 'pg_catalog') "
            "ORDER BY t.table_schema <> 'main', t.table_schema, t.table_name, c.ordinal_position"
        ).fetchall()
        tables: dict[tuple[str, str], Table] = {}
        for schema, name, kind, column, type_, nullable in rows:
            key = (schema, name)
            if key not in tables:
                shown = name if schema == "main" else f"{schema}.{name}"
                tables[key] = Table(shown, schema, name, kind == "VIEW", (), None)
            col = Column(column, str(type_), nullable == "YES")
            tables[key] = attrs.evolve(tables[key], columns=(*tables[key].columns, col))
        return list(tables.values())

    def _sample(self, table: Table, rows: int) -> tuple[dict[str, Any], ...]:
        cursor = self.con.execute(f"SELECT * FROM {table.ref} LIMIT {int(rows)}")
        names = [d[0] for d in cursor.description or ()]
        return tuple(
            {n: _short(v) for n, v in zip(names, row, strict=False)} for row in cursor.fetchall()
        )

    async def check_query(self, sql: str) -> str | None:
        """None when ``sql`` is one read-only query that DuckDB parses and plans here;
        otherwise what is wrong, in words to show the model."""
        if _PARENT.search(sql):
            return "'..' in a path is refused: read files under the data root as '~/dir/x'"
        try:
            statements = await self._call(
                lambda: self.con.extract_statements(sql), "parsing the query"
            )
        except sandbox.SqlError as exc:
            return str(exc)
        if len(statements) != 1:
            return f"{len(statements)} statements: write exactly one query"
        kind = statements[0].type.name
        if kind != "SELECT":
            return f"a {kind} statement: only one read-only query (SELECT, WITH, FROM) is allowed"
        try:
            await self._call(lambda: self.con.execute("EXPLAIN " + sql).fetchall(), "planning")
        except (sandbox.SqlError, sandbox.SandboxRefused) as exc:
            return str(exc)
        return None

    async def preview(self, sql: str, rows: int) -> dict[str, Any]:
        """``sql`` run read-only: ``{"columns", "rows", "rowCount", "truncated"}``."""
        result = await self._call(
            lambda: sandbox.run_last(self.con, sql, None, None, rows), "running the query"
        )
        result.pop("outputTable", None)
        return dict(result)


@asynccontextmanager
async def open_source(database: str | None, ddl: str | None) -> AsyncIterator[Source]:
    """The sandboxed connection to ``database`` (a path under the data root, attached
    read-only, holding the file's lock so duckdb_transform's runs and these take turns on
    it) or to ``ddl`` loaded into memory; closed on the way out."""
    settings, data_root = sandbox.current_settings(), current_root()
    path = data_root.resolve(database, must_exist=True) if database is not None else None
    root = data_root.real_root()
    lock = None
    if path is not None:

        def opener(file: Path, root: Path, settings: sandbox.DuckdbSettings) -> Any:
            return sandbox.open_read_only(file, root, settings, _ALIAS)

        con, lock = await sandbox.connect(
            path, root, settings, settings.timeout_seconds, _no_wait, opener=opener
        )
    else:
        con = await anyio.to_thread.run_sync(sandbox.open_sandbox, None, root, settings)
    try:
        source = Source(con, settings.timeout_seconds)
        if ddl is not None and path is None:
            await source._call(lambda: _load(con, ddl), "loading the schema")
        yield source
    finally:
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(con.close)
        if lock is not None:
            lock.release()


async def _no_wait() -> None:
    """Waiting for a busy file says nothing in the log: the statement timeout bounds it."""


def _load(con: Any, ddl: str) -> None:
    for statement in con.extract_statements(ddl):
        con.execute(statement.query)
