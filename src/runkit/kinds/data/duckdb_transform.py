"""``duckdb_transform``: SQL run by DuckDB in a sandbox (:mod:`.duckdb_sandbox`: files only
under the data root, no network, no extensions, the host's limits, a statement timeout), on
a file under the root or in memory; the last statement's rows as the result, and written to
a table if asked. Without ``runkit[duckdb]`` the kind is listed; creating a run is a 422."""

from __future__ import annotations

import functools
import importlib.util
import re
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal

import anyio
import anyio.to_thread
import attrs
from cattrs.errors import AttributeValidationNote, ClassValidationError

from ...authoring import Kind, KindChecks, RunContext
from ...domain.errors import ErrorDetail, ValidationError
from . import duckdb_sandbox as sandbox
from .root import current_root

EXTRA = "runkit[duckdb]"
MEMORY = ":memory:"
MAX_PREVIEW_ROWS = 1000
MAX_SQL = 1_000_000
#: ``name``, ``schema.name`` or ``database.schema.name``; runkit quotes each part.
TABLE = r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*){0,2}$"
_PARAMETER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
#: A ``..`` path segment in the SQL. DuckDB 2.0.1 checks a path with ``..`` folded away
#: first, so ``'~/link/../x'`` through a symlink to a directory outside the root would reach
#: the link target's parent; paths under the root never need ``..``.
_PARENT = re.compile(r"(?:^|[/\\'\"])\.\.(?:[/\\'\"]|$)")


def _check_sql(_: Any, attribute: attrs.Attribute[Any], value: str) -> None:
    if _PARENT.search(value):
        raise ValueError("'..' in a path is refused: name files from the data root, '~/dir/x'")


