"""The store's native asyncio path on PostgreSQL: the same primitives, the same SQLAlchemy
statements, executed on psycopg's async connections without SQLAlchemy's execution layer
and without a worker thread.

Why. Profiles of the hot primitives (create, claim, report, append) put most of each call
in two places: the hop to a worker thread and back, and SQLAlchemy's per-execution Python
(compiled-cache lookup, parameter processing, result metadata, row objects). The database's
own work is a fraction of it. Here each statement is compiled **once** to its SQL text and
its type processors, and each call only binds values, sends them (psycopg prepares
statements it sees often) and wraps the rows.

How, without a second copy of the store. The primitives are written as synchronous
functions over a SQLAlchemy-like connection (``Transactions`` hands them one). This module
runs those same functions inside a greenlet (SQLAlchemy's ``greenlet_spawn``), on a
:class:`DriverConnection` whose ``execute`` awaits psycopg through ``await_only``: the
function reads as blocking code and yields to the event loop at each round trip. Only the
subset of ``Connection`` the store uses is offered; anything else raises.

Where. asyncio only (trio, and any call made outside an event loop, takes the thread path,
which stays the reference), on engines the store built itself from a URL (a host's engine
keeps its own settings and events, so it keeps SQLAlchemy's path too). Each primitive runs
shielded from cancellation, as the thread path does: a cancelled caller never leaves a
transaction half-done; the primitive commits or rolls back, and the caller then sees the
cancellation.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import re
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any, TypeVar

import anyio
import sqlalchemy as sa
from sqlalchemy import exc
from sqlalchemy.engine import Dialect, Engine
from sqlalchemy.util import await_only, greenlet_spawn

from .arrays import literal as array_literal
from .pool import Pool

T = TypeVar("T")
Params = Mapping[str, Any]

#: ``col IN (__[POSTCOMPILE_x])``: a list parameter, sent as one array instead.
_EXPANDING = re.compile(r"(NOT )?IN \(__\[POSTCOMPILE_(\w+)\]\)")
#: A bound value with its cast, as SQLAlchemy's psycopg dialect renders it.
_BOUND = re.compile(
    r"%\((\w+)\)s::(TIMESTAMP WITH TIME ZONE|VARCHAR(?:\(\d+\))?|BIGINT|INTEGER|SMALLINT|UUID"
    r"|JSONB?|BOOLEAN|TEXT|FLOAT|DOUBLE PRECISION|NUMERIC)\b"
)
#: Compiled statements kept: the store's statements are prebuilt objects (a few dozen
#: shapes); statements built per call (a keyed claim's) come and go through here.
_CACHE_SIZE = 512


def available() -> bool:
    """Whether greenlet is installed (the ``postgres`` extra has it; without it the store
    keeps to worker threads)."""
    return importlib.util.find_spec("greenlet") is not None


class Row(tuple[Any, ...]):
    """A result row as the store reads them: by index, by ``_mapping[name]``, by attribute."""

    _keys: tuple[str, ...] = ()
    _index: dict[str, int] = {}

    @property
    def _mapping(self) -> dict[str, Any]:
        return dict(zip(self._keys, self, strict=True))

    def __getattr__(self, name: str) -> Any:
        try:
            return self[self._index[name]]
        except KeyError:
            raise AttributeError(name) from None


class Result:
    """The rows of one execution, with the accessors the store uses."""

    __slots__ = ("_rows",)

    def __init__(self, rows: list[Row]) -> None:
        self._rows = rows

    def __iter__(self) -> Iterator[Row]:
        return iter(self._rows)

    def all(self) -> list[Row]:
        return self._rows

    def first(self) -> Row | None:
        return self._rows[0] if self._rows else None

    def scalar_one_or_none(self) -> Any:
        if len(self._rows) > 1:
            raise exc.MultipleResultsFound("more than one row")
        return self._rows[0][0] if self._rows else None

    def scalar_one(self) -> Any:
        if not self._rows:
            raise exc.NoResultFound("expected one row")
        if len(self._rows) > 1:
            raise exc.MultipleResultsFound("more than one row")
        return self._rows[0][0]


class Statement:
    """One SQLAlchemy statement compiled for psycopg: its SQL, the values of the binds the
    statement carries itself, its bind and result processors, its row class."""

    def __init__(
        self, stmt: sa.ClauseElement, dialect: Dialect, columns: tuple[str, ...] | None
    ) -> None:
        # SQLAlchemy's compiler, not its execution layer: SQL text, binds, processors.
        # A bare INSERT takes its column list from the parameters, as execute() does.
        compiled: Any = stmt.compile(
            dialect=dialect, column_keys=list(columns) if columns is not None else None
        )
        arrays: set[str] = set()

        def as_array(m: re.Match[str]) -> str:
            arrays.add(m.group(2))
            return f"{'<> ALL' if m.group(1) else '= ANY'}(%({m.group(2)})s)"

        self.sql = _EXPANDING.sub(as_array, compiled.string)
        if "POSTCOMPILE" in self.sql:
            raise NotImplementedError(f"the driver path cannot send this statement: {self.sql}")
        self.arrays = frozenset(arrays)
        self._arrays: tuple[str, tuple[str, ...]] | tuple[()] | None = None
        self.base = dict(compiled.construct_params(_check=False))
        self.processors: dict[str, Callable[[Any], Any]] = dict(compiled._bind_processors)
        returned = compiled._result_columns
        self.returns = bool(returned)
        keys = tuple(c.keyname for c in returned)
        self.row = type(
            "Row", (Row,), {"_keys": keys, "_index": {k: i for i, k in enumerate(keys)}}
        )
        self.results = [
            (i, proc)
            for i, c in enumerate(returned)
            if (proc := c.type._cached_result_processor(dialect, None)) is not None
        ]

    def as_arrays(self) -> tuple[str, tuple[str, ...]] | None:
        """This statement for many parameter sets at once, if it has that shape: a bare
        ``INSERT ... VALUES (...)`` becomes ``INSERT ... SELECT * FROM unnest(arrays)``, an
        ``UPDATE ... SET ... WHERE`` takes its values from ``unnest`` in a ``FROM``. Returns
        the SQL and the parameter names (one array each), or None. What RETURNING gives is
        then the rows written, in no promised order: callers match them by key (and an
        UPDATE must not name one row twice)."""
        if self._arrays is not None:
            return self._arrays or None
        names = tuple(m.group(1) for m in _BOUND.finditer(self.sql))
        arrays = ", ".join(f"%({n})s::{t}[]" for n, t in _BOUND.findall(self.sql))
        sql = None
        if len(set(names)) == len(names) and not self.arrays:
            head, values, tail = self.sql.partition(" VALUES (")
            if self.sql.startswith("INSERT INTO ") and values:
                rest = _BOUND.sub("", tail)  # VALUES holds only bound values: ", , )..."
                rest = rest[rest.index(")") + 1 :]
                sql = f"{head} SELECT * FROM unnest({arrays}){rest}"
            elif self.sql.startswith("UPDATE ") and " WHERE " in self.sql:
                body, _, where = self.sql.partition(" WHERE ")
                columns = ", ".join(names)
                refer = _BOUND.sub(lambda m: f"_v.{m.group(1)}", body)
                where = _BOUND.sub(lambda m: f"_v.{m.group(1)}", where)
                sql = f"{refer} FROM unnest({arrays}) AS _v({columns}) WHERE {where}"
        self._arrays = (sql, names) if sql is not None else ()
        return self._arrays or None

    def bind(self, given: Mapping[str, Any] | None) -> dict[str, Any]:
        """:meth:`params`, a value its type refuses failing as in SQLAlchemy's execute."""
        try:
            return self.params(given)
        except Exception as err:
            raise exc.StatementError(str(err), self.sql, None, err) from err

    def column(self, name: str, given: Sequence[Mapping[str, Any]]) -> list[Any]:
        """Parameter ``name``'s values across the sets ``given``, processed as
        :meth:`params` processes them: a statement over arrays binds a column at a time,
        with no dict a row (that was most of binding a batch)."""
        known = name in self.base
        default = self.base.get(name)
        process = self.processors.get(name)
        try:
            if process is None:
                return [p.get(name, default) for p in given]
            if not known:
                return [process(p[name]) if name in p else None for p in given]
            values = [p.get(name, default) for p in given]
            first = values[0] if values else None
            if len(values) > 1 and _alike(first) and values.count(first) == len(values):
                # One value throughout (a batch's time, its NULLs, its empty objects):
                # processed once.
                return [process(first)] * len(values)
            return [process(v) for v in values]
        except Exception as err:
            raise exc.StatementError(str(err), self.sql, None, err) from err

    async def fetch(self, conn: Any, values: dict[str, Any], cursor: Any = None) -> Result:
        """Execute with bound ``values`` on psycopg's ``conn`` (on ``cursor``, if given);
        the rows, if it returns any."""
        if cursor is None:
            cursor = await conn.execute(self.sql, values)
        else:
            await cursor.execute(self.sql, values)
        return Result(self.rows(await cursor.fetchall()) if self.returns else [])

    def params(self, given: Mapping[str, Any] | None) -> dict[str, Any]:
        values = dict(self.base)
        if given:
            values.update(given)
        for name, process in self.processors.items():
            if name not in values:
                continue
            value = values[name]
            if name in self.arrays:  # a list parameter: each item, as SQLAlchemy does
                values[name] = None if value is None else [process(v) for v in value]
            else:  # None too: JSON's processor writes it as JSON null, as SQLAlchemy does
                values[name] = process(value)
        for name in self.arrays:
            if name not in self.processors and isinstance(values.get(name), tuple):
                values[name] = list(values[name])
        return values

    def rows(self, raw: Sequence[tuple[Any, ...]]) -> list[Row]:
        make = self.row
        if not self.results:
            return [make(r) for r in raw]
        out = []
        for r in raw:
            values = list(r)
            for i, process in self.results:
                values[i] = process(values[i])
            out.append(make(values))
        return out


def _alike(value: Any) -> bool:
    """Whether every value equal to ``value`` is processed to the same parameter: not so for
    a number (``1 == True == 1.0``) or a non-empty container (``{"a": 1} == {"a": True}``)."""
    kind = type(value)
    return value is None or kind is str or kind is datetime or (kind in (dict, list) and not value)


class DriverConnection:
    """The part of SQLAlchemy's ``Connection`` the store's primitives use, on one psycopg
    async connection. Methods block the calling greenlet, not the event loop."""

    def __init__(self, conn: Any, path: DriverPath) -> None:
        self._conn = conn
        self._path = path
        self.dialect = path.dialect

    def execute(
        self,
        stmt: Any,
        params: Params | Sequence[Params] | None = None,
    ) -> Result:
        first: Any = params[0] if isinstance(params, Sequence) and params else params
        compiled = self._path.compiled(stmt, first)
        try:
            if isinstance(params, Sequence):  # executemany: one unnest, or a pipeline
                return await_only(self._many(compiled, params))
            return await_only(compiled.fetch(self._conn, compiled.bind(params)))
        except self._path.errors as err:
            raise self._path.wrap(err, compiled.sql) from err

    async def _many(self, compiled: Statement, params: Sequence[Params]) -> Result:
        if len(params) <= 1:
            return (
                await compiled.fetch(self._conn, compiled.bind(params[0])) if params else Result([])
            )
        arrays = compiled.as_arrays()
        if arrays is not None:  # one statement, one array a column, in place of N
            sql, names = arrays
            columns: dict[str, Any] = {}
            for name in names:
                values = compiled.column(name, params)
                text = array_literal(values)  # one string, not a list dumped item by item
                columns[name] = values if text is None else text
            cur = await self._conn.execute(sql, columns)
            return Result(compiled.rows(await cur.fetchall()) if compiled.returns else [])
        # A shape unnest cannot take: psycopg's executemany (it pipelines the statements).
        bound = [compiled.bind(p) for p in params]
        async with self._conn.cursor() as cur:
            await cur.executemany(compiled.sql, bound, returning=compiled.returns)
            if not compiled.returns:
                return Result([])
            rows: list[Row] = []
            while True:
                rows.extend(compiled.rows(await cur.fetchall()))
                if not cur.nextset():
                    return Result(rows)

    def exec_driver_sql(self, sql: str) -> None:
        raise NotImplementedError("the driver path runs the store's statements only")