def _check_parameters(_: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    if isinstance(value, list):
        return
    if not isinstance(value, dict):
        raise ValueError("a list ($1, $2, ? in the SQL) or an object ($name)")
    bad = [k for k in value if not _PARAMETER.match(k) or k.isdigit()]
    if bad:
        raise ValueError(f"{bad[0]!r} is not a parameter name (letters, digits, _)")


@attrs.frozen
class _TableName:
    """Raises as cattrs does for a field, so the 422 points at ``output.table`` (an attrs
    validator's error in a nested config points at ``output``); the schema shows pattern."""

    pattern: re.Pattern[str] = re.compile(TABLE)

    def __call__(self, _: Any, attribute: attrs.Attribute[Any], value: str) -> None:
        if not self.pattern.match(value):
            error = ValueError(f"{value!r} is not a table name: name, schema.name, db.schema.name")
            error.add_note(AttributeValidationNote(f"OutputConfig.{attribute.name}", "table", str))
            raise ClassValidationError("While structuring OutputConfig", [error], OutputConfig)


@attrs.frozen
class OutputConfig:
    """The table the last statement's rows go to: ``replace`` makes it anew, ``append``
    adds the rows (matching columns by name; the table is made if missing)."""

    table: str = attrs.field(validator=_TableName())
    mode: Literal["replace", "append"] = "replace"


@attrs.frozen
class DuckdbTransformConfig:
    """``{database, sql, parameters, output, previewRows, timeoutSeconds}``; only ``sql`` is
    required. ``database``: a file under the data root, or ``:memory:``. ``parameters``: a
    list for ``$1``/``?`` or an object for ``$name``, given to each statement that uses
    them. ``timeoutSeconds`` bounds each statement (null: the host's limit, also its cap)."""

    sql: str = attrs.field(
        validator=attrs.validators.and_(
            attrs.validators.min_len(1), attrs.validators.max_len(MAX_SQL), _check_sql
        )
    )
    database: str = MEMORY
    parameters: Any = attrs.field(factory=list, validator=_check_parameters)
    output: OutputConfig | None = None
    preview_rows: int = attrs.field(
        default=20, validator=[attrs.validators.ge(0), attrs.validators.le(MAX_PREVIEW_ROWS)]
    )
    timeout_seconds: float | None = attrs.field(
        default=None, validator=attrs.validators.optional(attrs.validators.gt(0.0))
    )


@attrs.frozen
class Step:
    """A statement: its text, its type (``SELECT``, ...), the parameters it names."""

    query: str
    type: str
    args: dict[str, Any] | None


def plan(statements: Sequence[Any], config: DuckdbTransformConfig) -> list[Step]:
    """DuckDB's parsed ``statements`` with their parameters bound; a ValidationError (at the
    definition's fields) when the SQL, the parameters and the output do not fit together."""
    errors: list[ErrorDetail] = []

    def refuse(field: str, message: str) -> None:
        errors.append(ErrorDetail(("definition", field), message, "value_error"))

    params, steps, used = config.parameters, [], set()
    if not statements:
        refuse("sql", "no SQL statement in it")
    for i, statement in enumerate(statements, 1):
        names = sorted(statement.named_parameters)
        args: dict[str, Any] = {}
        for name in names:
            positional = name.isdigit()
            if isinstance(params, list) and not positional:
                refuse("parameters", f"statement {i} uses ${name}: give parameters as an object")
            elif isinstance(params, dict) and positional:
                refuse("parameters", f"statement {i} uses ${name} or ?: give parameters as a list")
            elif isinstance(params, list) and int(name) > len(params):
                refuse("parameters", f"statement {i} uses ${name}; parameters has {len(params)}")
            elif isinstance(params, list):
                args[name] = params[int(name) - 1]
            elif name not in params:
                refuse("parameters", f"statement {i} uses ${name}, which parameters does not give")
            else:
                args[name] = params[name]
            used.add(name)
        steps.append(Step(statement.query, statement.type.name, args or None))
    unused = [str(k) for k in (params if isinstance(params, dict) else ()) if k not in used]
    if unused:
        refuse("parameters", f"no statement uses ${unused[0]}")
    if isinstance(params, list) and params and not used:
        refuse("parameters", "parameters are given, but no statement has $1 or ?")
    if config.output is not None and steps and steps[-1].type != "SELECT":
        last = f"which must be a query (SELECT, FROM, VALUES, WITH), not a {steps[-1].type}"
        refuse("output", f"the rows written are the last statement's, {last}")
    if errors:
        raise ValidationError(errors)
    return steps


def installed() -> bool:
    try:
        return importlib.util.find_spec("duckdb") is not None
    except (ImportError, ValueError):  # sys.modules["duckdb"] is None: as if missing
        return False


_parser: Any = None
_parser_lock = threading.Lock()


def _parse(sql: str) -> list[Any]:
    """``sql``'s statements, parsed (never run) on a connection of our own: duckdb's default
    one is the host's, and a connection serves one thread at a time."""
    global _parser
    import duckdb

    with _parser_lock:
        if _parser is None:
            _parser = duckdb.connect(MEMORY)
        return list(_parser.extract_statements(sql))


def check(config: DuckdbTransformConfig, checks: KindChecks) -> None:
    """Create-time checks that need the host or DuckDB: the extra, the database path, the
    SQL parsed with its parameters, and the timeout under the host's cap."""
    if not installed():
        raise ValidationError.at(
            ("definition",),
            f"the duckdb_transform kind needs the optional dependencies of {EXTRA} "
            f"(missing: duckdb); install them with pip install '{EXTRA}'",
            "missing_extra",
        )
    import duckdb

    errors: list[ErrorDetail] = []
    if config.database != MEMORY:
        where = ("definition", "database")
        try:
            if not current_root().check(config.database, where).is_local:
                raise ValidationError.at(where, "a file under the data root, or ':memory:'")
        except ValidationError as invalid:
            errors.extend(invalid.details)
    try:
        plan(_parse(config.sql), config)
    except duckdb.Error as exc:
        errors.append(ErrorDetail(("definition", "sql"), str(exc), "sql_syntax"))
    except ValidationError as invalid:
        errors.extend(invalid.details)
    cap = sandbox.current_settings().timeout_seconds
    if config.timeout_seconds is not None and config.timeout_seconds > cap:
        why = f"at most {cap:g} s, the host's limit ({sandbox.ENV['timeout_seconds']})"
        errors.append(ErrorDetail(("definition", "timeoutSeconds"), why, "less_than_equal"))
    if errors:
        raise ValidationError(errors)


async def execute(ctx: RunContext) -> dict[str, Any]:
    config: DuckdbTransformConfig = ctx.definition
    settings, data_root = sandbox.current_settings(), current_root()
    timeout = min(config.timeout_seconds or settings.timeout_seconds, settings.timeout_seconds)
    database = None
    if config.database != MEMORY:
        database = data_root.resolve(config.database)
        database.parent.mkdir(parents=True, exist_ok=True)  # inside the root: resolved

    async def waiting() -> None:
        await ctx.progress({"phase": "waiting", "database": config.database})

    root = data_root.real_root()
    con, lock = await sandbox.connect(database, root, settings, timeout, waiting)
    shown = False
    try:
        try:  # checked at create; parsed again in case the definition predates a change
            steps = plan(con.extract_statements(config.sql), config)
        except ValidationError as invalid:
            raise sandbox.SqlError(f"the SQL does not fit its definition: {invalid}") from None
        except Exception as exc:
            raise sandbox.failure(exc, "parsing the SQL", None) from None
        total, started = len(steps), time.monotonic()
        for i, step in enumerate(steps, 1):
            where = f"statement {i} of {total} ({step.type})"

            async def slow(i: int = i, step: Step = step) -> None:
                nonlocal shown
                shown = True
                progress = {"phase": "running", "statement": i, "statements": total}
                await ctx.progress({**progress, "type": step.type})

            fn: Callable[[], Any] = (
                functools.partial(con.execute, step.query, step.args)
                if i < total
                else functools.partial(
                    sandbox.run_last, con, step.query, step.args, config.output, config.preview_rows
                )
            )
            began = time.monotonic()
            value = await sandbox.call_interruptible(con, fn, timeout, where, i, slow)
            ms = round((time.monotonic() - began) * 1000)
            await ctx.log("info", f"{where} in {ms} ms", data={"statement": i, "ms": ms})
        result: dict[str, Any] = value
        if shown:  # a long statement showed its progress: say it is over
            ms = round((time.monotonic() - started) * 1000)
            await ctx.progress({"phase": "done", "statements": total, "elapsedMs": ms})
        return result
    finally:
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(con.close)
        if lock is not None:
            lock.release()


def describe(progress: Mapping[str, Any]) -> str | None:
    if progress.get("phase") == "waiting":
        return f"waiting for {progress.get('database')}, which is in use"
    if progress.get("phase") == "running":
        return f"statement {progress.get('statement')} of {progress.get('statements')}"
    return None


KIND = Kind(
    name="duckdb_transform",
    executor=execute,
    config=DuckdbTransformConfig,
    display_name="DuckDB transform",
    description=(
        "Runs SQL with DuckDB in a sandbox (files under the data root only, no network, "
        "no extensions) and returns the last statement's rows, or writes them to a table."
    ),
    # No checkpoint within a statement: a pause interrupts the SQL (after the worker's pause
    # grace), and resume runs it again from the first statement.
    pausable=True,
    cancellable=True,
    describe_progress=describe,
    check=check,
    example={
        "database": "warehouse/sales.duckdb",
        "sql": (
            "CREATE OR REPLACE TABLE orders AS FROM read_csv('~/incoming/orders.csv');\n"
            "SELECT $day::DATE AS day, region, count(*) AS orders, sum(amount) AS revenue\n"
            "FROM orders WHERE order_date = $day::DATE GROUP BY region ORDER BY revenue DESC"
        ),
        "parameters": {"day": "2026-11-30"},
        "output": {"table": "daily_revenue", "mode": "append"},
        "previewRows": 20,
        "timeoutSeconds": 120,
    },
)