class DriverTransactions:
    """``Transactions`` on the driver path: the same four kinds of connection."""

    sqlite = False

    def __init__(self, path: DriverPath) -> None:
        self._path = path

    @contextmanager
    def _connection(self, begin: str | None) -> Iterator[DriverConnection]:
        pool = self._path.pool
        conn = await_only(self._path.checkout())
        pipeline = None
        try:
            if begin is not None and self._path.pipelines:
                # Pipeline mode: BEGIN travels with the first statement, and statements whose
                # result is not read travel with the next one or with COMMIT, so a claim or a
                # report costs two round trips, not one per statement. A failed statement
                # aborts the rest; its error is raised at the next read or at the end.
                pipeline = conn.pipeline()
                await_only(pipeline.__aenter__())
            if begin is not None:
                self._send(conn, begin)
            yield DriverConnection(conn, self._path)
            if begin is not None:
                self._send(conn, "COMMIT" if begin == "BEGIN" else "ROLLBACK")
            if pipeline is not None:
                done, pipeline = pipeline, None
                self._sync(done)
        except BaseException as err:
            if pipeline is not None:
                with contextlib.suppress(Exception):  # ours is the error to raise
                    await_only(pipeline.__aexit__(type(err), err, err.__traceback__))
            if begin is not None and not conn.closed:
                with contextlib.suppress(Exception):
                    await_only(conn.execute("ROLLBACK"))
            raise
        finally:
            await_only(pool.put(conn))

    def _sync(self, pipeline: Any) -> None:
        try:
            await_only(pipeline.__aexit__(None, None, None))
        except self._path.errors as failed:
            raise self._path.wrap(failed, "(pipeline)") from failed

    def _send(self, conn: Any, sql: str) -> None:
        try:
            await_only(conn.execute(sql))
        except self._path.errors as err:
            raise self._path.wrap(err, sql) from err

    def write(self) -> Any:
        return self._connection("BEGIN")

    def snapshot(self) -> Any:
        return self._connection("BEGIN ISOLATION LEVEL REPEATABLE READ")

    def read(self) -> Any:
        return self._connection(None)

    def single(self) -> Any:
        return self._connection(None)


class DriverPath:
    """The driver path of one store: a :class:`Pool` on the store's database, made on the
    first call from an asyncio event loop and bound to that loop."""

    def __init__(
        self,
        engine: Engine,
        *,
        pool_size: int,
        connect_args: Mapping[str, Any],
        on_connect: Callable[[Any], None] | None = None,
    ) -> None:
        import psycopg

        self.dialect = engine.dialect
        self.errors = psycopg.Error
        #: Pipeline mode needs libpq 14 (psycopg-binary bundles one); older: a round trip
        #: per statement, as before.
        self.pipelines = bool(psycopg.AsyncPipeline.is_supported())
        _, params = engine.dialect.create_connect_args(engine.url)
        #: ``psycopg.AsyncConnection.connect``'s arguments (the store's LISTEN uses them too).
        self.connect_kwargs: dict[str, Any] = {**params, **connect_args, "autocommit": True}
        self._pool_size = pool_size
        self._on_connect = on_connect
        self._pool: Pool | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._compiled: OrderedDict[tuple[int, tuple[str, ...] | None], tuple[Any, Statement]] = (
            OrderedDict()
        )
        self.tx = DriverTransactions(self)

    def wrap(self, err: Exception, sql: str) -> exc.StatementError:
        """A psycopg error as SQLAlchemy raises it on the thread path (parameters hidden:
        they may hold secrets), so the store's error handling sees one kind of error."""
        return exc.DBAPIError.instance(
            sql, None, err, self.errors, hide_parameters=True, dialect=self.dialect
        )

    def usable(self) -> bool:
        """Whether this call may take the driver path: on asyncio, on the pool's loop."""
        try:
            loop = asyncio.get_running_loop()  # under trio there is none
        except RuntimeError:
            return False
        return self._loop is None or self._loop is loop

    @property
    def pool(self) -> Pool:
        assert self._pool is not None
        return self._pool

    def _start(self) -> Pool:
        if self._pool is None:
            self._pool = Pool(self.connect_kwargs, self._pool_size, on_connect=self._on_connect)
            self._loop = asyncio.get_running_loop()
        return self._pool

    async def checkout(self) -> Any:
        """A connection of the pool (give it back with ``pool.put``)."""
        try:
            return await self.pool.get()
        except self.errors as err:  # could not connect: as the thread path says it
            raise self.wrap(err, "(connect)") from err

    async def run(self, fn: Callable[[], T]) -> T:
        self._start()
        # Shielded: like a worker thread, the primitive runs to its commit or rollback.
        with anyio.CancelScope(shield=True):
            result: T = await greenlet_spawn(fn)
        return result

    async def statement(self, stmt: Any, params: Params) -> Result:
        """``stmt`` alone, in autocommit, awaited on a connection of the pool: no greenlet
        (for a primitive that is one statement). Shielded, as :meth:`run` is."""
        pool = self._start()
        compiled = self.compiled(stmt, params)
        values = compiled.bind(params)
        with anyio.CancelScope(shield=True):
            conn = await self.checkout()
            try:
                result = await compiled.fetch(conn, values, pool.cursor(conn))
            except self.errors as err:
                raise self.wrap(err, compiled.sql) from err
            finally:
                await pool.put(conn)
        return result

    async def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None and self._loop is asyncio.get_running_loop():
            await pool.clear()
        self._loop = None

    def compiled(self, stmt: Any, params: Params | None) -> Statement:
        columns = None
        if isinstance(stmt, sa.Insert) and stmt._values is None:
            columns = tuple(params or ())
        key = (id(stmt), columns)
        hit = self._compiled.get(key)
        if hit is not None and hit[0] is stmt:
            self._compiled.move_to_end(key)
            return hit[1]
        compiled = Statement(stmt, self.dialect, columns)
        self._compiled[key] = (stmt, compiled)  # holding stmt keeps its id from reuse
        if len(self._compiled) > _CACHE_SIZE:
            self._compiled.popitem(last=False)
        return compiled
